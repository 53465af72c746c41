"""Hourly rollups of the record (``contact_rollup``): the one aggregation of
records into rollup rows, shared by the rollup job and by the live part of
the summary, and the job that keeps the rollups up to date incrementally.

The job rolls up every hour once it is closed (its end more than ``GRACE``
ago, so no routing transaction still writes into it) and re-rolls the hours
whose contacts got outcome events since its last run (``contact_events``
rows, by ``recorded_at``). Each hour is rebuilt whole (delete + insert) in
one transaction: no row is updated per contact, so there is no hot row, and
routing writes nothing extra. Records written into an hour that is already
rolled up by other means (a bulk import) are picked up by ``rebuild``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from router.aggregates import ROUTING_MS_BUCKET_COUNT, THRESHOLDS

HOUR = timedelta(hours=1)
#: How long after its end an hour is considered closed.
GRACE = timedelta(minutes=5)
#: Hours rolled up per transaction when catching up.
CHUNK = timedelta(days=7)
_LOCK = 0x6F6D6E72  # "omnr"

#: Columns a summary can group and filter by.
DIMENSIONS = ("channel", "adapter", "queue", "rule", "tier", "rollout", "agent")
#: Integer counters of a rollup row, summed across rows.
COUNTERS = (
    "contacts",
    "identified",
    "repeat_24h",
    "repeat_7d",
    "channel_switch",
    "with_outcome",
    "answered",
    "answered_within_sla",
    "abandoned",
    "routing_n",
)
LATENCY = tuple(f"lat_{i}" for i in range(ROUTING_MS_BUCKET_COUNT))
#: Every metric column of a rollup row, in table order.
METRICS = (*COUNTERS, "routing_ms_sum", "customers", *LATENCY)

_RAW_METRICS = {
    "contacts": "count(*)::int",
    "identified": "count(c.customer_id)::int",
    "repeat_24h": "count(*) FILTER (WHERE c.repeat_24h)::int",
    "repeat_7d": "count(*) FILTER (WHERE c.repeat_7d)::int",
    "channel_switch": "count(*) FILTER (WHERE c.channel_switch)::int",
    "with_outcome": "count(c.outcome)::int",
    "answered": "count(c.answered_at)::int",
    "answered_within_sla": "count(*) FILTER (WHERE c.sla_met)::int",
    "abandoned": "count(c.abandoned_at)::int",
    "routing_n": "count(c.routing_ms)::int",
    "routing_ms_sum": "coalesce(sum(c.routing_ms), 0)::float8",
    "customers": "bit_or(customer_sketch(c.customer_id))",
    **{
        f"lat_{i}": f"count(*) FILTER (WHERE c.lb = {i})::int"
        for i in range(ROUTING_MS_BUCKET_COUNT)
    },
}
_THRESHOLDS = "ARRAY[" + ", ".join(repr(t) for t in THRESHOLDS) + "]::float8[]"
#: The record columns the aggregation reads (fenced, so the bucket is computed once).
_RAW_COLUMNS = f"""received_at, {", ".join(DIMENSIONS)}, customer_id, repeat_24h, repeat_7d,
    channel_switch, outcome, answered_at, abandoned_at, sla_met, routing_ms,
    width_bucket(routing_ms::float8, {_THRESHOLDS}) AS lb"""


class Params:
    """Positional query arguments: ``add(value)`` returns its ``$n``."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def aggregate_sql(
    params: Params,
    *,
    time: str,
    dims: Sequence[str],
    ranges: Sequence[tuple[datetime, datetime]],
    filters: dict[str, str] | None = None,
) -> str:
    """A SELECT of rollup-shaped rows ``(t, *dims, *METRICS)`` from the records
    received in ``ranges`` ([start, end) pairs), grouped by ``time`` (an SQL
    expression over ``c.received_at``) and ``dims``. Each range is read by
    its own index range scan."""
    where = ""
    for column, value in (filters or {}).items():
        assert column in DIMENSIONS
        where += f" AND x.{column} = {params.add(value)}"
    starts = params.add([r[0] for r in ranges])
    ends = params.add([r[1] for r in ranges])
    dim_sql = "".join(f", c.{d}" for d in dims)
    metrics = ", ".join(f"{_RAW_METRICS[m]} AS {m}" for m in METRICS)
    group = ", ".join(str(i) for i in range(1, len(dims) + 2))
    return f"""
        SELECT {time} AS t{dim_sql}, {metrics}
          FROM unnest({starts}::timestamptz[], {ends}::timestamptz[]) AS r(s, e)
         CROSS JOIN LATERAL (
               SELECT {_RAW_COLUMNS} FROM contacts x
                WHERE x.received_at >= r.s AND x.received_at < r.e{where}
               OFFSET 0) c
         GROUP BY {group}"""


