"""The work agents hold (``agent_work``) and their load (``agents``): taken
by offers (``offers``), released when an offer is rejected or expires and
when a contact ends (outcome events and expiry, ``lifecycle``).

An agent's ``load_units`` and ``load_by_channel`` are the sums of its
``agent_work`` rows, changed in the same transaction as those rows. A raise
happens only in ``take``, whose ``UPDATE`` checks presence, capacity and the
channel maximums in its ``WHERE`` on the row it has locked; the trigger
``agents_capacity_guard`` refuses any raise past them whoever writes it.

Lock order: the contact's ``open_contacts`` row, then the agents' rows (by
agent id when several: ``release`` blocks, ``take`` skips rows others hold),
then the ``contacts`` row. A round limited to the agents a wake-up named
locks them first, then its contacts: with ``SKIP LOCKED`` both times, it
never waits for a lock, so the other order cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
import orjson

#: The channel the assigners listen on: ``agent:<id>`` when an agent may take
#: new work, ``contacts`` when contacts for an assigned queue arrive.
CHANNEL = "omniroute_assign"

# load_by_channel with ``u.d`` (a JSON object of counts) added (or taken
# away): the channels of ``u.d`` (one, mostly) replaced, the others kept
_MERGE = """a.load_by_channel || coalesce(
          (SELECT jsonb_object_agg(d.k, coalesce((a.load_by_channel ->> d.k)::int, 0) {op} d.n::int)
             FROM jsonb_each_text(u.d::jsonb) AS d(k, n)),
          '{{}}'::jsonb)"""

_TAKE = f"""
UPDATE agents a
   SET load_units = a.load_units + u.units,
       load_by_channel = {_MERGE.format(op="+")},
       last_offer_at = now(), updated_at = now()
  FROM unnest($1::text[], $2::int[], $3::text[]) AS u(agent_id, units, d)
 WHERE a.agent_id = u.agent_id
   -- (not "presence = 'available' AND ...": the agents are found by the key,
   -- never by the partial index of the available ones, whatever the statistics)
   AND CASE a.presence WHEN 'available' THEN a.load_units + u.units <= a.capacity
                       ELSE false END
   AND NOT EXISTS (
       SELECT 1 FROM jsonb_each_text(u.d::jsonb) AS e(channel, n)
        WHERE a.channel_max ? e.channel
          AND coalesce((a.load_by_channel ->> e.channel)::int, 0) + e.n::int
              > (a.channel_max ->> e.channel)::int)
RETURNING a.agent_id
"""

_RELEASE = f"""
UPDATE agents a
   SET load_units = greatest(a.load_units - u.units, 0),
       load_by_channel = {_MERGE.format(op="-")},
       idle_since = CASE WHEN a.load_units - u.units <= 0 AND a.load_units > 0 THEN now()
                         ELSE a.idle_since END,
       updated_at = now()
  FROM unnest($1::text[], $2::int[], $3::text[]) AS u(agent_id, units, d)
 WHERE a.agent_id = u.agent_id
