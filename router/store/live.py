"""The live view of the open contacts (docs/api.md#live): the figures per
queue and channel, the waiting list, and ``lifecycle_log``, the append-only
log of every lifecycle change that the live stream reads.

A change is logged in the transaction that makes it: the record's own
statement logs ``routed`` (``records.insert_many``), ``lifecycle`` logs the
steps, the outcome events and the expiries (``log_steps`` and the statements
there). A trigger notifies ``CHANNEL`` once per transaction that logged
something; the instances listen and read the new rows by id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from router.store.listing import keyset_page

if TYPE_CHECKING:
    from router.store.lifecycle import StepApplied

#: The channel the trigger on ``lifecycle_log`` notifies.
CHANNEL = "omniroute_live"
#: What "recent" means for the outcomes counted per queue.
RECENT_SECONDS = 15 * 60
#: A waiting contact at this share of its SLA or more is "near" it.
NEAR_SLA = 0.8


@dataclass(frozen=True, slots=True)
class Change:
    """One row of ``lifecycle_log``: a lifecycle change of a contact, or an
    agent's presence change (``agent_id`` set, no contact, queue or channel)."""

    id: int
    at: datetime
    contact_id: uuid.UUID | None
    kind: str
    queue: str | None
    channel: str | None
    data: dict[str, Any]
    agent_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "at": self.at.isoformat(),
            "contact_id": None if self.contact_id is None else str(self.contact_id),
            "kind": self.kind,
            "queue": self.queue,
            "channel": self.channel,
            "data": self.data,
        }
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        return out


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What a queue holds on one channel now, and its recent outcomes."""

    queue: str
    channel: str
    waiting: int
    oldest_wait_seconds: float | None
    past_sla: int
    near_sla: int
    assigned: int
    answered: int
    recent_assigned: int
    recent_answered: int
    recent_abandoned: int


@dataclass(frozen=True, slots=True)
class LiveContact:
    """An open contact as the live list shows it."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    channel: str
    state: str
    queue: str
    priority: int
    skills: list[str]
    sla_seconds: int | None
    step: int
    next_step_at: datetime | None
    wait_seconds: float
    decision: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Demand:
    """What a queue's contact on a channel asks of an agent: every skill of
    the queue (at any level), room for ``units``, and the channel allowed."""

    skills: tuple[str, ...]
    channel: str
    units: int


@dataclass(frozen=True, slots=True)
class Staffing:
    """The agents serving a ``Demand``: ``available`` can take one more such
    contact now; ``busy`` are signed in (available or busy) but cannot."""

    available: int
    busy: int


# -- writing (inside the transactions of the changes) ---------------------------

_LOG_STEPS = """
INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
SELECT contact_id, 'step', queue, channel, data::jsonb
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(contact_id, queue, channel, data)
"""


async def log_steps(con: asyncpg.Connection, applied: Sequence[StepApplied]) -> None:
    """Log the steps applied, in the caller's transaction (one statement)."""
    if not applied:
        return
    await con.execute(
        _LOG_STEPS,
        [s.contact_id for s in applied],
        [s.after.queue for s in applied],
        [s.channel for s in applied],
        [orjson.dumps(s.as_json()).decode() for s in applied],
    )


# -- reading ------------------------------------------------------------------------

# Both halves cost in proportion to what they read: the open rows, and the log
# rows of the last minutes (by its index on ``at``).
_QUEUES = f"""
WITH open AS (
    SELECT queue, channel,
           count(*) FILTER (WHERE state = 'waiting') AS waiting,
           extract(epoch FROM now() - min(received_at) FILTER (WHERE state = 'waiting'))
               AS oldest_wait_seconds,
           count(*) FILTER (WHERE state = 'waiting'
                              AND now() - received_at > make_interval(secs => sla_seconds))
               AS past_sla,
           count(*) FILTER (WHERE state = 'waiting'
                              AND now() - received_at <= make_interval(secs => sla_seconds)
                              AND now() - received_at
                                  >= make_interval(secs => {NEAR_SLA} * sla_seconds))
               AS near_sla,
           count(*) FILTER (WHERE state = 'assigned') AS assigned,
           count(*) FILTER (WHERE state = 'answered') AS answered
      FROM open_contacts
     GROUP BY queue, channel
), recent AS (
    SELECT queue, channel,
           count(*) FILTER (WHERE kind = 'assigned') AS recent_assigned,
           count(*) FILTER (WHERE kind = 'answered') AS recent_answered,
           count(*) FILTER (WHERE kind = 'abandoned') AS recent_abandoned
      FROM lifecycle_log
     WHERE at >= now() - make_interval(secs => {RECENT_SECONDS})
       AND kind IN ('assigned', 'answered', 'abandoned')
     GROUP BY queue, channel
)
SELECT queue, channel,
       coalesce(waiting, 0), oldest_wait_seconds::float8, coalesce(past_sla, 0),
       coalesce(near_sla, 0), coalesce(assigned, 0), coalesce(answered, 0),
       coalesce(recent_assigned, 0), coalesce(recent_answered, 0),
       coalesce(recent_abandoned, 0)
  FROM open FULL JOIN recent USING (queue, channel)
 ORDER BY queue, channel
"""


