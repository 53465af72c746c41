"""The JSON Schema for editors agrees with the engine.

Held here without an editor: with a standard validator (``jsonschema``) over
the shipped rules, the docs examples and the mistakes, and pattern by pattern
against the engine's own parsers. tests/rules/test_rules_editor.py holds the
same documents against yaml-language-server.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from router.errors import RulesError
from router.rules import load_ruleset_text
from router.rules.calendars import (
    DATE_PATTERN,
    DAYS_PATTERN,
    HOURS_ITEM_PATTERN,
    HOURS_PATTERN,
    parse_days,
    parse_hours,
)
from router.rules.fields import Catalog
from router.rules.jsonschema import near, rules_schema
from router.rules.schema import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    TIME_PATTERN,
    parse_duration,
    parse_percent,
)
from router.rules.source import parse
from tests.support.rules import BASE
from tests.support.rules_examples import (
    MISTAKES,
    Example,
    Mistake,
    docs_examples,
    operator_examples,
    shipped,
)

SCHEMA = rules_schema(Catalog(UTC))
VALIDATOR = Draft202012Validator(SCHEMA)


def _data(text: str) -> Any:
    source, syntax = parse("t.yaml", "t.yaml", text)
    assert syntax is None
    return source.data


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


VALID = shipped() + docs_examples() + operator_examples()


@pytest.mark.parametrize("example", VALID, ids=[e.name for e in VALID])
def test_what_the_engine_accepts_the_schema_accepts(example: Example) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(_data(example.text))
    ]
    assert errors == []


def test_the_examples_are_all_there() -> None:
    """Every yaml block of the docs but the modeline, the whole operators table."""
    assert len(docs_examples()) >= 15
    assert len(operator_examples()) >= 16  # gt, gte, lt, lte share a row, as do two others


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_mistake_the_schema_sees_the_engine_reports_on_the_same_line(mistake: Mistake) -> None:
    assert list(VALIDATOR.iter_errors(_data(mistake.text))), "the schema lets it pass"
    with pytest.raises(RulesError) as caught:
        load_ruleset_text(mistake.text, "r.yaml")
    lines = {int(problem.split(":")[1]) for problem in caught.value.problems}
    assert lines == {mistake.line}, caught.value.problems


def test_base_alone_is_valid() -> None:
    load_ruleset_text(BASE, "r.yaml")
    assert list(VALIDATOR.iter_errors(_data(BASE))) == []


# -- each pattern against the parser it stands for ------------------------------------------


def _accepts(parser: Any, value: str) -> bool:
    try:
        parser(value)
    except (ValueError, TypeError):
        return False
    return True


def _agree(pattern: str, parser: Any, value: str, *, exact: bool = True) -> None:
    """What the parser takes, the pattern matches (and, when ``exact``, nothing else)."""
    matches = re.search(pattern, value) is not None
    if _accepts(parser, value):
        assert matches, f"{value!r}: the engine takes it, the schema does not"
    elif exact:
        assert not matches, f"{value!r}: the schema takes it, the engine does not"


def _shaped(alphabet: str, pieces: list[str]) -> st.SearchStrategy[str]:
    """Texts made of likely pieces and random characters of ``alphabet``."""
    part = st.one_of(st.sampled_from(pieces), st.text(alphabet, min_size=1, max_size=3))
    return st.lists(part, max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(_shaped(" 0123456789wdhmsWDHMSx.-", ["90s", "5m", "1h30m", " 2 d", "24h", "1w"]))
def test_duration_pattern_is_parse_duration(text: str) -> None:
    _agree(DURATION_PATTERN, parse_duration, text)


@settings(max_examples=400, deadline=None)
@given(_shaped(" 0123456789.%x", ["20%", "100", "12.5", "007", "100.0", " 5 % "]))
def test_percent_pattern_is_parse_percent(text: str) -> None:
    _agree(PERCENT_PATTERN, parse_percent, text)


_TIME_PIECES = [
    "2026-03-01",
    "20260301",
    "2026-W09",
    "2026W091",
    "T",
    " ",
    "09",
    ":00",
    "0900",
    ".5",
    ",123456",
    "Z",
    "+01:00",
    "-0530",
    "+01",
]


@settings(max_examples=1500, deadline=None)
@given(_shaped("0123456789-:.,TWZ +z", _TIME_PIECES))
def test_time_pattern_takes_all_fromisoformat_takes(text: str) -> None:
    # the pattern may take a little more (the engine then says what is wrong)
    _agree(TIME_PATTERN, datetime.fromisoformat, text, exact=False)


@settings(max_examples=800, deadline=None)
@given(_shaped("0123456789-W", ["2026-12-24", "20261224", "2026-W52", "-5", "W52"]))
def test_date_pattern_takes_all_date_fromisoformat_takes(text: str) -> None:
    _agree(DATE_PATTERN, date.fromisoformat, text, exact=False)


@pytest.mark.parametrize(
    "text",
    ["tomorrow", "yesterday", "25.12.2026", "12/24/2026", "3h ago", "", "10:00"],
)
def test_time_pattern_rejects_what_is_not_a_time(text: str) -> None:
    assert re.search(TIME_PATTERN, text) is None


def _hours(text: str) -> Any:
    spans = parse_hours(text)
    return spans


@settings(max_examples=600, deadline=None)
@given(_shaped(" 0123456789:-,", ["09:00-17:00", "closed", "CLOSED", ", ", "8:00", "-"]))
def test_hours_patterns_take_all_parse_hours_takes(text: str) -> None:
    _agree(HOURS_PATTERN, _hours, text, exact=False)
    _agree(HOURS_ITEM_PATTERN, lambda t: parse_hours([t]), text, exact=False)


@settings(max_examples=600, deadline=None)
@given(_shaped(" ,-" + string.ascii_letters, ["mon", "Fri", "sat", "sunday", "-", ", "]))
def test_days_pattern_is_parse_days(text: str) -> None:
    _agree(DAYS_PATTERN, parse_days, text)


@pytest.mark.parametrize(
    ("name", "typo"),
    [
        ("customer.tier", "customer.tierr"),
        ("customer.tier", "customer.teir"),
        ("customer.tier", "cusotmer.tier"),
        ("customer.tier", "customer_tier"),
        ("customer.tier", "Customer.Tier"),
        ("customer.tier", "customer.tie"),
        ("contact.channel", "contact.chanel"),
        ("starts_with", "startswith"),
    ],
)
def test_near_matches_one_typo(name: str, typo: str) -> None:
    assert re.search(near(name), typo)


@pytest.mark.parametrize(
    ("name", "other"),
    [("customer.tier", "customer.segment"), ("customer.tier", "contact.tier.x"), ("eq", "gte")],
)
def test_near_does_not_match_other_names(name: str, other: str) -> None:
    assert re.search(near(name), other) is None
