"""The one ISO 8601 parser, and the error each boundary makes of a bad time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from router.commands.cli import main
from router.errors import BadQuery
from router.times import parse_time
from router.web import query


def test_iso_times() -> None:
    assert parse_time("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    plus_one = parse_time("2026-03-01T13:00:00+01:00")
    assert plus_one.utcoffset() == timedelta(hours=1)
    assert plus_one == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time("2026-03-01T12:30") == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_a_time_without_offset_is_in_the_default_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_time("2026-03-01T12:00", default_tz=berlin) == datetime(
        2026, 3, 1, 12, tzinfo=berlin
    )
    # an offset in the text wins over the default
    given = parse_time("2026-03-01T12:00-05:00", default_tz=berlin)
    assert given.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize("text", ["", "soon", "7d", "2026-13-01", "2026-03-01T25:00Z"])
def test_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 time"):
        parse_time(text)


def test_the_command_line_reports_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["db", "rollup", "--since", "soon"])
    assert exit_.value.code == 2
    assert "'soon' is not an ISO 8601 time" in capsys.readouterr().err


def test_the_api_names_the_parameter_and_keeps_the_range() -> None:
    with pytest.raises(BadQuery) as bad:
        query.parse_time("since", "soon")
    assert [f.field for f in bad.value.fields] == ["since"]
    with pytest.raises(BadQuery) as bad:
        query.parse_time("until", "1969-12-31T23:59:59Z")
    assert [f.field for f in bad.value.fields] == ["until"]
    assert "must lie between" in bad.value.fields[0].reason
    assert query.parse_time("since", "2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
