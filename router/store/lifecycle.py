"""The lifecycle of routed contacts (docs/lifecycle.md): the open contacts,
their overflow timers and their expiry.

``open_contacts`` holds a row per contact still open (``waiting``,
``assigned``, ``answered``), inserted by ``records.insert_many`` in the
record's own statement, changed by outcome events (``apply_event``, inside
``events.record``'s transaction), by due overflow steps (``apply_due_steps``)
and removed at a terminal state (resolved, closed, abandoned: by events;
expired: ``expire_due``). Timers are rows with a due time: a batch of due rows
is claimed in one statement with ``FOR UPDATE SKIP LOCKED``, so any number of
instances apply each step once, and a step whose row an event has moved out
of ``waiting`` is never claimed.

Lock order, everywhere: the ``open_contacts`` row, then the ``contacts`` row.

Outbound events: ``apply_due_steps``, ``expire_due`` and ``apply_event``
return what they changed and take an ``outbox`` function (computed by the
caller, which knows the destinations) that turns it into outbox rows; the
rows (``contact.step``, ``contact.expired``, ``contact.assigned``...) are
written at the places marked "outbox events are written here", in the
transaction of the change.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from router.models import OverflowStep
from router.store import agent_work, deliveries, live
from router.store.deliveries import Outgoing

#: States of a contact while it is open, in the order they advance.
OPEN_STATES = ("waiting", "assigned", "answered")
#: Outcomes that end the lifecycle (the open row is deleted).
TERMINAL = ("resolved", "closed", "abandoned", "expired")
#: Event type -> the open state it moves to (events not listed end it, or move nothing).
_ADVANCE = {"assigned": "assigned", "transferred": "assigned", "answered": "answered"}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a waiting contact is: queue, priority, skills."""

    queue: str
    priority: int
    skills: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "priority": self.priority, "skills": list(self.skills)}


@dataclass(frozen=True, slots=True)
class StepApplied:
    """One overflow step applied to a waiting contact."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    channel: str
    #: the step's index in the decision's ``overflow`` list
    step: int
    #: when it was due (arrival + ``after_seconds``) and when it was applied
    due: datetime
    at: datetime
    before: Placement
    after: Placement
    #: from the record, filled in when the step is recorded on it
    customer_id: uuid.UUID | None = None
    external_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "due": self.due.isoformat(),
            "at": self.at.isoformat(),
            "from": self.before.as_json(),
            "to": self.after.as_json(),
        }


@dataclass(frozen=True, slots=True)
class Expired:
    """An open contact whose lifetime ran out."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    channel: str
    queue: str
    #: the state it was in when it expired
    state: str
    at: datetime
    #: its last placement (with ``queue``)
    priority: int = 0
    skills: tuple[str, ...] = ()
    #: from the record
    customer_id: uuid.UUID | None = None
    external_id: str | None = None

    @property
    def placement(self) -> Placement:
        return Placement(self.queue, self.priority, self.skills)


