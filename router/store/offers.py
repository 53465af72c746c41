"""Offers: a waiting contact reserved for one agent until the agent accepts,
rejects, or the offer expires (docs/agents.md, "Assignment").

``assign_round`` is one round of the assigner, in one transaction: it reads
the agents that may take work (every one, or only those a wake-up named)
and the waiting contacts of the assigned queues on the channels those agents
have room for, lets the caller's pure
choice (``router.assignment.choose``) pair them, and makes the offers: the
contacts' open rows are locked (``SKIP LOCKED``: one another round or an
event holds is left to it, and the choice made again without it, from
the counts the agents were read with; the round says which it lost), the
agents' loads raised by ``agent_work.take``
(which checks presence, capacity and channel maximums under the row lock;
the trigger refuses anything else), then the work, the offers, the open rows
(which count the contact's offers and keep the time of its first), the live
log and the outbox events are written. The records are only read (the
``contact.offered`` event's customer and external ids): their offer facts
are copied from the open rows by the record's next write (``OFFER_FACTS``).

``decide`` accepts or rejects one offer; ``expire_due`` expires the offers
past their time, claimed with ``SKIP LOCKED`` on the contacts' open rows.
A rejected or expired offer frees the agent's units and puts the agent in
the contact's ``passed_over`` (never offered it again); an accepted one makes
the contact ``assigned`` as an ``assigned`` outcome event would (``events``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from router.assignment import Agent, Pair, Policy, Waiting, channels_with_room, waiting_from
from router.models import CHANNELS, uuid7
from router.store import agent_work, deliveries, events, lifecycle
from router.store.deliveries import Outgoing
from router.store.listing import keyset_page

#: Waiting contacts read per queue in a round: this many per agent that may
#: take work, and this many more (up to the caller's limit).
FETCH_PER_AGENT = 3
FETCH_MIN = 5
#: How much further a round reads when agents are left without work.
FETCH_FURTHER = 8
#: Offers one round makes at most (one transaction stays short).
OFFERS_PER_ROUND = 500
#: Times a round claims its contacts, choosing again without those another
#: transaction holds.
CLAIMS = 4

STATUSES = ("offered", "accepted", "rejected", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class Made:
    """An offer just made."""

    offer_id: uuid.UUID
    contact_id: uuid.UUID
    agent_id: str
    queue: str
    channel: str
    units: int
    offered_at: datetime
    expires_at: datetime
    adapter: str
    #: offers made for this contact so far (this one included)
    offers: int
    customer_id: uuid.UUID | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer as the API shows it."""

    offer_id: uuid.UUID
    contact_id: uuid.UUID
    agent_id: str
    queue: str
    channel: str
    units: int
    status: str
    offered_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    explanation: dict[str, Any]

    def as_json(self, *, explanation: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offer_id": str(self.offer_id),
            "contact_id": str(self.contact_id),
            "agent": self.agent_id,
            "queue": self.queue,
            "channel": self.channel,
            "units": self.units,
            "status": self.status,
            "offered_at": self.offered_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
        }
        if explanation:
            out["explanation"] = self.explanation
        return out


