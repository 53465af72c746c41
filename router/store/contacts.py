"""The routed-contact record: write it once (idempotent on adapter + external
id), read one, list many with keyset pagination, export any number as CSV or
NDJSON."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from router.models import Contact, CustomerContext, Decision, uuid7_time

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class NewRecord:
    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    contact: Contact
    customer_id: uuid.UUID | None
    context: CustomerContext
    decision: Decision
    trace: list[dict[str, Any]] | None
    timings: dict[str, float]
    context_degraded: bool = False


_INSERT = """
WITH key AS (
    INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
    VALUES ($3, $6, $1, $2)
    ON CONFLICT DO NOTHING
    RETURNING contact_id
)
INSERT INTO contacts (
    contact_id, received_at, adapter, provider, channel, external_id, thread_id,
    customer_id, known_customer, queue, priority, skills, sla_seconds, tags,
    preferred_agent, rule, ruleset, contact, context, decision, trace, timings,
    tier, repeat_24h, repeat_7d, previous_channel, channel_switch, context_degraded, routing_ms)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
       $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29
  FROM key
RETURNING contact_id
"""

_EARLIER = """
SELECT c.contact_id, c.customer_id, c.decision
  FROM contact_keys k
  JOIN contacts c ON c.contact_id = k.contact_id AND c.received_at = k.received_at
 WHERE k.adapter = $1 AND k.external_id = $2
"""


def _args(r: NewRecord) -> tuple[Any, ...]:
    d = r.decision
    last = r.context.last
    recent = last is not None and r.received_at - last.at <= WEEK
    return (
        r.contact_id,
        r.received_at,
        r.adapter,
        r.contact.provider,
        r.contact.channel,
        r.contact.external_id,
        r.contact.thread_id,
        r.customer_id,
        r.context.known,
        d.queue,
        d.priority,
        list(d.skills),
        d.sla_seconds,
        list(d.tags),
        d.preferred_agent,
        d.rule,
        d.ruleset,
        r.contact.model_dump(mode="json"),
        r.context.model_dump(mode="json"),
        d.model_dump(mode="json"),
        r.trace,
        r.timings,
        r.context.tier,
        last is not None and r.received_at - last.at <= DAY,
        recent,
        last.channel if recent and last is not None else None,
        recent and last is not None and last.channel != r.contact.channel,
        r.context_degraded,
        r.timings.get("total_ms"),
    )


async def insert(
    con: asyncpg.Connection | asyncpg.Pool, record: NewRecord
) -> tuple[uuid.UUID, uuid.UUID | None, Decision] | None:
    """Write the record; ``None`` when it was new, else the earlier delivery's
    (contact id, customer id, decision) — a concurrent duplicate waits for the
    first delivery's commit and gets its answer."""
    inserted = await con.fetchval(_INSERT, *_args(record))
    if inserted is not None:
        return None
    row = await con.fetchrow(_EARLIER, record.adapter, record.contact.external_id)
    if row is None:  # the key exists but its record is gone (erased or expired)
        raise LookupError("the earlier delivery's record no longer exists")
    return row["contact_id"], row["customer_id"], Decision.model_validate(row["decision"])


# -- reading ---------------------------------------------------------------

SUMMARY_COLUMNS = """contact_id, received_at, adapter, provider, channel, external_id, thread_id,
    customer_id, known_customer, decision, timings, tier, repeat_24h, repeat_7d,
    previous_channel, channel_switch, context_degraded, routing_ms, outcome, agent,
    assigned_at, answered_at, abandoned_at, resolved_at, closed_at, sla_met"""

#: Filters of the history API: query parameter -> SQL column.
FILTERS = {
    "channel": "channel",
    "queue": "queue",
    "customer_id": "customer_id",
    "adapter": "adapter",
    "rule": "rule",
    "ruleset": "ruleset",
    "outcome": "outcome",
}

#: The export's columns: those of ``reporting.routed_contacts_v1``, in its
#: order, flattened for CSV (lists joined by ``|``, booleans true/false).
VIEW = "reporting.routed_contacts_v1"
_LISTS = ("skills", "tags")
_BOOLEANS = (
    "known_customer",
    "repeat_24h",
    "repeat_7d",
    "channel_switch",
    "context_degraded",
    "sla_met",
)
EXPORT_COLUMNS = (
    "contact_id",
    "received_at",
    "adapter",
    "provider",
    "channel",
    "external_id",
    "thread_id",
    "customer_id",
    "known_customer",
    "queue",
    "priority",
    "skills",
    "sla_seconds",
    "tags",
    "preferred_agent",
    "rule",
    "ruleset",
    "routing_ms",
    "tier",
    "repeat_24h",
    "repeat_7d",
    "previous_channel",
    "channel_switch",
    "context_degraded",
    "outcome",
    "agent",
    "assigned_at",
    "answered_at",
    "abandoned_at",
    "resolved_at",
    "closed_at",
    "sla_met",
)


def _csv_column(name: str) -> str:
    if name in _LISTS:
        return f"array_to_string({name}, '|') AS {name}"
    if name in _BOOLEANS:
        return f"{name}::text AS {name}"
    return name


