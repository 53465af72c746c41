"""Agents for the assignment tests, written with plain SQL (the agents API
is another part's), what the tests read back of their load, and the
database each assignment test starts from (``emptied``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from tests.support import seed


async def put_agent(
    con: asyncpg.Pool | asyncpg.Connection,
    agent_id: str,
    *,
    skills: dict[str, int] | None = None,
    capacity: int = 100,
    channel_max: dict[str, int] | None = None,
    presence: str = "available",
) -> None:
    """Create or replace an agent (load kept) and wake the assigners, as the
    agents API does when an agent may take work."""
    await con.execute(
        """INSERT INTO agents (agent_id, name, skills, capacity, channel_max, presence)
           VALUES ($1, $1, $2::text::jsonb, $3, $4::text::jsonb, $5)
           ON CONFLICT (agent_id) DO UPDATE
              SET skills = EXCLUDED.skills, capacity = EXCLUDED.capacity,
                  channel_max = EXCLUDED.channel_max, presence = EXCLUDED.presence,
                  presence_at = now(), updated_at = now()""",
        agent_id,
        orjson.dumps(skills or {}).decode(),
        capacity,
        orjson.dumps(channel_max or {}).decode(),
        presence,
    )
    await con.execute("SELECT pg_notify('omniroute_assign', 'agent:' || $1::text)", agent_id)


async def set_presence(
    con: asyncpg.Pool | asyncpg.Connection, agent_id: str, presence: str
) -> None:
    await con.execute(
        "UPDATE agents SET presence = $2, presence_at = now() WHERE agent_id = $1",
        agent_id,
        presence,
    )
    await con.execute("SELECT pg_notify('omniroute_assign', 'agent:' || $1::text)", agent_id)


async def load_of(con: asyncpg.Pool | asyncpg.Connection, agent_id: str) -> dict[str, Any]:
    """The agent's load, its channel counts, and the sum of the work it holds."""
    row = await con.fetchrow(
        """SELECT a.load_units, a.load_by_channel::text AS by_channel, a.idle_since,
                  a.last_offer_at,
                  (SELECT coalesce(sum(units), 0) FROM agent_work w
                    WHERE w.agent_id = a.agent_id)::int AS held
             FROM agents a WHERE a.agent_id = $1""",
        agent_id,
    )
    assert row is not None
    return {**dict(row), "by_channel": orjson.loads(row["by_channel"])}


#: every agent's load against its capacity, channel maximums and held work,
#: read in one snapshot: the rows that break a limit
BROKEN = """
SELECT a.agent_id, a.load_units, a.capacity, a.load_by_channel::text AS by_channel,
       a.channel_max::text AS channel_max, coalesce(w.units, 0)::int AS held
  FROM agents a
  LEFT JOIN (SELECT agent_id, sum(units) AS units FROM agent_work GROUP BY agent_id) w
         USING (agent_id)
 WHERE a.load_units > a.capacity
    OR a.load_units <> coalesce(w.units, 0)
    OR EXISTS (SELECT 1 FROM jsonb_each_text(a.channel_max) m
                WHERE coalesce((a.load_by_channel ->> m.key)::int, 0) > m.value::int)
    OR EXISTS (SELECT 1 FROM jsonb_each_text(a.load_by_channel) c
                WHERE c.value::int <> (SELECT count(*) FROM agent_work x
                                        WHERE x.agent_id = a.agent_id AND x.channel = c.key))
"""


@asynccontextmanager
async def emptied(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the database (its schema migrated by the module's app),
    emptied of agents, offers, agents' work and open contacts; on leaving,
    no agent's load may break a limit (``BROKEN``), whatever the test did.
    The ``db`` fixture of the assignment and offers tests."""
    async with seed.pool(database_url) as pool:
        await pool.execute("TRUNCATE agent_work, offers, agents; DELETE FROM open_contacts")
        yield pool
        assert await pool.fetch(BROKEN) == []