@dataclass(frozen=True, slots=True)
class Transition:
    """What an outcome event did to an open contact: ``before`` -> ``after``
    (``after`` is the terminal outcome when the contact left the open set)."""

    contact_id: uuid.UUID
    before: str
    after: str
    #: the outcome event's type and time
    type_: str = ""
    at: datetime | None = None
    adapter: str = ""
    channel: str = ""
    #: where the contact was when it moved
    placement: Placement | None = None
    #: from the record
    customer_id: uuid.UUID | None = None
    external_id: str | None = None
    #: the agent the event names (``contact.assigned`` carries it)
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class OpenContact:
    """A contact's row in ``open_contacts``."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    channel: str
    queue: str
    priority: int
    skills: list[str]
    sla_seconds: int | None
    state: str
    step: int
    next_step_at: datetime | None
    expires_at: datetime
    version: int


_OPEN_COLUMNS = ", ".join(OpenContact.__dataclass_fields__)

#: The outbox rows of steps just applied, and of contacts just expired (the
#: destinations whose filters match, computed by the caller; see
#: ``router.outbound``): written in the transaction that made the change.
StepOutbox = Callable[[Sequence[StepApplied]], Sequence[Outgoing]]
ExpiredOutbox = Callable[[Sequence[Expired]], Sequence[Outgoing]]
TransitionOutbox = Callable[[Transition], Sequence[Outgoing]]


def first_due(received_at: datetime, overflow: tuple[OverflowStep, ...]) -> datetime | None:
    """When the first overflow step is due (``None`` without steps)."""
    return received_at + timedelta(seconds=overflow[0].after_seconds) if overflow else None


# -- outcome events --------------------------------------------------------------


async def lock_open(con: asyncpg.Connection, contact_id: uuid.UUID) -> str | None:
    """Lock the contact's open row (first, by the lock order); its state, or
    ``None`` when it is not open."""
    state: str | None = await con.fetchval(
        "SELECT state FROM open_contacts WHERE contact_id = $1 FOR UPDATE", contact_id
    )
    return state


async def lock_open_since(
    con: asyncpg.Connection, contact_id: uuid.UUID
) -> tuple[str | None, datetime | None]:
    """``lock_open``, and the time the contact was received (``None`` with
    the state when it is not open): one read of the row for both."""
    row = await con.fetchrow(
        "SELECT state, received_at FROM open_contacts WHERE contact_id = $1 FOR UPDATE", contact_id
    )
    return (None, None) if row is None else (row["state"], row["received_at"])


# Each statement logs the change for the live stream (``live``) as it makes it,
# and returns the placement the outbox events carry.
_CLOSE = """
WITH gone AS (
    DELETE FROM open_contacts WHERE contact_id = $1
    RETURNING contact_id, adapter, channel, queue, priority, skills
), logged AS (
    INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
    SELECT contact_id, $3, queue, channel, jsonb_build_object('from', $2::text) FROM gone
)
SELECT adapter, channel, queue, priority, skills FROM gone
"""

_ADVANCE_STATE = """
WITH moved AS (
    UPDATE open_contacts
       SET state = $2, next_step_at = NULL, version = version + 1, updated_at = now()
     WHERE contact_id = $1
    RETURNING contact_id, adapter, channel, queue, priority, skills
), logged AS (
    INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
    SELECT contact_id, $2, queue, channel, jsonb_build_object('from', $3::text) FROM moved
)
SELECT adapter, channel, queue, priority, skills FROM moved
"""


async def apply_event(
    con: asyncpg.Connection,
    contact_id: uuid.UUID,
    before: str | None,
    type_: str,
    *,
    at: datetime | None = None,
    who: tuple[uuid.UUID | None, str | None] = (None, None),
    outbox: TransitionOutbox | None = None,
    agent: str | None = None,
) -> Transition | None:
    """Move the open contact (locked by ``lock_open``, in state ``before``) by
    an outcome event of ``type_``, in the caller's transaction. A state never
    goes back (a late ``assigned`` after ``answered`` moves nothing); any
    state but ``waiting`` stops the overflow timer. ``None`` when nothing
    changed. ``who`` is the record's (customer id, external id); the outbox
    gets the ``outbox(transition)`` rows."""
    if before is None:
        return None
    if type_ in TERMINAL:
        after = type_
        row = await con.fetchrow(_CLOSE, contact_id, before, type_)
        # the agent holding it (offered or assigned) is free of it
        await agent_work.close_offers(con, [contact_id])
    else:
        advanced = _ADVANCE.get(type_)
        if advanced is None or OPEN_STATES.index(advanced) <= OPEN_STATES.index(before):
            return None
        after = advanced
        row = await con.fetchrow(_ADVANCE_STATE, contact_id, after, before)
    moved = Transition(
        contact_id,
        before,
        after,
        type_,
        at,
        row["adapter"],
        row["channel"],
        Placement(row["queue"], row["priority"], tuple(row["skills"])),
        *who,
        agent,
    )
    # outbox events are written here (contact.assigned / answered / abandoned /
    # resolved / closed), in the event's transaction
    if outbox is not None:
        await deliveries.enqueue(con, outbox(moved))
    return moved


# -- overflow steps --------------------------------------------------------------

# One statement claims a batch of due steps: rows of other transactions (an
# instance applying them, an event moving the contact) are skipped, and a row
# no longer waiting is not due.
_CLAIM_STEPS = """
SELECT contact_id, received_at, adapter, channel, queue, priority, skills, overflow,
       step, next_step_at, now() AS now
  FROM open_contacts
 WHERE next_step_at <= now() AND state = 'waiting'
 ORDER BY next_step_at
 LIMIT $1
   FOR UPDATE SKIP LOCKED
