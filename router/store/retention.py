"""Retention of the routed-contact record: drop whole monthly partitions that
are entirely older than a cutoff, after deleting the idempotency keys and
outcome events of their contacts in batches; delete expired rows that ended
up in the default partition. The default partition itself is never dropped,
and the hourly rollups (anonymous aggregates) are kept.

A contact still open when its record goes (a lifetime longer than the
retention) leaves the open set first, in a transaction of its own: an agent
holding it is freed, its open offer cancelled, the live log says
``dropped`` (``agent_work.end_open``). The offers made for the contacts go
with their records.

Keys go before their partition: a retried delivery of an expired contact in
between is simply routed again, never answered from a record that is gone.
One process at a time (advisory lock); a partition whose lock cannot be had
within ``LOCK_TIMEOUT`` is left for the next run.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from router.store import agent_work

log = structlog.get_logger("omniroute.retention")

BATCH = 5000
LOCK_TIMEOUT = "5s"
_LOCK = 0x6F6D6E64  # "omnd"
#: before any record
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime
    end: datetime
    rows: int  # the planner's estimate


@dataclass
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    dropped: list[Partition] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # partitions whose lock was busy
    default_rows: int = 0  # expired rows deleted (or found, in a dry run) in the default partition
    keys: int = 0
    events: int = 0
    offers: int = 0  # offers of the records deleted
    open_closed: int = 0  # contacts still open when their record went


_PARTITIONS = r"""
SELECT name, m[1]::timestamptz AS start, m[2]::timestamptz AS "end", rows
  FROM (SELECT c.relname AS name, c.reltuples::bigint AS rows,
               regexp_match(pg_get_expr(c.relpartbound, c.oid),
                            'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'contacts'::regclass) p
 WHERE m IS NOT NULL
 ORDER BY start
"""


async def partitions(con: asyncpg.Connection | asyncpg.Pool) -> list[Partition]:
    """The time-range partitions of ``contacts``, oldest first (not the default)."""
    return [
        Partition(r["name"], r["start"], r["end"], max(int(r["rows"]), 0))
        for r in await con.fetch(_PARTITIONS)
    ]


async def _delete_batches(
    con: asyncpg.Connection, table: str, start: datetime, end: datetime
) -> int:
    total = 0
    while True:
        status = await con.execute(
            f"""DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM {table}
                     WHERE received_at >= $1 AND received_at < $2 LIMIT $3))""",
            start,
            end,
            BATCH,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < BATCH:
            return total


_DEFAULT_BATCH = """
WITH gone AS (
    DELETE FROM {default} WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM {default} WHERE received_at < $1 LIMIT $2))
    RETURNING contact_id, adapter, external_id
), keys AS (
    DELETE FROM contact_keys k USING gone
     WHERE k.adapter = gone.adapter AND k.external_id = gone.external_id
       AND k.contact_id = gone.contact_id
    RETURNING 1
), events AS (
    DELETE FROM contact_events e USING gone WHERE e.contact_id = gone.contact_id
    RETURNING 1
), offers AS (
    DELETE FROM offers f USING gone WHERE f.contact_id = gone.contact_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS rows, (SELECT count(*) FROM keys) AS keys,
       (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM offers) AS offers
"""

# the open contacts of the records about to go: of a partition (by its
# range), or of the default partition before the cutoff
_OPEN_OF = """
SELECT o.contact_id FROM open_contacts o JOIN {table} c
    ON c.contact_id = o.contact_id AND c.received_at = o.received_at
 WHERE o.received_at >= $1 AND o.received_at < $2
"""


async def _end_open(con: asyncpg.Connection, table: str, start: datetime, end: datetime) -> int:
    """End the open contacts of ``table``'s records received in [start, end)."""
    async with con.transaction():
        ids = [r["contact_id"] for r in await con.fetch(_OPEN_OF.format(table=table), start, end)]
        ended, _ = await agent_work.end_open(con, ids, kind="dropped")
        return ended


async def _delete_offers(con: asyncpg.Connection, table: str) -> int:
    """Delete the offers made for the contacts of a partition about to go."""
    status = await con.execute(
        f"DELETE FROM offers f USING {table} c WHERE f.contact_id = c.contact_id"
    )
    return int(status.split()[-1])


async def apply(
    pool: asyncpg.Pool, cutoff: datetime, *, dry_run: bool = False
) -> RetentionReport | None:
    """Expire records received before ``cutoff``; ``None`` if another
    process is applying retention right now."""
    report = RetentionReport(cutoff=cutoff, dry_run=dry_run)
    async with pool.acquire() as con:
        if not await con.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            return None
        try:
            default = await con.fetchval(
                """SELECT partdefid::regclass::text FROM pg_partitioned_table
                    WHERE partrelid = 'contacts'::regclass AND partdefid <> 0"""
            )
            for p in await partitions(con):
                if p.end > cutoff:
                    break
                if dry_run:
                    report.dropped.append(p)
                    continue
                report.open_closed += await _end_open(con, _ident(p.name), p.start, p.end)
                report.offers += await _delete_offers(con, _ident(p.name))
                report.events += await _delete_batches(con, "contact_events", p.start, p.end)
                report.keys += await _delete_batches(con, "contact_keys", p.start, p.end)
                try:
                    async with con.transaction():
                        await con.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                        await con.execute(f"DROP TABLE {_ident(p.name)}")
                except asyncpg.exceptions.LockNotAvailableError:
                    log.warning("retention_partition_busy", partition=p.name)
                    report.skipped.append(p.name)
                    continue
                log.info("retention_partition_dropped", partition=p.name, rows=p.rows)
                report.dropped.append(p)
            if default is not None:
                if dry_run:
                    report.default_rows = await con.fetchval(
                        f"SELECT count(*) FROM {default} WHERE received_at < $1", cutoff
                    )
                else:
                    report.open_closed += await _end_open(con, default, _EPOCH, cutoff)
                    while True:
                        row = await con.fetchrow(
                            _DEFAULT_BATCH.format(default=default), cutoff, BATCH
                        )
                        report.default_rows += row["rows"]
                        report.keys += row["keys"]
                        report.events += row["events"]
                        report.offers += row["offers"]
                        if row["rows"] < BATCH:
                            break
        finally:
            await con.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return report


def months_before(at: datetime, months: int) -> datetime:
    """``at`` moved back by calendar months (the day clamped to the month's end)."""
    index = at.year * 12 + at.month - 1 - months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