_OFFER_COLUMNS = ", ".join(Offer.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Decided:
    """What accepting or rejecting an offer did: ``offer`` as it is now;
    ``changed`` false when it was no longer open (its status says why)."""

    offer: Offer
    changed: bool
    #: accept: the outcome event recorded (the contact became ``assigned``)
    outcome: events.EventOutcome | None = None
    #: accepted: seconds from the contact's arrival to the acceptance
    waited: float | None = None
    #: the offer was past its time: this call expired it (not changed)
    expired: bool = False


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: offers made, pairs the database refused (an
    agent's presence or capacity changed, or its row was busy)."""

    made: list[Made]
    refused: int
    #: agents read that may take work
    agents: int
    #: waiting contacts read
    waiting: int
    #: contacts the round wanted and could not claim (another transaction
    #: held them, or had just offered them)
    lost: tuple[uuid.UUID, ...] = ()


OfferedOutbox = Callable[[Sequence[Made]], Sequence[Outgoing]]
#: ``choose(waiting, agents, now, most)``: at most ``most`` pairs, best first
Choose = Callable[[Sequence[Waiting], Sequence[Agent], datetime, int], list[Pair]]

_AGENT_COLUMNS = """agent_id, skills, capacity, load_units, presence, idle_since, last_offer_at,
                   load_by_channel, channel_max"""

_FREE_AGENTS = f"""
SELECT {_AGENT_COLUMNS} FROM agents
 WHERE presence = 'available' AND load_units + $1 <= capacity
"""

# those of them a wake-up named (``agent:<id>``), locked for the round: those
# another round holds (every instance hears the wake-up) are left to it. Read
# by the key: the presence is tested where the partial index of the available
# agents cannot serve (statistics taken while few agents were available, at a
# shift's start, make the planner read that whole index for two agents)
_FREE_NAMED = f"""
SELECT {_AGENT_COLUMNS} FROM agents
 WHERE agent_id = ANY($2::text[])
   AND CASE presence WHEN 'available' THEN load_units + $1 <= capacity ELSE false END
 ORDER BY agent_id
   FOR UPDATE SKIP LOCKED
"""

_NAMED_AGENTS = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE agent_id = ANY($1::text[])"

_WAITING_COLUMNS = """contact_id, queue, channel, priority, skills, received_at, preferred_agent,
                      preferred_until, passed_over"""

# the queues without aging, in one statement: the first of each queue and
# channel in the index's order (each channel apart, so that an agent with
# room for an e-mail only finds the e-mails; only the channels an agent of
# the round has room for)
_WAITING = f"""
SELECT w.* FROM unnest($1::text[]) AS q(queue) CROSS JOIN unnest($3::text[]) AS ch(channel)
 CROSS JOIN LATERAL (
    SELECT {_WAITING_COLUMNS} FROM open_contacts o
     WHERE o.queue = q.queue AND o.channel = ch.channel
       AND o.state = 'waiting' AND o.agent_id IS NULL
     ORDER BY o.priority DESC, o.received_at
     LIMIT $2) w
"""

# with aging: by the priority it has grown to
_WAITING_AGED = f"""
SELECT {_WAITING_COLUMNS} FROM open_contacts
 WHERE queue = $1 AND channel = ANY($6::text[]) AND state = 'waiting' AND agent_id IS NULL
 ORDER BY least(greatest(priority, $5::int),
                priority + $4::int * floor(extract(epoch FROM now() - received_at) / $3::int)::int)
          DESC,
          received_at
 LIMIT $2
"""

_CLAIM = """
SELECT contact_id FROM open_contacts
 WHERE contact_id = ANY($1::uuid[]) AND state = 'waiting' AND agent_id IS NULL
   FOR UPDATE SKIP LOCKED
"""

# one chain, each step reading the one before it, so that no step joins two
# of them: the open rows are updated from the offers just made (a CTE's
# RETURNING rows), and return what the caller needs of both; the records
# are probed by their key. (Joining ``p``, ``made`` and ``opened`` by the
# offer and contact ids was a nested loop with a join filter once the plan
# was generic: ``unnest`` of a parameter estimated at 10 rows, quadratic in
# the round's size, docs/operations.md.)
_MAKE = """
WITH p AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[],
                         $7::float8[], $8::text[])
             AS p(offer_id, contact_id, agent_id, queue, channel, units, timeout, explanation)
), work AS (
    INSERT INTO agent_work (contact_id, agent_id, offer_id, channel, units, state)
    SELECT contact_id, agent_id, offer_id, channel, units, 'offered' FROM p
), made AS (
    INSERT INTO offers (offer_id, contact_id, agent_id, queue, channel, units, offered_at,
                        expires_at, explanation)
    SELECT offer_id, contact_id, agent_id, queue, channel, units, clock_timestamp(),
           clock_timestamp() + timeout * interval '1 second', explanation::jsonb
      FROM p
    RETURNING offer_id, contact_id, agent_id, queue, channel, units, offered_at, expires_at
), opened AS (
    UPDATE open_contacts o
       SET agent_id = m.agent_id, offers = o.offers + 1, offered_at = coalesce(o.offered_at, now()),
           version = o.version + 1, updated_at = now()
      FROM made m
     WHERE o.contact_id = m.contact_id
    RETURNING m.offer_id, m.contact_id, m.agent_id, m.queue, m.channel, m.units, m.offered_at,
              m.expires_at, o.adapter, o.offers, o.received_at
), logged AS (
    INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
    SELECT p.contact_id, 'offered', p.queue, p.channel,
           jsonb_build_object('agent', p.agent_id, 'offer_id', p.offer_id, 'units', p.units)
      FROM p
)
SELECT opened.offer_id, opened.contact_id, opened.agent_id, opened.queue, opened.channel,
       opened.units, opened.offered_at, opened.expires_at, opened.adapter, opened.offers,
       c.customer_id, c.external_id
  FROM opened
  LEFT JOIN contacts c ON c.contact_id = opened.contact_id AND c.received_at = opened.received_at
"""


def _agent(row: asyncpg.Record) -> Agent:
    # the JSON objects are decoded once for each row, their levels and
    # counts integers already (validated when written, summed as integers):
    # used as they are, but for the counts per channel, which move as the
    # choice hands out work: a copy, so that a round choosing again (its
    # contacts lost to another transaction) starts from the row's counts,
    # not from those of the choice it dropped
    agent_id, skills, capacity, load, presence, idle_since, last_offer_at, by_channel, most = row
    return Agent(
        agent_id,
        skills,
        capacity,
        load,
        presence,
        idle_since,
        last_offer_at,
        dict(by_channel),
        most,
    )


def _waiting(row: asyncpg.Record) -> Waiting:
    return waiting_from(row)  # (its columns in the order of Waiting's fields)


async def assign_round(
    pool: asyncpg.Pool,
    *,
    policies: Mapping[str, Policy],
    choose: Choose,
    limit: int,
    units: Callable[[str], int],
    outbox: OfferedOutbox | None = None,
    agents: Collection[str] | None = None,
) -> Round:
    """One round: read, choose, offer (see the module's description). At most
    ``limit`` waiting contacts per queue and channel are considered; agents
    with less free than the smallest ``units`` of a channel are not. With
    ``agents``, only those agents are read, and locked at once (``SKIP
    LOCKED``: one another transaction holds is left to it, and a round of
    another instance woken for the same agent reads no contact): the round
    is the one over every agent would be if they were the only agents that
    may take work."""
    smallest = max(1, min(units(c) for c in CHANNELS))
    async with pool.acquire() as con, con.transaction():
        if agents is None:
            free = await con.fetch(_FREE_AGENTS, smallest)
        else:
            free = await con.fetch(_FREE_NAMED, smallest, list(agents))
        # the channels these agents have room for: the others' contacts
        # cannot be offered to any of them
        first = [_agent(r) for r in free]
        channels = channels_with_room(first, CHANNELS, units)
        if not channels or not policies:
            return Round([], 0, len(free), 0)
        now: datetime = await con.fetchval("SELECT clock_timestamp()")
        # a few agents free: a few contacts per queue and channel are enough to
        # find their work; many: enough for a round's offers across the queues
        per_round = max(FETCH_MIN, 2 * OFFERS_PER_ROUND // (len(policies) * len(CHANNELS)))
        fetch = min(limit, FETCH_PER_AGENT * len(free) + FETCH_MIN, per_round)
        known = {r["agent_id"] for r in free}
        waiting, truncated = await _read_waiting(con, policies, fetch, channels)
        # contacts another transaction holds (another round offering them, an
        # event moving them) or has just offered are left to it: the choice is
        # made again without them (reading further if its agents are left with
        # room), so that a round that ran beside another one still offers its
        # agents the next contacts
        lost: set[uuid.UUID] = set()
        claimed: set[uuid.UUID] = set()
        claims = 0
        while True:
            if lost:
                # (every contact read lost: the agents' room says whether to
                # read further, below)
                waiting = [c for c in waiting if c.contact_id not in lost]
            rows = list(free)
            preferred = {c.preferred_agent for c in waiting if c.preferred_until is not None}
            missing = [p for p in preferred if p is not None and p not in known]
            if missing:
                rows += await con.fetch(_NAMED_AGENTS, missing)
            # the first offers (in the choice's order); the next round makes the rest
            # (those read first, until the choice moves their loads)
            candidates = (first or [_agent(r) for r in free]) + [
                _agent(r) for r in rows[len(free) :]
            ]
            first = []
            pairs = choose(waiting, candidates, now, OFFERS_PER_ROUND)
            # agents left with room for a channel of which more contacts wait
            # unread (e.g. all those read need a skill they lack): read further
            further = channels_with_room(candidates[: len(free)], truncated, units)
            if further and fetch < limit and len(pairs) < OFFERS_PER_ROUND:
                fetch = min(limit, fetch * FETCH_FURTHER)
                waiting, truncated = await _read_waiting(con, policies, fetch, channels)
                continue
            wanted = [p.contact.contact_id for p in pairs if p.contact.contact_id not in claimed]
            got = {r["contact_id"] for r in await con.fetch(_CLAIM, wanted)} if wanted else set()
            claimed |= got
            claims += 1
            if len(got) == len(wanted):
                break
            lost |= set(wanted) - got
            if claims >= CLAIMS:
                break
        made, refused = await _make(
            con, [p for p in pairs if p.contact.contact_id in claimed], outbox
        )
        return Round(made, refused, len(free), len(waiting), tuple(lost))


async def wait_released(pool: asyncpg.Pool, contact_id: uuid.UUID, *, timeout: float) -> bool:
    """Wait, ``timeout`` seconds at most, until no other transaction holds
    the contact's open row (a round lost it to that transaction): false when
    the time ran out. The row is locked for a moment only, ``FOR SHARE``
    (which waits for any writer), in a transaction holding nothing else: it
    cannot be part of a deadlock."""
    try:
        async with pool.acquire() as con, con.transaction():
            await con.execute(f"SET LOCAL lock_timeout = {max(1, round(timeout * 1000))}")
            await con.execute(
                "SELECT 1 FROM open_contacts WHERE contact_id = $1 FOR SHARE", contact_id
            )
    except asyncpg.LockNotAvailableError:
        return False
    return True


async def _read_waiting(
    con: asyncpg.Connection, policies: Mapping[str, Policy], fetch: int, channels: Sequence[str]
) -> tuple[list[Waiting], list[str]]:
    """Up to ``fetch`` waiting contacts per queue and channel of ``channels``,
    in each one's order; and the channels of which more may wait unread."""
    plain = [q for q, p in policies.items() if p.aging is None or p.aging.every_seconds <= 0]
    rows = list(await con.fetch(_WAITING, plain, fetch, list(channels))) if plain else []
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[r["queue"], r["channel"]] = counts.get((r["queue"], r["channel"]), 0) + 1
    truncated = {channel for (_, channel), n in counts.items() if n >= fetch}
    for queue, policy in policies.items():
        aging = policy.aging
        if aging is not None and aging.every_seconds > 0:
            aged = await con.fetch(
                _WAITING_AGED,
                queue,
                fetch * len(channels),
                aging.every_seconds,
                aging.by,
                aging.max,
                list(channels),
            )
            if len(aged) >= fetch * len(channels):
                truncated.update(channels)  # (which of them, the order does not say)
            rows += aged
    return [_waiting(r) for r in rows], [c for c in channels if c in truncated]


async def _make(
    con: asyncpg.Connection, pairs: Sequence[Pair], outbox: OfferedOutbox | None
) -> tuple[list[Made], int]:
    """Offer the pairs, their contacts claimed: those whose agents may still
    take them; and how many the database refused."""
    if not pairs:
        return [], 0
    taken = await agent_work.take(con, [(p.agent_id, p.contact.channel, p.units) for p in pairs])
    ok = [p for p in pairs if p.agent_id in taken]
    refused = len(pairs) - len(ok)
    if not ok:
        return [], refused
    ids = [uuid7() for _ in ok]
    rows = await con.fetch(
        _MAKE,
        ids,
        [p.contact.contact_id for p in ok],
        [p.agent_id for p in ok],
        [p.contact.queue for p in ok],
        [p.contact.channel for p in ok],
        [p.units for p in ok],
        [p.timeout for p in ok],
        [orjson.dumps(p.explanation).decode() for p in ok],
    )
    # in the pairs' order (the choice's), whatever the order of the join
    # that updated the open rows
    order = {offer_id: n for n, offer_id in enumerate(ids)}
    made = sorted((Made(*r) for r in rows), key=lambda m: order[m.offer_id])
    # outbox events are written here: one contact.offered per offer, in this transaction
    if outbox is not None and made:
        await deliveries.enqueue(con, outbox(made))
    return made, refused


# -- accept, reject, expire -------------------------------------------------------

_REOPEN = f"""
WITH back AS (
    UPDATE open_contacts o
       SET agent_id = NULL, version = o.version + 1, updated_at = now(),
           passed_over = CASE WHEN u.agent_id = ANY(o.passed_over) THEN o.passed_over
                              ELSE array_append(o.passed_over, u.agent_id) END
      FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS u(contact_id, agent_id, offer_id)
     WHERE o.contact_id = u.contact_id
    -- the assigners woken: the contacts wait again (sent once, at commit)
    RETURNING o.contact_id, o.queue, o.channel, u.agent_id, u.offer_id,
              pg_notify('{agent_work.CHANNEL}', 'contacts')
)
INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
SELECT contact_id, $4, queue, channel,
       jsonb_build_object('agent', agent_id, 'offer_id', offer_id) FROM back
"""


async def wake(pool: asyncpg.Pool) -> None:
    """Tell the assigners (``LISTEN omniroute_assign``) contacts may wait."""
    await pool.execute(f"SELECT pg_notify('{agent_work.CHANNEL}', 'contacts')")


async def _reopen(con: asyncpg.Connection, offers: Sequence[Offer], kind: str) -> None:
    """The contacts of rejected or expired offers wait again, without their agents."""
    await agent_work.release(
        con, [o.contact_id for o in offers], offer_ids=[o.offer_id for o in offers]
    )
    await con.execute(
        _REOPEN,
        [o.contact_id for o in offers],
        [o.agent_id for o in offers],
        [o.offer_id for o in offers],
        kind,
    )


async def decide(
    pool: asyncpg.Pool,
    offer_id: uuid.UUID,
    *,
    accept: bool,
    outbox: lifecycle.TransitionOutbox | None = None,
) -> Decided | None:
    """Accept or reject an open offer, in one transaction; ``None`` when no
    offer has that id. An offer past its time cannot be accepted (it is
    expired here, as the timer would)."""
    async with pool.acquire() as con, con.transaction():
        contact_id = await con.fetchval(
            "SELECT contact_id FROM offers WHERE offer_id = $1", offer_id
        )
        if contact_id is None:
            return None
        # the lock order: open row first; it gives the time the contact arrived too
        before, received_at = await lifecycle.lock_open_since(con, contact_id)
        status = "accepted" if accept else "rejected"
        row = await con.fetchrow(
            f"""UPDATE offers
                   SET status = CASE WHEN $2 AND expires_at <= now() THEN 'expired' ELSE $3 END,
                       decided_at = now()
                 WHERE offer_id = $1 AND status = 'offered'
             RETURNING {_OFFER_COLUMNS}""",
            offer_id,
            accept,
            status,
        )
        if row is None:
            current = await con.fetchrow(
                f"SELECT {_OFFER_COLUMNS} FROM offers WHERE offer_id = $1", offer_id
            )
            return Decided(Offer(*current), changed=False)
        offer = Offer(*row)
        if offer.status != "accepted":
            await _reopen(con, [offer], "offer_rejected" if not accept else "offer_expired")
            return Decided(offer, changed=offer.status == status, expired=offer.status == "expired")
        await con.execute(agent_work.ASSIGNED, offer.contact_id, offer.offer_id)
        outcome = await events.record_locked(
            con,
            offer.contact_id,
            before,
            event_id=f"offer:{offer.offer_id}",
            type_="assigned",
            at=offer.decided_at or offer.offered_at,
            agent=offer.agent_id,
            data={"offer_id": str(offer.offer_id)},
            outbox=outbox,
        )
        decided = offer.decided_at or offer.offered_at
        waited = None if received_at is None else max(0.0, (decided - received_at).total_seconds())
        return Decided(offer, changed=True, outcome=outcome, waited=waited)


_DUE = """
SELECT f.offer_id
  FROM offers f JOIN open_contacts o ON o.contact_id = f.contact_id
 WHERE f.status = 'offered' AND f.expires_at <= now()
 ORDER BY f.expires_at
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED
"""


async def expire_due(pool: asyncpg.Pool, *, limit: int) -> list[Offer]:
    """Expire up to ``limit`` offers past their time: their units are freed,
    their contacts wait again for another agent."""
    async with pool.acquire() as con, con.transaction():
        due = [r["offer_id"] for r in await con.fetch(_DUE, limit)]
        if not due:
            return []
        rows = await con.fetch(
            f"""UPDATE offers SET status = 'expired', decided_at = now()
                 WHERE offer_id = ANY($1::uuid[]) AND status = 'offered'
             RETURNING {_OFFER_COLUMNS}""",
            due,
        )
        gone = [Offer(*r) for r in rows]
        if gone:
            await _reopen(con, gone, "offer_expired")
        return gone


async def next_expiry(pool: asyncpg.Pool) -> datetime | None:
    at: datetime | None = await pool.fetchval(
        "SELECT min(expires_at) FROM offers WHERE status = 'offered'"
    )
    return at


# -- reading ------------------------------------------------------------------------


async def page(
    pool: asyncpg.Pool,
    *,
    agent: str | None,
    status: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Offer]:
    """Offers newest first, of one agent and one status when given."""
    sql, args = keyset_page(
        f"SELECT {_OFFER_COLUMNS} FROM offers",
        equal={"agent_id": agent, "status": status},
        key=("offered_at", "offer_id"),
        after=before,
        limit=limit,
    )
    rows = await pool.fetch(sql, *args)
    return [Offer(*r) for r in rows]


async def one(pool: asyncpg.Pool, offer_id: uuid.UUID) -> Offer | None:
    row = await pool.fetchrow(f"SELECT {_OFFER_COLUMNS} FROM offers WHERE offer_id = $1", offer_id)
    return None if row is None else Offer(*row)


async def of_contact(pool: asyncpg.Pool, contact_id: uuid.UUID) -> list[Offer]:
    """Every offer made for the contact, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_OFFER_COLUMNS} FROM offers WHERE contact_id = $1 ORDER BY offered_at, offer_id",
        contact_id,
    )
    return [Offer(*r) for r in rows]