"""

_UPDATE_OPEN = """
UPDATE open_contacts o
   SET queue = u.queue, priority = u.priority,
       skills = ARRAY(SELECT jsonb_array_elements_text(u.skills::jsonb)),
       step = u.step, next_step_at = u.next_step_at,
       version = o.version + 1, updated_at = now()
  FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::timestamptz[])
       AS u(contact_id, queue, priority, skills, step, next_step_at)
 WHERE o.contact_id = u.contact_id
"""

# the record gains the steps, and its open row's offer facts
_RECORD_STEPS = f"""
UPDATE contacts c SET steps = c.steps || u.steps::jsonb, {agent_work.OFFER_FACTS}
  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(contact_id, received_at, steps)
       LEFT JOIN open_contacts o ON o.contact_id = u.contact_id
 WHERE c.contact_id = u.contact_id AND c.received_at = u.received_at
RETURNING c.contact_id, c.customer_id, c.external_id
"""


def _dropped(skill: str, drop: Sequence[str]) -> bool:
    """``drop_skills: [billing]`` drops ``billing`` and ``billing:3`` alike."""
    name = skill.rpartition(":")[0] if skill[-1:].isdigit() and ":" in skill else skill
    return skill in drop or name in drop


def due_steps(row: asyncpg.Record | dict[str, Any]) -> tuple[list[StepApplied], dict[str, Any]]:
    """The steps of a claimed row that are due at its ``now`` (every one
    that is, in order: after an outage several may be), and the row's new
    placement and timer."""
    overflow = [OverflowStep.model_validate(s) for s in row["overflow"]]
    received_at: datetime = row["received_at"]
    now: datetime = row["now"]
    place = Placement(row["queue"], row["priority"], tuple(row["skills"]))
    step: int = row["step"]
    applied = []
    while step < len(overflow):
        due = received_at + timedelta(seconds=overflow[step].after_seconds)
        if due > now:
            break
        s = overflow[step]
        after = Placement(
            s.queue or place.queue,
            place.priority if s.priority is None else s.priority,
            tuple(k for k in place.skills if not _dropped(k, s.drop_skills)),
        )
        applied.append(
            StepApplied(
                row["contact_id"],
                received_at,
                row["adapter"],
                row["channel"],
                step,
                due,
                now,
                place,
                after,
            )
        )
        place = after
        step += 1
    next_at = (
        received_at + timedelta(seconds=overflow[step].after_seconds)
        if step < len(overflow)
        else None
    )
    return applied, {"place": place, "step": step, "next_step_at": next_at}


async def apply_due_steps(
    pool: asyncpg.Pool, *, limit: int, outbox: StepOutbox | None = None
) -> list[StepApplied]:
    """Claim up to ``limit`` waiting contacts with a due step and apply their
    due steps, in one transaction: the open row moves (queue, priority,
    skills, next due time), the record gains the steps (``contacts.steps``)
    and the outbox the ``outbox(applied)`` rows. What was applied, in order;
    empty when nothing was due."""
    async with pool.acquire() as con, con.transaction():
        rows = await con.fetch(_CLAIM_STEPS, limit)
        if not rows:
            return []
        applied: list[StepApplied] = []
        updates = []
        for row in rows:
            steps, new = due_steps(row)
            applied += steps
            updates.append((row, steps, new))
        await con.execute(
            _UPDATE_OPEN,
            [r["contact_id"] for r, _, _ in updates],
            [n["place"].queue for _, _, n in updates],
            [n["place"].priority for _, _, n in updates],
            [orjson.dumps(list(n["place"].skills)).decode() for _, _, n in updates],
            [n["step"] for _, _, n in updates],
            [n["next_step_at"] for _, _, n in updates],
        )
        recorded = await con.fetch(
            _RECORD_STEPS,
            [r["contact_id"] for r, _, _ in updates],
            [r["received_at"] for r, _, _ in updates],
            [orjson.dumps([s.as_json() for s in steps]).decode() for _, steps, _ in updates],
        )
        who = {r["contact_id"]: (r["customer_id"], r["external_id"]) for r in recorded}
        applied = [
            dataclasses.replace(
                s,
                customer_id=who.get(s.contact_id, (None, None))[0],
                external_id=who.get(s.contact_id, (None, None))[1],
            )
            for s in applied
        ]
        await live.log_steps(con, applied)
        # outbox events are written here: one contact.step per step applied, in
        # this transaction, so a step applied is a step delivered
        if outbox is not None and applied:
            await deliveries.enqueue(con, outbox(applied))
    return applied


async def next_due(pool: asyncpg.Pool) -> datetime | None:
    """When the soonest pending overflow step is due (``None``: none is)."""
    at: datetime | None = await pool.fetchval(
        "SELECT min(next_step_at) FROM open_contacts WHERE state = 'waiting'"
    )
    return at


# -- expiry ----------------------------------------------------------------------------

# each step reads the one before it: the records' update returns the open
# rows' columns with the records' ids. No join of two CTEs (a nested loop
# with a join filter once the plan is generic, quadratic in the batch,
# docs/operations.md): an open row whose record is missing (none should
# be) is found by the record's key, only when the update returned fewer
# rows than were deleted
_EXPIRE = f"""
WITH due AS (
    SELECT contact_id FROM open_contacts
     WHERE expires_at <= now()
     ORDER BY expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM open_contacts o USING due WHERE o.contact_id = due.contact_id
    RETURNING o.contact_id, o.received_at, o.adapter, o.channel, o.queue, o.state,
              o.priority, o.skills, o.offers, o.offered_at
), rec AS (
    UPDATE contacts c
       SET outcome = CASE WHEN c.outcome_at IS NULL OR now() >= c.outcome_at
                          THEN 'expired' ELSE c.outcome END,
           outcome_at = greatest(c.outcome_at, now()),
           {agent_work.OFFER_FACTS}
      FROM gone o
     WHERE c.contact_id = o.contact_id AND c.received_at = o.received_at
    RETURNING o.contact_id, o.received_at, o.adapter, o.channel, o.queue, o.state,
              o.priority, o.skills, c.customer_id, c.external_id
), logged AS (
    INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
    SELECT contact_id, 'expired', queue, channel, jsonb_build_object('from', state) FROM gone
)
SELECT contact_id, received_at, adapter, channel, queue, state, now() AS at, priority, skills,
       customer_id, external_id
  FROM rec
 UNION ALL
