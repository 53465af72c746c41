"""The Summary page's charts, pure: rows of the summary become one line per
channel for each figure, gaps stay gaps, and the axes have readable ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.web.console.charts import buckets, chart, series

SINCE = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=4)


def row(hour: int, channel: str, contacts: int, sla: float | None) -> dict[str, object]:
    return {
        "bucket": datetime(2026, 3, 1, hour, tzinfo=UTC),
        "channel": channel,
        "contacts": contacts,
        "sla_share": sla,
        "repeat_24h_rate": 0.0,
        "channel_switch_rate": None,
    }


def test_buckets_start_at_the_floor_of_since() -> None:
    assert buckets(SINCE, UNTIL, "hour") == [
        datetime(2026, 3, 1, h, tzinfo=UTC) for h in (10, 11, 12, 13, 14)
    ]
    days = buckets(SINCE, SINCE + timedelta(days=2), "day")
    assert days == [datetime(2026, 3, d, tzinfo=UTC) for d in (1, 2, 3)]


def test_one_line_per_channel_counts_fill_with_zero_rates_keep_gaps() -> None:
    rows = [row(10, "chat", 3, 0.5), row(12, "chat", 5, None), row(11, "voice", 7, 1.0)]
    figures = {f.key: f for f in series(rows, since=SINCE, until=UNTIL, interval="hour")}
    volume = figures["contacts"]
    assert [line.channel for line in volume.lines] == ["chat", "voice"]
    assert volume.lines[0].values == [3.0, 0.0, 5.0, 0.0, 0.0]
    assert figures["sla_share"].lines[0].values == [0.5, None, None, None, None]
    assert figures["sla_share"].lines[1].values == [None, 1.0, None, None, None]


def test_the_chart_splits_lines_at_gaps_and_labels_its_axes() -> None:
    rows = [row(10, "chat", 3, 0.5), row(11, "chat", 2, 0.25), row(13, "chat", 1, 1.0)]
    figures = {f.key: f for f in series(rows, since=SINCE, until=UNTIL, interval="hour")}
    sla = chart(figures["sla_share"])
    (channel, runs), = sla.paths  # fmt: skip
    assert channel == "chat" and len(runs) == 2  # 10-11, then 13 alone
    assert len(sla.dots) == 3
    assert [label for _, label in sla.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]
    volume = chart(figures["contacts"])
    assert [label for _, label in volume.y_ticks] == ["0", "1", "2", "3", "4"]
    assert volume.x_ticks[0][1] == "10:00"
    # every point inside the plot
    x0, y0, x1, y1 = volume.plot
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for _, x, y in volume.dots)


def test_no_rows_no_lines() -> None:
    figures = series([], since=SINCE, until=UNTIL, interval="hour")
    assert all(f.lines == [] for f in figures)
    assert chart(figures[0]).paths == []
