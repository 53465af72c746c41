"""Records written straight into the test database, for reporting tests that
need controlled times, outcomes and flags (the routing path always writes
"now" and no outcome)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from router.models import uuid7
from router.store import DatabaseSettings, open_store


@contextlib.asynccontextmanager
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The pool of a store on the test database (opened as the service opens
    its own), for writing rows directly."""
    settings = DatabaseSettings(url=database_url, pool_min=1)
    async with open_store(settings, migrate=False) as store:
        yield store.pool


@dataclass
class Row:
    at: datetime
    adapter: str
    channel: str = "chat"
    queue: str = "q"
    rule: str | None = None
    tier: str | None = None
    customer: uuid.UUID | None = None
    repeat_24h: bool = False
    repeat_7d: bool = False
    channel_switch: bool = False
    routing_ms: float = 2.0
    tags: Sequence[str] = ()
    skills: Sequence[str] = ()
    outcome: str | None = None
    answered_at: datetime | None = None
    abandoned_at: datetime | None = None
    sla_met: bool | None = None
    thread_id: str | None = None
    agent: str | None = None
    preferred_agent: str | None = None
    external_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    contact_id: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        self.contact_id = uuid7(self.at)


_INSERT = """
WITH key AS (
    INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
    VALUES ($3, $6, $1, $2)
)
INSERT INTO contacts (
    contact_id, received_at, adapter, provider, channel, external_id, customer_id,
    known_customer, queue, priority, skills, tags, rule, ruleset, contact, context,
    decision, timings, tier, repeat_24h, repeat_7d, channel_switch, routing_ms,
    outcome, answered_at, abandoned_at, sla_met, thread_id, agent, preferred_agent)
VALUES ($1, $2, $3, $3, $4, $6, $5, $5::uuid IS NOT NULL, $7, 50, $8, $9, $10, 'seed',
        '{}', '{}', $11::jsonb, $12::jsonb, $13, $14, $15, $16, $17, $18, $19, $20, $21,
        $22, $23, $24)
"""


async def seed(con: asyncpg.Pool | asyncpg.Connection, rows: Sequence[Row]) -> None:
    await con.executemany(_INSERT, [_args(r) for r in rows])


def _args(r: Row) -> tuple[object, ...]:
    decision = {
        "queue": r.queue,
        "priority": 50,
        "skills": list(r.skills),
        "sla_seconds": None,
        "tags": list(r.tags),
        "preferred_agent": r.preferred_agent,
        "overflow": [],
        "rule": r.rule,
        "ruleset": "seed",
    }
    return (
        r.contact_id,
        r.at,
        r.adapter,
        r.channel,
        r.customer,
        r.external_id,
        r.queue,
        list(r.skills),
        list(r.tags),
        r.rule,
        decision,
        {"total_ms": r.routing_ms},
        r.tier,
        r.repeat_24h,
        r.repeat_7d,
        r.channel_switch,
        r.routing_ms,
        r.outcome,
        r.answered_at,
        r.abandoned_at,
        r.sla_met,
        r.thread_id,
        r.agent,
        r.preferred_agent,
    )