SELECT contact_id, received_at, adapter, channel, queue, state, now(), priority, skills,
       NULL, NULL
  FROM gone
 WHERE (SELECT count(*) FROM rec) < (SELECT count(*) FROM gone)
   AND NOT EXISTS (SELECT FROM contacts c
                    WHERE c.contact_id = gone.contact_id AND c.received_at = gone.received_at)
"""


async def expire_due(
    pool: asyncpg.Pool, *, limit: int, outbox: ExpiredOutbox | None = None
) -> list[Expired]:
    """Close up to ``limit`` open contacts past their lifetime, in one
    statement: the open row goes, the record's outcome becomes ``expired``;
    the outbox gets the ``outbox(expired)`` rows in the same transaction."""
    async with pool.acquire() as con, con.transaction():
        rows = await con.fetch(_EXPIRE, limit)
        gone = [
            Expired(
                r["contact_id"],
                r["received_at"],
                r["adapter"],
                r["channel"],
                r["queue"],
                r["state"],
                r["at"],
                r["priority"],
                tuple(r["skills"]),
                r["customer_id"],
                r["external_id"],
            )
            for r in rows
        ]
        await agent_work.close_offers(con, [g.contact_id for g in gone])
        # outbox events are written here: one contact.expired per row, in this transaction
        if outbox is not None and gone:
            await deliveries.enqueue(con, outbox(gone))
    return gone


# -- reading -----------------------------------------------------------------------------


async def fetch_open(pool: asyncpg.Pool, contact_id: uuid.UUID) -> OpenContact | None:
    row = await pool.fetchrow(
        f"SELECT {_OPEN_COLUMNS} FROM open_contacts WHERE contact_id = $1", contact_id
    )
    return None if row is None else OpenContact(*row)
