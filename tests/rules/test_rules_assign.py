"""``assign:`` on a queue and skills with levels in the rules files
(docs/rules.md, docs/agents.md): what compiles, what the pipeline gets, and
the errors at their file:line:col."""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from jsonschema import Draft202012Validator

from router.errors import RulesError
from router.rules import load_ruleset_text
from router.rules.fields import Catalog
from router.rules.jsonschema import rules_schema
from router.rules.schema import SKILL_PATTERN, parse_skill_text
from router.rules.source import parse
from tests.support.rules import BASE

QUEUES = """\
queues:
  desk:
    skills: ["billing:3", de]
    assign:
      mode: longest_idle
      offer_timeout: 45s
      preferred_wait: 2m
      aging: {every: 1m, by: 2, max: 90}
  plain: {assign: {}}
  platform: {}
defaults: {queue: platform}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_ruleset_text(text, "test.yaml")
    return caught.value.problems


def test_assign_compiles_with_its_defaults() -> None:
    ruleset = load_ruleset_text(QUEUES, "test.yaml")
    desk = ruleset.queues["desk"]
    assert desk.skills == ("billing:3", "de")
    assert desk.assign is not None and desk.assign.mode == "longest_idle"
    assert desk.assign.offer_timeout == 45 and desk.assign.preferred_wait == 120
    assert desk.assign.aging is not None and desk.assign.aging.every == 60
    assert (desk.assign.aging.by, desk.assign.aging.max) == (2, 90)
    plain = ruleset.queues["plain"].assign
    assert plain is not None and plain.mode == "most_available"
    assert plain.offer_timeout is None and plain.preferred_wait == 0 and plain.aging is None
    assert ruleset.queues["platform"].assign is None
    described = ruleset.describe()["queues"]
    assert described["desk"]["assign"]["mode"] == "longest_idle"
    assert "assign" not in described["platform"]


def test_assign_errors_name_the_place() -> None:
    found = problems(
        "queues:\n"
        "  desk:\n"
        "    assign: {mode: fastest, offer_timeout: soon}\n"
        "  other: {assign: {aging: {by: 1}}}\n"
        "defaults: {queue: desk}\n"
    )
    assert found == [
        "test.yaml:3:20: queue 'desk': mode: Input should be 'most_available', 'longest_idle'"
        " or 'round_robin'",
        "test.yaml:3:44: queue 'desk': offer_timeout: 'soon' is not a duration"
        " (write e.g. 90s, 5m, 24h, 3d, 1h30m)",
        "test.yaml:4:27: queue 'other': missing 'every'",
    ]


@pytest.mark.parametrize("bad", ["billing:0", "billing:6", "billing:", ":3", "a b:9", " x"])
def test_a_skill_level_is_1_to_5(bad: str) -> None:
    found = problems(BASE + f"rules:\n  - name: r\n    route: {{skills: [{bad!r}]}}\n")
    assert any(p.startswith("test.yaml:") and "is not a skill" in p for p in found), found


@pytest.mark.parametrize("good", ["billing", "billing:1", "billing:5", "de-DE", "tier 2:3"])
def test_skills_as_written(good: str) -> None:
    assert parse_skill_text(good) == good
    assert re.match(SKILL_PATTERN, good)


def test_the_editors_schema_knows_assign() -> None:
    validator = Draft202012Validator(rules_schema(Catalog(UTC)))

    def data(text: str) -> object:
        return parse("q.yaml", "q.yaml", text)[0].data

    assert list(validator.iter_errors(data(QUEUES))) == []
    assert list(validator.iter_errors(data("queues:\n  desk: {assign: {mode: fastest}}\n")))
    assert list(validator.iter_errors(data("defaults: {queue: a, skills: ['billing:7']}\n")))


def test_drop_skills_by_name_drops_the_levels_too() -> None:
    from router.store.lifecycle import _dropped

    assert _dropped("billing:3", ("billing",))
    assert _dropped("billing", ("billing",))
    assert not _dropped("billing:3", ("de",))
