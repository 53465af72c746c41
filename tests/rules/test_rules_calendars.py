"""Business hours: weekdays, time zones across daylight-saving changes, holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.rules.calendars import Calendar, compile_calendar, parse_days, parse_hours
from router.rules.schema import CalendarSpec


def calendar(**spec: object) -> Calendar:
    problems: list[str] = []
    spec.setdefault("timezone", "Europe/Berlin")
    found = compile_calendar(
        "c", CalendarSpec.model_validate(spec), lambda p, m: problems.append(m)
    )
    assert found is not None, problems
    return found


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_hours_in_the_calendar_time_zone_across_dst() -> None:
    office = calendar(hours={"mon-fri": "08:00-18:00"})
    # Friday 2026-03-27 (CET, UTC+1) and Monday 2026-03-30 (CEST, UTC+2)
    assert office.is_open(at("2026-03-27T07:00:00+00:00"))  # 08:00 local
    assert not office.is_open(at("2026-03-27T06:59:59+00:00"))
    assert office.is_open(at("2026-03-30T06:00:00+00:00"))  # 08:00 local after the change
    assert not office.is_open(at("2026-03-30T05:30:00+00:00"))  # 07:30 local
    assert not office.is_open(at("2026-03-30T16:00:00+00:00"))  # 18:00 local: closed
    # back to CET in October: 2026-10-26 is a Monday
    assert office.is_open(at("2026-10-26T07:00:00+00:00"))
    assert not office.is_open(at("2026-10-26T06:30:00+00:00"))


def test_night_of_the_clock_change() -> None:
    night = calendar(hours={"sun": "01:00-04:00"})
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST
    assert night.is_open(at("2026-03-29T00:30:00+00:00"))  # 01:30 CET
    assert night.is_open(at("2026-03-29T01:30:00+00:00"))  # 03:30 CEST
    assert not night.is_open(at("2026-03-29T02:00:00+00:00"))  # 04:00 CEST


def test_weekends_holidays_and_special_days() -> None:
    shop = calendar(
        hours={"mon-fri": "09:00-12:00, 13:00-17:00", "sat": ["10:00-14:00"], "sun": "closed"},
        holidays=["2026-12-25"],
        special_days={"2026-12-24": "09:00-12:00", "2026-12-27": "10:00-11:00"},
    )
    assert shop.is_open(at("2026-03-02T09:00:00+01:00"))
    assert not shop.is_open(at("2026-03-02T12:30:00+01:00"))  # lunch break
    assert shop.is_open(at("2026-03-07T13:59:00+01:00"))  # Saturday
    assert not shop.is_open(at("2026-03-08T11:00:00+01:00"))  # Sunday
    assert not shop.is_open(at("2026-12-25T10:00:00+01:00"))  # holiday, a Friday
    assert shop.is_open(at("2026-12-24T11:00:00+01:00"))  # special day, morning
    assert not shop.is_open(at("2026-12-24T14:00:00+01:00"))  # special day, afternoon
    assert shop.is_open(at("2026-12-27T10:30:00+01:00"))  # special day on a Sunday
    assert shop.describe()["hours"]["mon"] == "09:00-12:00, 13:00-17:00"


def test_whole_day_and_day_lists() -> None:
    always = calendar(hours={"mon-sun": "00:00-24:00"})
    assert always.is_open(at("2026-06-07T23:59:59+02:00"))
    assert parse_days("sat, sun") == [5, 6]
    assert parse_days("fri-mon") == [4, 5, 6, 0]
    assert parse_days("Tuesday") == [1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9-17", "is not hours like 09:00-17:00"),
        ("18:00-08:00", "ends before it starts"),
        ("09:00-25:00", "is not a time of day"),
        ("closed, 09:00-10:00", "'closed' cannot be combined"),
    ],
)
def test_bad_hours(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_hours(text)


def test_calendar_problems_are_all_reported() -> None:
    problems: list[tuple[tuple[object, ...], str]] = []
    spec = CalendarSpec.model_validate(
        {
            "timezone": "Nowhere/Town",
            "hours": {
                "mon": "09:00-10:00",
                "tue": "9-5",
                "someday": "09:00-10:00",
                "mon-wed": "09:00-10:00",
            },
            "holidays": ["25.12.2026"],
            "special_days": {"soon": "closed", "2026-12-24": "late"},
        }
    )
    assert compile_calendar("c", spec, lambda p, m: problems.append((p, m))) is None
    assert [p for p, _ in problems] == [
        ("timezone",),
        ("hours", "tue"),
        ("hours", "someday"),
        ("hours", "mon-wed"),  # Monday given twice
        ("holidays", 0),
        ("special_days", "soon"),
        ("special_days", "2026-12-24"),
    ]
