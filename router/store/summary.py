"""The summary query: counters, latency histograms and customer sketches per
time bucket and group, read from the hourly rollups where they cover the
range and from the records themselves for the rest -- the ragged ends of the
range, the hours not rolled up yet (the live part), and hours that a bucket
boundary cuts (zones whose UTC offset is not whole hours). All of it in one
snapshot, so a rollup job committing meanwhile is never counted twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from router.errors import BadQuery, FieldError
from router.store.rollups import (
    COUNTERS,
    DIMENSIONS,
    HOUR,
    LATENCY,
    METRICS,
    Params,
    aggregate_sql,
    hour_floor,
    merge_ranges,
)

INTERVALS = ("hour", "day", "week")
WORK_MEM = "64MB"


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    since: datetime
    until: datetime
    interval: str | None  # one of INTERVALS, or None for one bucket over the range
    tz: str
    group_by: tuple[str, ...]
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Group:
    """The sums of one (bucket, group)."""

    bucket: datetime | None
    keys: dict[str, str | None]
    counters: dict[str, int]
    routing_ms_sum: float
    latency: list[int]
    sketch: bytes | None


@dataclass(frozen=True, slots=True)
class Summary:
    groups: list[Group]
    rolled_until: datetime | None
    from_records: list[tuple[datetime, datetime]]  # the ranges read from the records


def _ceil_hour(at: datetime) -> datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + HOUR


async def summarize(pool: asyncpg.Pool, q: SummaryQuery) -> Summary:
    for column in (*q.group_by, *q.filters):
        assert column in DIMENSIONS, column
    async with pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
        # Tens of thousands of wide rollup rows: aggregate them in memory.
        await con.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        try:
            await con.execute("SELECT now() AT TIME ZONE $1", q.tz)
        except asyncpg.exceptions.InvalidParameterValueError:
            raise BadQuery(
                "invalid query parameter 'tz'",
                fields=[FieldError("tz", "not a time zone known to the database")],
            ) from None
        rolled: datetime | None = await con.fetchval("SELECT rolled_until FROM rollup_state")
        start = _ceil_hour(q.since)
        end = min(hour_floor(q.until), rolled) if rolled is not None else start
        cut: list[datetime] = []
        if q.interval is not None and start < end:
            cut = [
                r["h"]
                for r in await con.fetch(
                    """SELECT h FROM generate_series($1::timestamptz,
                                                     $2::timestamptz - interval '1 hour',
                                                     interval '1 hour') AS h
                        WHERE date_trunc($3, h, $4) <> date_trunc(
                                  $3, h + interval '1 hour' - interval '1 microsecond', $4)""",
                    start,
                    end,
                    q.interval,
                    q.tz,
                )
            ]
        if start < end:
            raw = merge_ranges([(q.since, start), (end, q.until), *((h, h + HOUR) for h in cut)])
        else:
            raw = [(q.since, q.until)]
        params = Params()
        if q.interval is not None:
            unit, tz = params.add(q.interval), params.add(q.tz)

            def bucket(column: str) -> str:
                return f"date_trunc({unit}::text, {column}, {tz}::text)"
        else:

            def bucket(column: str) -> str:
                return "NULL::timestamptz"

        parts = []
        if start < end:
            where = "".join(f" AND r.{c} = {params.add(v)}" for c, v in q.filters.items())
            parts.append(
                f"""SELECT {bucket("r.hour")} AS t{"".join(f", r.{d}" for d in q.group_by)},
                           {", ".join(f"r.{m}" for m in METRICS)}
                      FROM contact_rollup r
                     WHERE r.hour >= {params.add(start)} AND r.hour < {params.add(end)}
                       AND r.hour <> ALL({params.add(cut)}::timestamptz[]){where}"""
            )
        if raw:
            parts.append(
                aggregate_sql(
                    params,
                    time=bucket("c.received_at"),
                    dims=q.group_by,
                    ranges=raw,
                    filters=q.filters,
                )
            )
        if not parts:
            return Summary(groups=[], rolled_until=rolled, from_records=raw)
        keys = ", ".join(("t", *q.group_by))
        sums = ", ".join(
            [f"sum({c})::bigint AS {c}" for c in (*COUNTERS, *LATENCY)]
            + ["sum(routing_ms_sum)::float8 AS routing_ms_sum", "bit_or(customers) AS customers"]
        )
        union = "\n UNION ALL \n".join(parts)
        sql = f"SELECT {keys}, {sums} FROM ({union}) u GROUP BY {keys} ORDER BY {keys}"
        rows = await con.fetch(sql, *params.values)
    return Summary(
        groups=[_group(r, q.group_by) for r in rows], rolled_until=rolled, from_records=raw
    )


def _group(row: asyncpg.Record, dims: tuple[str, ...]) -> Group:
    sketch: Any = row["customers"]
    return Group(
        bucket=row["t"],
        keys={d: row[d] for d in dims},
        counters={c: int(row[c]) for c in COUNTERS},
        routing_ms_sum=float(row["routing_ms_sum"] or 0.0),
        latency=[row[name] for name in LATENCY],
        sketch=sketch.bytes if sketch is not None else None,
    )
