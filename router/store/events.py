"""Outcome events the platform reports for a routed contact: recorded once
(idempotent on the event id) and folded into the record's outcome columns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from router.models import OutcomeEvent, uuid7_time
from router.store import agent_work, lifecycle


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """Whether an event was new, and the contact's outcome after it."""

    recorded: bool
    duplicate: bool
    outcome: str | None
    agent: str | None
    sla_met: bool | None
    #: the lifecycle state after it: an open state, the terminal outcome that
    #: closed it, or ``None`` when the contact's lifecycle is not kept or ended before
    state: str | None = None
    #: what it changed in the lifecycle (``None``: nothing)
    transition: lifecycle.Transition | None = None


EVENT_TYPES = ("assigned", "answered", "transferred", "abandoned", "resolved", "closed")

# The times the event sets (the earliest of each type), named once: the
# record's UPDATE writes them and computes its SLA from them.
_ANSWERED = "CASE WHEN ev.type = 'answered' THEN least(c.answered_at, ev.at) ELSE c.answered_at END"
_ABANDONED = (
    "CASE WHEN ev.type = 'abandoned' THEN least(c.abandoned_at, ev.at) ELSE c.abandoned_at END"
)

# SLA: met when answered within sla_seconds of arrival; missed when answered
# later, or abandoned after the SLA ran out. Abandoned earlier: not counted.
# ``{answered}`` and ``{abandoned}``: the record's times (after the event).
_SLA_MET = """CASE
        WHEN {c}sla_seconds IS NULL THEN NULL
        WHEN {answered} IS NOT NULL
             THEN {answered} - {c}received_at <= {c}sla_seconds * interval '1 second'
        WHEN {abandoned} IS NOT NULL
             AND {abandoned} - {c}received_at > {c}sla_seconds * interval '1 second' THEN false
        ELSE NULL END"""

# the record's outcome columns, its SLA, and the offer facts of its open row
# (if any): one UPDATE of the record, so one new version of the row (a wide
# row, seldom updated in place) and, when it is not HOT, one entry in each
# of its indexes
_RECORD = f"""
WITH ev AS (
    INSERT INTO contact_events (contact_id, received_at, event_id, type, at, agent, data)
    SELECT c.contact_id, c.received_at, $3, $4, $5, $6, $7
      FROM contacts c WHERE c.contact_id = $1 AND c.received_at = $2
    ON CONFLICT DO NOTHING
    RETURNING contact_id, received_at, type, at, agent
)
UPDATE contacts c SET
    outcome = CASE WHEN c.outcome_at IS NULL OR ev.at >= c.outcome_at THEN ev.type
                   ELSE c.outcome END,
    outcome_at = greatest(c.outcome_at, ev.at),
    agent = CASE WHEN ev.agent IS NOT NULL AND ev.type IN ('assigned', 'answered', 'transferred')
                 THEN ev.agent ELSE c.agent END,
    assigned_at = CASE WHEN ev.type = 'assigned' THEN least(c.assigned_at, ev.at)
                       ELSE c.assigned_at END,
    answered_at = {_ANSWERED},
    abandoned_at = {_ABANDONED},
    resolved_at = CASE WHEN ev.type = 'resolved' THEN least(c.resolved_at, ev.at)
                       ELSE c.resolved_at END,
    closed_at = CASE WHEN ev.type = 'closed' THEN least(c.closed_at, ev.at)
                     ELSE c.closed_at END,
    sla_met = {_SLA_MET.format(c="c.", answered=_ANSWERED, abandoned=_ABANDONED)},
    {agent_work.OFFER_FACTS}
  FROM ev LEFT JOIN open_contacts o ON o.contact_id = ev.contact_id
 WHERE c.contact_id = ev.contact_id AND c.received_at = ev.received_at
RETURNING c.outcome, c.agent, c.sla_met, c.customer_id, c.external_id
"""

# A duplicate event (its id recorded before) changes no outcome column: the
# SLA is computed again from the stored times, and the outcome read.
_STORED_SLA = _SLA_MET.format(c="", answered="answered_at", abandoned="abandoned_at")
_SLA = f"""
UPDATE contacts SET sla_met = {_STORED_SLA}
 WHERE contact_id = $1 AND received_at = $2
RETURNING sla_met, outcome, agent
"""