async def queues(con: asyncpg.Pool) -> list[QueueFigures]:
    return [QueueFigures(*row) for row in await con.fetch(_QUEUES)]


_LIVE_COLUMNS = """o.contact_id, o.received_at, o.adapter, o.channel, o.state, o.queue,
       o.priority, o.skills, o.sla_seconds, o.step, o.next_step_at,
       extract(epoch FROM now() - o.received_at)::float8, c.decision"""


async def contacts(
    con: asyncpg.Pool,
    *,
    state: str,
    queue: str | None,
    channel: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[LiveContact]:
    """Up to ``limit`` open contacts in ``state``, the longest waiting first,
    after the keyset ``after`` (received_at, contact_id)."""
    sql, args = keyset_page(
        f"""SELECT {_LIVE_COLUMNS}
              FROM open_contacts o
              LEFT JOIN contacts c
                ON c.contact_id = o.contact_id AND c.received_at = o.received_at""",
        equal={"o.state": state, "o.queue": queue, "o.channel": channel},
        key=("o.received_at", "o.contact_id"),
        after=after,
        limit=limit,
        descending=False,
    )
    return [LiveContact(*row) for row in await con.fetch(sql, *args)]


async def changes(con: asyncpg.Pool, *, after: int, upto: int | None, limit: int) -> list[Change]:
    """The logged changes with ``after < id <= upto``, in id order."""
    rows = await con.fetch(
        """SELECT id, at, contact_id, kind, queue, channel, data, agent_id FROM lifecycle_log
            WHERE id > $1 AND ($2::bigint IS NULL OR id <= $2)
            ORDER BY id LIMIT $3""",
        after,
        upto,
        limit,
    )
    return [Change(*row) for row in rows]


async def last_id(con: asyncpg.Pool) -> int:
    """The newest id logged (0: none)."""
    value: int = await con.fetchval("SELECT coalesce(max(id), 0) FROM lifecycle_log")
    return value


async def purge(con: asyncpg.Pool, *, older_than: float, batch: int = 10_000) -> int:
    """Delete up to ``batch`` rows logged more than ``older_than`` seconds ago."""
    status: str = await con.execute(
        """DELETE FROM lifecycle_log WHERE id IN (
               SELECT id FROM lifecycle_log WHERE at < now() - make_interval(secs => $1)
                ORDER BY at LIMIT $2)""",
        older_than,
        batch,
    )
    return int(status.split()[-1])


# An agent serves a demand when it holds every skill and the channel's maximum
# (if any) is not 0. Among them, "available" have presence available, room
# for the units and, under a channel maximum, fewer of the channel's contacts
# than it; "busy" are the other signed-in ones (available or busy). The
# signed-in agents are read once, their skill names as an array, and each
# demand's skills are unpacked once; the join is then one array containment
# per pair: about five times faster than testing the JSON per pair (56 rows
# and 2,000 agents: bench/live_agents.py).
_STAFFING = """
WITH d AS MATERIALIZED (
    SELECT i, channel, units, ARRAY(SELECT jsonb_array_elements_text(skills::jsonb)) AS need
      FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS u(skills, channel, units, i)
), a AS MATERIALIZED (
    SELECT agent_id, presence = 'available' AS ready,
           ARRAY(SELECT jsonb_object_keys(skills)) AS held, capacity - load_units AS free,
           channel_max, load_by_channel
      FROM agents WHERE presence IN ('available', 'busy')
)
SELECT d.i,
       count(a.agent_id) FILTER (WHERE a.ready AND a.free >= d.units
             AND (NOT a.channel_max ? d.channel
                  OR coalesce((a.load_by_channel ->> d.channel)::int, 0)
                     < (a.channel_max ->> d.channel)::int))::int AS available,
       count(a.agent_id)::int AS serving
  FROM d
  LEFT JOIN a
         ON a.held @> d.need
        AND coalesce((a.channel_max ->> d.channel)::int, 1) > 0
 GROUP BY d.i
 ORDER BY d.i
"""


async def staffing(con: asyncpg.Pool, demands: Sequence[Demand]) -> list[Staffing]:
    """The agents available and busy for each demand, in order."""
    if not demands:
        return []
    rows = await con.fetch(
        _STAFFING,
        # (a JSON text each: a list of lists would be a two-dimensional array)
        [orjson.dumps(list(d.skills)).decode() for d in demands],
        [d.channel for d in demands],
        [d.units for d in demands],
    )
    return [Staffing(r["available"], r["serving"] - r["available"]) for r in rows]


async def agents_by_presence(con: asyncpg.Pool) -> dict[str, int]:
    """How many agents have each presence (every presence, 0 when none)."""
    rows = await con.fetch("SELECT presence, count(*)::int AS n FROM agents GROUP BY presence")
    counts = {p: 0 for p in ("available", "busy", "away", "offline")}
    counts.update({r["presence"]: r["n"] for r in rows})
    return counts
