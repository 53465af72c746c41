from __future__ import annotations

from collections.abc import Callable

import pytest

from router.rules import Ruleset, load_ruleset_text
from tests.support.rules import BASE


@pytest.fixture
def rules() -> Callable[[str], Ruleset]:
    """A ruleset from BASE plus the given ``rules:`` (or other) YAML."""

    def build(extra: str) -> Ruleset:
        return load_ruleset_text(BASE + extra, "test.yaml")

    return build
