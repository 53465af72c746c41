"""A serving process's collector settings (router/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from router import heap


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_start_up_and_spaces_out_young_collections(collector: None) -> None:
    kept = [object() for _ in range(3)]  # what start-up made and keeps
    _, middle, old = gc.get_threshold()
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    # the older generations' thresholds are left as they were
    assert gc.get_threshold()[1:] == (middle, old)