def hour_floor(at: datetime) -> datetime:
    """The start of the UTC hour of ``at``."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def merge_ranges(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, non-empty, with touching or overlapping ranges joined."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


async def _roll(con: asyncpg.Connection, hours: Sequence[datetime]) -> None:
    """Rebuild the rollup rows of ``hours`` (UTC hour starts)."""
    if not hours:
        return
    await con.execute("DELETE FROM contact_rollup WHERE hour = ANY($1::timestamptz[])", list(hours))
    params = Params()
    select = aggregate_sql(
        params,
        time="date_trunc('hour', c.received_at, 'UTC')",
        dims=DIMENSIONS,
        ranges=merge_ranges([(h, h + HOUR) for h in hours]),
    )
    columns = ", ".join(("hour", *DIMENSIONS, *METRICS))
    # In hour order, so that the rows of an hour share pages.
    await con.execute(f"INSERT INTO contact_rollup ({columns}) {select} ORDER BY 1", *params.values)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    out = []
    while start < end:
        out.append(start)
        start += HOUR
    return out


@dataclass(frozen=True, slots=True)
class Refreshed:
    hours: int  # hours (re)built
    rolled_until: datetime | None


async def refresh(pool: asyncpg.Pool, *, grace: timedelta = GRACE) -> Refreshed | None:
    """Roll up the closed hours not rolled up yet (a week per transaction when
    catching up) and re-roll the hours with new outcome events. ``None`` when
    another process is doing it right now."""
    built = 0
    events_done = False
    while True:
        async with pool.acquire() as con, con.transaction():
            if not await con.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            state = await con.fetchrow(
                "SELECT rolled_until, events_until, now() AS now FROM rollup_state FOR UPDATE"
            )
            horizon: datetime = state["now"] - grace
            closed = hour_floor(horizon)
            rolled: datetime | None = state["rolled_until"]
            # Skip empty stretches (a first run, a stray old record, a quiet night).
            first = await con.fetchval(
                "SELECT min(received_at) FROM contacts WHERE received_at >= $1",
                rolled if rolled is not None else datetime.min.replace(tzinfo=UTC),
            )
            start = min(closed, hour_floor(first)) if first is not None else closed
            if rolled is not None:
                start = max(start, rolled)
            end = max(start, min(closed, start + CHUNK))
            hours = _hours(start, end)
            if not events_done:
                dirty = await con.fetch(
                    """SELECT DISTINCT date_trunc('hour', received_at, 'UTC') AS hour
                         FROM contact_events
                        WHERE recorded_at >= coalesce($1::timestamptz, '-infinity')
                          AND recorded_at < $2 AND received_at < $3""",
                    state["events_until"],
                    horizon,
                    rolled if rolled is not None else start,
                )
                hours += [r["hour"] for r in dirty]
                events_done = True
            await _roll(con, sorted(set(hours)))
            await con.execute(
                "UPDATE rollup_state SET rolled_until = $1, events_until = $2", end, horizon
            )
            built += len(set(hours))
        if end >= closed:
            return Refreshed(hours=built, rolled_until=end)


async def rebuild(pool: asyncpg.Pool, since: datetime, until: datetime) -> int:
    """Re-roll every rolled-up hour that overlaps [since, until), e.g. after
    records were imported into the past; waits for a running refresh.
    Returns the hours rebuilt."""
    built = 0
    start = hour_floor(since)
    while start < until:
        async with pool.acquire() as con, con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            rolled = await con.fetchval("SELECT rolled_until FROM rollup_state")
            if rolled is None:
                return built
            end = min(start + CHUNK, until, rolled)
            hours = _hours(start, end)
            await _roll(con, hours)
            built += len(hours)
        if end >= rolled:
            break
        start = end
    return built


async def rolled_until(con: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
    value: datetime | None = await con.fetchval("SELECT rolled_until FROM rollup_state")
    return value
