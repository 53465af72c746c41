"""The Summary page's charts, pure: the summary's rows (per channel and time
bucket) become one series per channel for each figure, and each figure a
server-rendered SVG line chart (points and axis ticks; the template draws
it, with a title, a description and the same numbers as a table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: The figures charted: (key in a summary row, title, unit).
FIGURES = (
    ("contacts", "Volume (contacts)", "count"),
    ("sla_share", "Answered within SLA", "rate"),
    ("repeat_24h_rate", "Repeat contacts within 24 h", "rate"),
    ("channel_switch_rate", "Channel switches", "rate"),
)
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 28, 12, 36


@dataclass(frozen=True, slots=True)
class Line:
    channel: str
    values: list[float | None]


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    title: str
    unit: str
    buckets: list[datetime]
    lines: list[Line]


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    #: (channel, SVG points) of each line; a gap (no value) splits a line
    paths: list[tuple[str, list[str]]]
    #: (channel, x, y) of every value, drawn as a dot (a lone value shows too)
    dots: list[tuple[str, float, float]]
    #: (y, label) of the value axis; (x, label) of the time axis
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    plot: tuple[int, int, int, int]


def buckets(since: datetime, until: datetime, interval: str) -> list[datetime]:
    """The bucket starts from ``since`` (floored to the interval, UTC) to ``until``."""
    step = _STEP[interval]
    if interval == "day":
        start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        start = since.replace(minute=0, second=0, microsecond=0)
    out = []
    while start < until:
        out.append(start)
        start += step
    return out


def series(
    rows: Sequence[dict[str, Any]], *, since: datetime, until: datetime, interval: str
) -> list[Figure]:
    """One figure per charted key, one line per channel that has rows."""
    times = buckets(since, until, interval)
    index = {t: n for n, t in enumerate(times)}
    channels = sorted({str(r["channel"]) for r in rows if r.get("channel")})
    figures = []
    for key, title, unit in FIGURES:
        lines = []
        for channel in channels:
            values: list[float | None] = [None] * len(times)
            for r in rows:
                n = index.get(r["bucket"])
                if r.get("channel") == channel and n is not None:
                    value = r.get(key)
                    values[n] = None if value is None else float(value)
            if unit == "count":
                values = [v or 0.0 for v in values]
            lines.append(Line(channel, values))
        figures.append(Figure(key, title, unit, times, lines))
    return figures


def _label(value: float, unit: str) -> str:
    return f"{value * 100:.0f}%" if unit == "rate" else f"{value:,.0f}"


def chart(figure: Figure) -> Chart:
    """The SVG geometry of ``figure``."""
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    found = [v for line in figure.lines for v in line.values if v is not None]
    top = 1.0 if figure.unit == "rate" else _ceiling(max([*found, 1.0]))
    n = len(figure.buckets)

    def x(i: int) -> float:
        return x0 + (x1 - x0) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return y1 - (y1 - y0) * (v / top)

    paths = []
    dots = []
    for line in figure.lines:
        runs: list[str] = []
        run: list[str] = []
        for i, v in enumerate(line.values):
            if v is None:
                if run:
                    runs.append(" ".join(run))
                run = []
                continue
            run.append(f"{x(i):.1f},{y(v):.1f}")
            dots.append((line.channel, round(x(i), 1), round(y(v), 1)))
        if run:
            runs.append(" ".join(run))
        paths.append((line.channel, runs))
    y_ticks = [(y(top * k / 4), _label(top * k / 4, figure.unit)) for k in range(5)]
    every = max(1, n // 6)
    daily = n > 1 and figure.buckets[1] - figure.buckets[0] >= timedelta(days=1)
    fmt = "%m-%d" if daily else "%H:%M"
    x_ticks = [(x(i), figure.buckets[i].strftime(fmt)) for i in range(0, n, every)]
    return Chart(WIDTH, HEIGHT, paths, dots, y_ticks, x_ticks, (x0, y0, x1, y1))


def _ceiling(value: float) -> float:
    """The top of a count axis: ``value`` rounded up so that its four ticks
    are whole numbers of a 1, 2, 2.5, 5 series (4, 8, 10, 20, 40, 80, 100 ...)."""
    magnitude = 1.0
    while True:
        for factor in (1.0, 2.0, 2.5, 5.0):
            step = factor * magnitude
            if step * 4 >= value and (factor != 2.5 or magnitude >= 10):
                return step * 4
        magnitude *= 10
