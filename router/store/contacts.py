"""The routed-contact record: write it once (idempotent on adapter + external
id), read one, list many with keyset pagination."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    customer_id, known_customer, decision, timings"""

#: Filters of the history API: query parameter -> SQL column.
FILTERS = {
    "channel": "channel",
    "queue": "queue",
    "customer_id": "customer_id",
    "adapter": "adapter",
    "rule": "rule",
    "ruleset": "ruleset",
}


async def fetch_one(con: asyncpg.Pool, contact_id: uuid.UUID) -> asyncpg.Record | None:
    # The id carries the time it was received: pass it so only one partition is read.
    return await con.fetchrow(
        f"""SELECT {SUMMARY_COLUMNS}, contact, context, trace
              FROM contacts WHERE contact_id = $1 AND received_at = $2""",
        contact_id,
        uuid7_time(contact_id),
    )


async def fetch_page(
    con: asyncpg.Pool,
    *,
    filters: dict[str, Any],
    since: datetime | None,
    until: datetime | None,
    tag: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; ``after`` is the (received_at, contact_id) of the last row seen."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for key, value in filters.items():
        where.append(f"{FILTERS[key]} = {arg(value)}")
    if tag is not None:
        where.append(f"tags @> ARRAY[{arg(tag)}]::text[]")
    if since is not None:
        where.append(f"received_at >= {arg(since)}")
    if until is not None:
        where.append(f"received_at < {arg(until)}")
    if after is not None:
        where.append(f"(received_at, contact_id) < ({arg(after[0])}, {arg(after[1])})")
    sql = f"SELECT {SUMMARY_COLUMNS} FROM contacts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY received_at DESC, contact_id DESC LIMIT {arg(limit)}"
    return list(await con.fetch(sql, *args))
