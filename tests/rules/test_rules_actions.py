"""The parts of a decision built from compiled rules without validation are
what validation would have made: the de-duplicated skills and tags, the
overflow steps whose priority depends on the decision's."""

from __future__ import annotations

import pytest

from router.models import OverflowStep
from router.rules.actions import Overflow, unique


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((), ()),
        (((), [], ()), ()),
        ((("a", "b"),), ("a", "b")),
        ((("a", "b", "a"),), ("a", "b")),
        ((["b", "a", "b"],), ("b", "a")),
        ((("a",), (), ("b", "a"), ["c"]), ("a", "b", "c")),
        (((), ("x", "y")), ("x", "y")),
    ],
)
def test_unique_keeps_the_first_of_each_in_order(
    parts: tuple[tuple[str, ...], ...], expected: tuple[str, ...]
) -> None:
    made = unique(*parts)
    assert made == expected and type(made) is tuple


@pytest.mark.parametrize("boost", [None, 5, 500, -500])
def test_an_overflow_step_equals_the_validated_one(boost: int | None) -> None:
    overflow = Overflow(120, "general", ("vip",), 40, boost)
    step = overflow.step(90)
    priority = 40 if boost is None else max(0, min(100, 90 + boost))
    expected = OverflowStep(
        after_seconds=120, queue="general", drop_skills=("vip",), priority=priority
    )
    assert step == expected and step.model_dump_json() == expected.model_dump_json()