async def record(
    pool: asyncpg.Pool,
    contact_id: uuid.UUID,
    *,
    event_id: str,
    type_: str,
    at: datetime,
    agent: str | None,
    data: dict[str, Any],
    outbox: lifecycle.TransitionOutbox | None = None,
) -> EventOutcome | None:
    """Record one event; ``None`` if the contact does not exist. The result says
    whether the event was new and the contact's outcome after it; a lifecycle
    change puts the ``outbox(transition)`` rows in the outbox, in this transaction."""
    async with pool.acquire() as con, con.transaction():
        # the open row first, then the record (the lock order of ``lifecycle``)
        before = await lifecycle.lock_open(con, contact_id)
        return await record_locked(
            con,
            contact_id,
            before,
            event_id=event_id,
            type_=type_,
            at=at,
            agent=agent,
            data=data,
            outbox=outbox,
        )


async def record_locked(
    con: asyncpg.Connection,
    contact_id: uuid.UUID,
    before: str | None,
    *,
    event_id: str,
    type_: str,
    at: datetime,
    agent: str | None,
    data: dict[str, Any],
    outbox: lifecycle.TransitionOutbox | None = None,
) -> EventOutcome | None:
    """``record`` in the caller's transaction, the open row locked already
    (``lifecycle.lock_open``, which gave ``before``); an accepted offer is
    recorded so (``offers.decide``)."""
    received_at = uuid7_time(contact_id)
    exists = await con.fetchval(
        "SELECT 1 FROM contacts WHERE contact_id = $1 AND received_at = $2 FOR UPDATE",
        contact_id,
        received_at,
    )
    if not exists:
        return None
    row = await con.fetchrow(_RECORD, contact_id, received_at, event_id, type_, at, agent, data)
    state = row if row is not None else await con.fetchrow(_SLA, contact_id, received_at)
    moved = None
    if row is not None:
        # outbox events for lifecycle changes are written in apply_event
        who = (row["customer_id"], row["external_id"])
        moved = await lifecycle.apply_event(
            con, contact_id, before, type_, at=at, who=who, outbox=outbox, agent=row["agent"]
        )
    now = moved.after if moved is not None else before
    if now is None and state["outcome"] in lifecycle.TERMINAL:
        now = state["outcome"]
    return EventOutcome(
        recorded=row is not None,
        duplicate=row is None,
        outcome=state["outcome"],
        agent=state["agent"],
        sla_met=state["sla_met"],
        state=now,
        transition=moved,
    )


_NAMED = """
SELECT contact_id FROM contact_keys WHERE adapter = $1 AND external_id = $2
UNION
SELECT contact_id FROM contacts WHERE adapter = $1 AND thread_id = $3
UNION
SELECT contact_id FROM contacts
 WHERE adapter = $1 AND contact_id = $4 AND received_at = $5
"""


async def record_named(
    pool: asyncpg.Pool,
    adapter: str,
    event: OutcomeEvent,
    *,
    at: datetime,
    outbox: lifecycle.TransitionOutbox | None = None,
) -> list[tuple[uuid.UUID, EventOutcome]]:
    """Record a provider's outcome event for every contact of ``adapter`` it
    names (by contact id, external id or thread id), each as ``record``
    would; what it did per contact (empty: it names none)."""
    received = None if event.contact_id is None else uuid7_time(event.contact_id)
    rows = await pool.fetch(
        _NAMED, adapter, event.external_id, event.thread_id, event.contact_id, received
    )
    out: list[tuple[uuid.UUID, EventOutcome]] = []
    for row in sorted(rows, key=lambda r: r["contact_id"]):
        done = await record(
            pool,
            row["contact_id"],
            event_id=event.event_id,
            type_=event.type,
            at=at,
            agent=None,
            data=event.data,
            outbox=outbox,
        )
        if done is not None:
            out.append((row["contact_id"], done))
    return out