_CSV_SELECT = ", ".join(_csv_column(c) for c in EXPORT_COLUMNS)

# NDJSON lines are put together column by column rather than by row_to_json,
# which is slower: free text, times and lists through to_json (quoting and
# escaping), ids, numbers, booleans and names that are safe by construction
# (channels, adapter names matching the config's pattern, adapter kinds,
# ruleset hashes) as their text.
_PLAIN = ("priority", "sla_seconds", "routing_ms", *_BOOLEANS)
_QUOTED = (
    "contact_id",
    "customer_id",
    "channel",
    "previous_channel",
    "adapter",
    "provider",
    "ruleset",
)
_NOT_NULL = (
    "contact_id",
    "received_at",
    "adapter",
    "provider",
    "channel",
    "external_id",
    "known_customer",
    "queue",
    "priority",
    "skills",
    "tags",
    "ruleset",
    "repeat_24h",
    "repeat_7d",
    "channel_switch",
    "context_degraded",
)


def _json_value(name: str) -> str:
    if name in _QUOTED:
        value = f"'\"' || {name}::text || '\"'"
    elif name in _PLAIN:
        value = f"{name}::text"
    else:
        value = f"to_json({name})::text"
    return value if name in _NOT_NULL else f"coalesce({value}, 'null')"


_NDJSON_SELECT = (
    "concat('{"
    + ",".join(f"\"{name}\":', {_json_value(name)}, '" for name in EXPORT_COLUMNS)
    + "}')"
)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records: the history API's filters, newest first."""

    filters: dict[str, Any]
    since: datetime | None = None
    until: datetime | None = None
    tag: str | None = None
    after: tuple[datetime, uuid.UUID] | None = (
        None  # (received_at, contact_id) of the last row seen
    )

    def where(self, args: list[Any]) -> str:
        """The WHERE clause (or ""), appending its arguments to ``args``."""
        where: list[str] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        for key, value in self.filters.items():
            where.append(f"{FILTERS[key]} = {arg(value)}")
        if self.tag is not None:
            where.append(f"tags @> ARRAY[{arg(self.tag)}]::text[]")
        if self.since is not None:
            where.append(f"received_at >= {arg(self.since)}")
        if self.until is not None:
            where.append(f"received_at < {arg(self.until)}")
        if self.after is not None:
            at, contact_id = self.after
            where.append(f"(received_at, contact_id) < ({arg(at)}, {arg(contact_id)})")
        return " WHERE " + " AND ".join(where) if where else ""


_ORDER = " ORDER BY received_at DESC, contact_id DESC"


async def fetch_one(con: asyncpg.Pool, contact_id: uuid.UUID) -> asyncpg.Record | None:
    # The id carries the time it was received: pass it so only one partition is read.
    return await con.fetchrow(
        f"""SELECT {SUMMARY_COLUMNS}, contact, context, trace
              FROM contacts WHERE contact_id = $1 AND received_at = $2""",
        contact_id,
        uuid7_time(contact_id),
    )


async def fetch_page(
    con: asyncpg.Pool, selection: Selection, *, limit: int
) -> list[asyncpg.Record]:
    """Up to ``limit`` records of ``selection``, newest first."""
    args: list[Any] = []
    sql = f"SELECT {SUMMARY_COLUMNS} FROM contacts{selection.where(args)}{_ORDER}"
    args.append(limit)
    sql += f" LIMIT ${len(args)}"
    return list(await con.fetch(sql, *args))


async def customer_exists(con: asyncpg.Pool, customer_id: uuid.UUID) -> bool:
    return bool(
        await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = $1)", customer_id
        )
    )


async def export(
    pool: asyncpg.Pool,
    selection: Selection,
    *,
    fmt: Literal["csv", "ndjson"],
    sink: Callable[[bytes], Awaitable[None]],
    limit: int | None = None,
    timeout: float,
) -> None:
    """Stream the records of ``selection`` (newest first) to ``sink`` as CSV
    with a header line or as NDJSON, in the view's columns. PostgreSQL writes
    the text (COPY TO STDOUT); the connection stops reading while ``sink``
    waits, so memory stays flat however many rows there are."""
    args: list[Any] = []
    where = selection.where(args)
    tail = where + _ORDER + (f" LIMIT {int(limit)}" if limit is not None else "")
    async with pool.acquire() as con, con.transaction(readonly=True):
        # Rows in index order (a merge of the partitions' indexes) rather than
        # a sort: the first byte leaves at once and nothing spills to disk.
        await con.execute(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL enable_sort = off"
        )
        if fmt == "csv":
            await con.copy_from_query(
                f"SELECT {_CSV_SELECT} FROM {VIEW}{tail}",
                *args,
                output=sink,
                format="csv",
                header=True,
                timeout=timeout,
            )
        else:
            # CSV with a quote and delimiter that JSON text never contains
            # (it escapes control characters): each line is the JSON as is.
            await con.copy_from_query(
                f"SELECT {_NDJSON_SELECT} FROM {VIEW}{tail}",
                *args,
                output=sink,
                format="csv",
                quote="\x01",
                delimiter="\x02",
                timeout=timeout,
            )
