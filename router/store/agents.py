"""The agents (docs/agents.md): their profile (name, skills with levels,
capacity, per-channel maximums), presence, and the load and work that
assignment keeps on them.

This module writes the profile and the presence, never the load
(``load_units``, ``load_by_channel``, ``idle_since``, ``last_offer_at``:
assignment's). Whenever a change may let an agent take new work (its
presence becomes ``available``; while available, its capacity or a channel
maximum is raised, or a skill is added or raised) it sends ``ASSIGN_CHANNEL`` a
notification ``agent:<id>`` in the transaction of the change, so the
assignment job (listening there) offers it work at once. A presence change
is also logged to ``lifecycle_log`` (kind ``PRESENCE_KIND``) for the live
stream, in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from router.errors import AgentHoldsWork

#: The channel the assignment job listens on.
ASSIGN_CHANNEL = "omniroute_assign"
#: The lifecycle log's kind of a presence change.
PRESENCE_KIND = "agent.presence"
PRESENCES = ("available", "busy", "away", "offline")


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What an agent's owner sets (``PUT /v1/agents/{id}``, the import)."""

    agent_id: str
    name: str
    skills: dict[str, int]
    capacity: int
    channel_max: dict[str, int]


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as stored: profile, presence and load."""

    agent_id: str
    name: str
    skills: dict[str, int]
    capacity: int
    channel_max: dict[str, int]
    presence: str
    presence_at: datetime
    load_units: int
    load_by_channel: dict[str, int]
    idle_since: datetime
    last_offer_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def free_capacity(self) -> int:
        """Units it may still take (0 when its capacity was lowered under its load)."""
        return max(0, self.capacity - self.load_units)


@dataclass(frozen=True, slots=True)
class Work:
    """A contact an agent holds: offered to it, or assigned."""

    contact_id: uuid.UUID
    offer_id: uuid.UUID
    channel: str
    units: int
    state: str
    since: datetime


@dataclass(frozen=True, slots=True)
class AgentDetail:
    agent: Agent
    work: list[Work] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Upserted:
    agent: Agent
    created: bool
    #: the profile changed (False: the same PUT again)
    changed: bool
    #: the assignment job was told the agent may take new work
    notified: bool


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    agent: Agent
    previous: str
    #: False when the agent already had that presence, or the change is
    #: stale (nothing logged then)
    changed: bool
    notified: bool
    #: the change happened before the agent's current presence was set
    stale: bool = False


@dataclass(frozen=True, slots=True)
class AgentFilter:
    """Which agents a list shows, in agent id order."""

    presence: str | None = None
    #: holds this skill (at ``level`` or above)
    skill: str | None = None
    level: int = 1
    #: the last id of the previous page
    after: str | None = None


_COLUMNS = """agent_id, name, skills, capacity, channel_max, presence, presence_at,
    load_units, load_by_channel, idle_since, last_offer_at, created_at, updated_at"""


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        agent_id=row["agent_id"],
        name=row["name"],
        skills=dict(row["skills"]),
        capacity=row["capacity"],
        channel_max=dict(row["channel_max"]),
        presence=row["presence"],
        presence_at=row["presence_at"],
        load_units=row["load_units"],
        load_by_channel=dict(row["load_by_channel"]),
        idle_since=row["idle_since"],
        last_offer_at=row["last_offer_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def widens(old: Agent | AgentProfile, new: AgentProfile) -> bool:
    """May the agent take work under ``new`` that it could not take under
    ``old``? Its capacity raised, a channel maximum raised or removed, a
    skill added or its level raised. (A lowered level, a removed skill, a
    lower capacity or a new maximum only narrow.)"""
    if new.capacity > old.capacity:
        return True
    for channel, maximum in old.channel_max.items():
        if new.channel_max.get(channel, maximum + 1) > maximum:
            return True
    return any(old.skills.get(skill, 0) < level for skill, level in new.skills.items())


async def _notify(con: asyncpg.Connection, agent_id: str) -> None:
    await con.execute("SELECT pg_notify($1, $2)", ASSIGN_CHANNEL, f"agent:{agent_id}")


async def upsert(pool: asyncpg.Pool, profile: AgentProfile) -> Upserted:
    """Create the agent (``offline``, no load) or replace its profile; its
    presence and load are kept. Lowering the capacity under the current load
    is allowed: the agent gets nothing new until its load is below it."""
    values = (
        profile.agent_id,
        profile.name,
        profile.skills,
        profile.capacity,
        profile.channel_max,
    )
    async with pool.acquire() as con, con.transaction():
        while True:
            row = await con.fetchrow(
                f"""INSERT INTO agents (agent_id, name, skills, capacity, channel_max)
                    VALUES ($1, $2, $3::jsonb, $4, $5::jsonb)
                    ON CONFLICT (agent_id) DO NOTHING RETURNING {_COLUMNS}""",
                *values,
            )
            if row is not None:
                # a new agent is offline: nothing to offer it yet
                return Upserted(_agent(row), created=True, changed=True, notified=False)
            row = await con.fetchrow(
                f"SELECT {_COLUMNS} FROM agents WHERE agent_id = $1 FOR UPDATE", profile.agent_id
            )
            if row is not None:
                break  # (else removed meanwhile: insert it again)
        old = _agent(row)
        if (old.name, old.skills, old.capacity, old.channel_max) == (
            profile.name,
            profile.skills,
            profile.capacity,
            profile.channel_max,
        ):
            return Upserted(old, created=False, changed=False, notified=False)
        row = await con.fetchrow(
            f"""UPDATE agents SET name = $2, skills = $3::jsonb, capacity = $4,
                       channel_max = $5::jsonb, updated_at = now()
                 WHERE agent_id = $1 RETURNING {_COLUMNS}""",
            *values,
        )
        new = _agent(row)
        notify = new.presence == "available" and widens(old, profile)
        if notify:
            await _notify(con, new.agent_id)
        return Upserted(new, created=False, changed=True, notified=notify)


async def one(pool: asyncpg.Pool, agent_id: str) -> AgentDetail | None:
    """The agent and the work it holds (oldest first); ``None`` if unknown."""
    async with pool.acquire() as con, con.transaction(readonly=True, isolation="repeatable_read"):
        row = await con.fetchrow(f"SELECT {_COLUMNS} FROM agents WHERE agent_id = $1", agent_id)
        if row is None:
            return None
        work = await con.fetch(
            """SELECT contact_id, offer_id, channel, units, state, since FROM agent_work
                WHERE agent_id = $1 ORDER BY since, contact_id""",
            agent_id,
        )
    return AgentDetail(_agent(row), [Work(*w) for w in work])


async def page(pool: asyncpg.Pool, selection: AgentFilter, *, limit: int) -> list[Agent]:
    """Up to ``limit`` agents of ``selection``, in agent id order."""
    args: list[Any] = []
    where: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if selection.presence is not None:
        where.append(f"presence = {arg(selection.presence)}")
    if selection.skill is not None:
        # the containment test uses the GIN index; the level is checked after it
        skill = arg(selection.skill)
        where.append(f"skills ? {skill}")
        if selection.level > 1:
            where.append(f"(skills ->> {skill})::int >= {arg(selection.level)}")
    if selection.after is not None:
        where.append(f"agent_id > {arg(selection.after)}")
    sql = f"SELECT {_COLUMNS} FROM agents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY agent_id LIMIT {arg(limit)}"
    return [_agent(r) for r in await pool.fetch(sql, *args)]


async def set_presence(
    pool: asyncpg.Pool, agent_id: str, presence: str, *, at: datetime | None = None
) -> PresenceChanged | None:
    """Set the agent's presence; ``None`` if it is unknown. A change is
    logged for the live stream, and a change to ``available`` tells the
    assignment job; the same presence again changes nothing. An agent that
    goes ``offline`` (or ``away``, ``busy``) keeps the work it holds.

    ``at`` is when the change happened on the platform: a change older than
    the newest one reported (a late retry, updates out of order) is stale
    and changes nothing. The presence time is ``at`` (never later than
    now), or now."""
    assert presence in PRESENCES, presence
    async with pool.acquire() as con, con.transaction():
        row = await con.fetchrow(
            f"""SELECT {_COLUMNS}, presence_reported_at FROM agents
                 WHERE agent_id = $1 FOR UPDATE""",
            agent_id,
        )
        if row is None:
            return None
        old = _agent(row)
        reported = row["presence_reported_at"]
        if at is not None and reported is not None and at < reported:
            return PresenceChanged(old, old.presence, changed=False, notified=False, stale=True)
        if old.presence == presence:
            # the same again: only remember how recent it is
            await con.execute(
                """UPDATE agents SET presence_reported_at = greatest(
                           presence_reported_at, least(coalesce($2::timestamptz, now()), now()))
                    WHERE agent_id = $1""",
                agent_id,
                at,
            )
            return PresenceChanged(old, old.presence, changed=False, notified=False)
        row = await con.fetchrow(
            f"""UPDATE agents SET presence = $2, updated_at = now(),
                       presence_at = least(coalesce($3::timestamptz, now()), now()),
                       presence_reported_at = least(coalesce($3::timestamptz, now()), now())
                 WHERE agent_id = $1 RETURNING {_COLUMNS}""",
            agent_id,
            presence,
            at,
        )
        new = _agent(row)
        await _log_presence(con, new.agent_id, old.presence, new.presence, new.presence_at)
        notify = presence == "available"
        if notify:
            await _notify(con, agent_id)
        return PresenceChanged(new, old.presence, changed=True, notified=notify)


async def _log_presence(
    con: asyncpg.Connection, agent_id: str, before: str, after: str, at: datetime
) -> None:
    data = {"agent": agent_id, "from": before, "to": after, "at": at.isoformat()}
    await con.execute(
        """INSERT INTO lifecycle_log (at, agent_id, kind, data)
           VALUES ($1, $2, $3, $4::jsonb)""",
        at,
        agent_id,
        PRESENCE_KIND,
        data,
    )


async def remove(pool: asyncpg.Pool, agent_id: str) -> Agent | None:
    """Delete the agent; ``None`` if unknown. ``AgentHoldsWork`` while it
    holds offered or assigned contacts (they end, or are moved, first).
    The row lock orders this against assignment, which raises the load under
    the same lock, and agent_work's reference to the agent refuses any work
    written after. An agent that was not offline is logged going offline."""
    async with pool.acquire() as con, con.transaction():
        row = await con.fetchrow(
            f"SELECT {_COLUMNS} FROM agents WHERE agent_id = $1 FOR UPDATE", agent_id
        )
        if row is None:
            return None
        held = await con.fetchval("SELECT count(*) FROM agent_work WHERE agent_id = $1", agent_id)
        if held:
            raise AgentHoldsWork(agent_id, held)
        await con.execute("DELETE FROM agents WHERE agent_id = $1", agent_id)
        old = _agent(row)
        if old.presence != "offline":
            now = await con.fetchval("SELECT now()")
            await _log_presence(con, agent_id, old.presence, "offline", now)
        return old
