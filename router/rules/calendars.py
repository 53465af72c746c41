"""Business-hours calendars: opening hours per weekday in a time zone, holidays
and special days. Compiled once; ``is_open(moment)`` is a few comparisons.

Hours are written ``"09:00-17:00"``, several ranges separated by commas
(``"08:00-12:00, 13:00-17:00"``) or as a list, ``"closed"``, or
``"00:00-24:00"`` for the whole day. A range includes its start and excludes
its end. Days are ``mon`` … ``sun``, ranges of days ``mon-fri``, or lists
``sat, sun``; days not named are closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from router.rules.fields import WEEKDAYS
from router.rules.schema import CalendarSpec

_RANGE = re.compile(r"^\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*$")


def _any_case(word: str) -> str:
    """``mon`` as ``[mM][oO][nN]``: editors' patterns have no flag for case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


#: JSON Schema patterns (ECMAScript) for what parse_hours and parse_days read
_SPAN = r"\s*[0-9]{1,2}:[0-9]{2}\s*-\s*[0-9]{1,2}:[0-9]{2}\s*"
HOURS_PATTERN = rf"^(?:\s*{_any_case('closed')}\s*|{_SPAN}(?:,{_SPAN})*)$"
HOURS_ITEM_PATTERN = rf"^(?:\s*{_any_case('closed')}\s*|{_SPAN})$"
_DAY = rf"\s*(?:{'|'.join(_any_case(day) for day in WEEKDAYS)})[^,-]*"
DAYS_PATTERN = rf"^{_DAY}(?:-{_DAY})?(?:,{_DAY}(?:-{_DAY})?)*$"
#: a date starts like an ISO date (``date.fromisoformat`` reads more than a pattern can say)
DATE_PATTERN = r"^[0-9]{4}-?[0-9W][\s\S]*$"

Span = tuple[int, int]
#: report(path below the calendar, message)
Report = Callable[[tuple[str | int, ...], str], None]


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_hours(value: str | list[str]) -> tuple[Span, ...]:
    """Opening spans in seconds after midnight; raises ValueError with a reason."""
    parts = value if isinstance(value, list) else value.split(",")
    spans: list[Span] = []
    for part in parts:
        text = part.strip()
        if text.lower() == "closed":
            if len(parts) > 1:
                raise ValueError("'closed' cannot be combined with hours")
            return ()
        match = _RANGE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not hours like 09:00-17:00 (or 'closed')")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 86400:
            raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
        if end <= start:
            raise ValueError(f"{text!r} ends before it starts; split a night over two days")
        spans.append((start, end))
    return tuple(sorted(spans))


def parse_days(key: str) -> list[int]:
    """Weekday numbers (Monday 0) named by ``mon``, ``mon-fri`` or ``sat, sun``."""
    days: list[int] = []
    for part in key.lower().split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
            raise ValueError(
                f"{key!r} is not a day (mon … sun), range (mon-fri) or list (sat, sun)"
            )
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        days += [(first + n) % 7 for n in range((last - first) % 7 + 1)]
    return days


@dataclass(frozen=True, slots=True)
class Calendar:
    """A compiled calendar."""

    name: str
    timezone: ZoneInfo
    weekly: tuple[tuple[Span, ...], ...]
    holidays: frozenset[date]
    special: dict[date, tuple[Span, ...]]

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.timezone)
        day = local.date()
        if day in self.holidays:
            return False
        spans = self.special.get(day)
        if spans is None:
            spans = self.weekly[local.weekday()]
        second = local.hour * 3600 + local.minute * 60 + local.second
        for start, end in spans:
            if start <= second < end:
                return True
        return False

    def describe(self) -> dict[str, object]:
        def text(spans: tuple[Span, ...]) -> str:
            if not spans:
                return "closed"
            return ", ".join(f"{_clock(s)}-{_clock(e)}" for s, e in spans)

        return {
            "timezone": self.timezone.key,
            "hours": {WEEKDAYS[n]: text(spans) for n, spans in enumerate(self.weekly)},
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "special_days": {d.isoformat(): text(s) for d, s in sorted(self.special.items())},
        }


def _clock(second: int) -> str:
    return f"{second // 3600:02d}:{second % 3600 // 60:02d}"


def compile_calendar(name: str, spec: CalendarSpec, report: Report) -> Calendar | None:
    """The compiled calendar, or None after reporting every problem in it."""
    ok = True
    tz = zone(spec.timezone)
    if tz is None:
        report(("timezone",), f"unknown time zone {spec.timezone!r} (e.g. Europe/Berlin, UTC)")
        ok = False
    weekly: list[tuple[Span, ...]] = [()] * 7
    named: dict[int, str] = {}
    for key, hours in spec.hours.items():
        try:
            days = parse_days(key)
            spans = parse_hours(hours)
        except ValueError as exc:
            report(("hours", key), str(exc))
            ok = False
            continue
        for day in days:
            if day in named:
                report(("hours", key), f"{WEEKDAYS[day]} is already given by {named[day]!r}")
                ok = False
            named[day] = key
            weekly[day] = spans
    holidays: set[date] = set()
    for n, text in enumerate(spec.holidays):
        try:
            holidays.add(date.fromisoformat(str(text)))
        except ValueError:
            report(("holidays", n), f"{text!r} is not a date like 2026-12-25")
            ok = False
    special: dict[date, tuple[Span, ...]] = {}
    for key, hours in spec.special_days.items():
        try:
            when = date.fromisoformat(key)
        except ValueError:
            report(("special_days", key), f"{key!r} is not a date like 2026-12-24")
            ok = False
            continue
        try:
            special[when] = parse_hours(hours)
        except ValueError as exc:
            report(("special_days", key), str(exc))
            ok = False
    if not ok or tz is None:
        return None
    return Calendar(name, tz, tuple(weekly), frozenset(holidays), special)