RETURNING pg_notify('{CHANNEL}', 'agent:' || a.agent_id)
"""


@dataclass(frozen=True, slots=True)
class Held:
    """A piece of work an agent held, just released."""

    contact_id: uuid.UUID
    agent_id: str
    offer_id: uuid.UUID
    channel: str
    units: int
    state: str


def per_agent(work: Iterable[tuple[str, str, int]]) -> tuple[list[str], list[int], list[str]]:
    """``(agent, channel, units)`` summed per agent: the arrays of ``_TAKE`` and
    ``_RELEASE`` (agent ids, units, channel counts as JSON), by agent id."""
    units: dict[str, int] = defaultdict(int)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for agent, channel, n in work:
        units[agent] += n
        counts[agent][channel] += 1
    agents = sorted(units)
    return (
        agents,
        [units[a] for a in agents],
        [orjson.dumps(counts[a]).decode() for a in agents],
    )


async def lock_agents(con: asyncpg.Connection, agents: Sequence[str], *, skip: bool) -> set[str]:
    """Lock the agents' rows in agent id order; with ``skip`` those another
    transaction holds are skipped. The ids locked."""
    if not agents:
        return set()
    rows = await con.fetch(
        "SELECT agent_id FROM agents WHERE agent_id = ANY($1::text[]) ORDER BY agent_id"
        + (" FOR UPDATE SKIP LOCKED" if skip else " FOR UPDATE"),
        list(agents),
    )
    return {r["agent_id"] for r in rows}


async def take(con: asyncpg.Connection, work: Sequence[tuple[str, str, int]]) -> set[str]:
    """Raise the loads of the agents in ``work`` (``(agent, channel, units)``)
    whose rows are free to lock and who may take all of their share now
    (available, under capacity and every channel maximum). The agents raised;
    the others are left as they were."""
    agents, units, counts = per_agent(work)
    locked = await lock_agents(con, agents, skip=True)
    keep = [n for n, a in enumerate(agents) if a in locked]
    if not keep:
        return set()
    rows = await con.fetch(
        _TAKE, [agents[n] for n in keep], [units[n] for n in keep], [counts[n] for n in keep]
    )
    return {r["agent_id"] for r in rows}


_HELD = " RETURNING w.contact_id, w.agent_id, w.offer_id, w.channel, w.units, w.state"
_DELETE_WORK = "DELETE FROM agent_work w WHERE contact_id = ANY($1::uuid[])" + _HELD
_DELETE_OFFERED = (
    "DELETE FROM agent_work w USING unnest($1::uuid[], $2::uuid[]) AS u(contact_id, offer_id)"
    " WHERE w.contact_id = u.contact_id AND w.offer_id = u.offer_id" + _HELD
)
#: an accepted offer's work: found by its contact (the key), as every
#: statement on agent_work finds its rows (the offer id is not indexed)
ASSIGNED = "UPDATE agent_work SET state = 'assigned' WHERE contact_id = $1 AND offer_id = $2"


async def release(
    con: asyncpg.Connection,
    contact_ids: Sequence[uuid.UUID],
    *,
    offer_ids: Sequence[uuid.UUID] | None = None,
) -> list[Held]:
    """Delete the work held on these contacts (with ``offer_ids``, one per
    contact: only the work of those offers) and lower the agents' loads; an
    agent whose load falls to 0 becomes idle from now. The assigners are
    woken for each agent freed. The rows are found by the contact (the
    table's key): the offer id is not indexed."""
    if not contact_ids:
        return []
    if offer_ids is None:
        rows = await con.fetch(_DELETE_WORK, list(contact_ids))
    else:
        rows = await con.fetch(_DELETE_OFFERED, list(contact_ids), list(offer_ids))
    if not rows:
        return []
    held = [Held(*r) for r in rows]
    arrays = per_agent((h.agent_id, h.channel, h.units) for h in held)
    if len(arrays[0]) > 1:
        # several agents: locked in agent id order first (the UPDATE locks
        # its rows in its join's order); one is locked by the UPDATE itself
        await lock_agents(con, arrays[0], skip=False)
    # each agent's load lowered and the assigners woken for it (sent at commit)
    await con.execute(_RELEASE, *arrays)
    return held


async def close_offers(con: asyncpg.Connection, contact_ids: Sequence[uuid.UUID]) -> list[Held]:
    """The contacts ended (an outcome, expiry): their open offers are
    cancelled and the work they held released, in the caller's transaction."""
    if not contact_ids:
        return []
    held = await release(con, contact_ids)
    # an open offer holds its work as 'offered' (made, accepted, rejected and
    # expired with its work in one transaction); work 'assigned' is an
    # accepted offer's: a contact whose agent had accepted it has none open
    offered = [h.contact_id for h in held if h.state == "offered"]
    if offered:
        await con.execute(
            "UPDATE offers SET status = 'cancelled', decided_at = now()"
            " WHERE contact_id = ANY($1::uuid[]) AND status = 'offered'",
            offered,
        )
    return held


#: The offer facts of a contact's open row (``o``: the offers made, when
#: the first was made; counted by the assignment rounds, ``offers``) copied
#: into its record (``c``), in the record's ``UPDATE`` that a lifecycle
#: change makes anyway (an outcome event, expiry, erasure): rounds do not
#: write the record. The larger count and the earlier time are kept, so an
#: instance of the release before, which wrote them into the record at each
#: offer, and this one never undo each other.
OFFER_FACTS = """offers_made = greatest(c.offers_made, coalesce(o.offers, 0)),
       offered_at = least(c.offered_at, o.offered_at)"""

# the open rows of contacts whose records go (erasure, retention), each
# logged for the live stream with the state it left and the agent it freed;
# a record kept (erased) gets its open row's offer facts
_END = f"""
WITH gone AS (
    DELETE FROM open_contacts o
     USING unnest($1::uuid[], $2::text[]) AS u(contact_id, agent_id)
     WHERE o.contact_id = u.contact_id
    RETURNING o.contact_id, o.received_at, o.queue, o.channel, o.state, o.offers, o.offered_at,
              u.agent_id
), rec AS (
    UPDATE contacts c SET {OFFER_FACTS}
      FROM gone o
     WHERE c.contact_id = o.contact_id AND c.received_at = o.received_at AND o.offers > 0
)
INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
SELECT contact_id, $3, queue, channel,
       jsonb_strip_nulls(jsonb_build_object('from', state, 'agent', agent_id))
  FROM gone
RETURNING contact_id
"""


async def end_open(
    con: asyncpg.Connection, contact_ids: Sequence[uuid.UUID], *, kind: str
) -> tuple[int, list[Held]]:
    """Contacts whose records are erased or dropped leave the open set, in the
    caller's transaction: their open rows are locked first (the lock order),
    the work agents held on them is released (units freed, the assigners
    woken) and their open offers cancelled, then the rows are deleted, each
    logged as ``kind`` (``data``: the state it left, the agent it freed).
    The contacts ended, and the work released."""
    if not contact_ids:
        return 0, []
    locked = [
        r["contact_id"]
        for r in await con.fetch(
            "SELECT contact_id FROM open_contacts WHERE contact_id = ANY($1::uuid[])"
            " ORDER BY contact_id FOR UPDATE",
            list(contact_ids),
        )
    ]
    if not locked:
        return 0, []
    held = await close_offers(con, locked)
    agent = {h.contact_id: h.agent_id for h in held}
    ended = await con.fetch(_END, locked, [agent.get(c) for c in locked], kind)
    return len(ended), held
