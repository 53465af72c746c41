"""The ``instances`` table: each omniroute process upserts its row on a
heartbeat (and on every ruleset load), so any instance can list which ruleset
version every live instance serves."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

#: Seconds between heartbeats.
HEARTBEAT_SECONDS = 10.0
#: An instance whose last heartbeat is older than this is not listed as live.
LIVE_SECONDS = 3 * HEARTBEAT_SECONDS
#: Rows of instances silent for longer than this are deleted.
PRUNE_AFTER = "1 day"


@dataclass(frozen=True, slots=True)
class Instance:
    """This process as the other instances see it."""

    port: int
    instance_id: uuid.UUID = field(default_factory=uuid.uuid4)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class LiveInstance:
    """An instance with a recent heartbeat, and the ruleset it serves."""

    instance_id: uuid.UUID
    host: str
    port: int
    pid: int
    ruleset: str
    rules_errors: list[str]
    started_at: datetime
    heartbeat_at: datetime


_BEAT = """
INSERT INTO instances (instance_id, host, port, pid, ruleset, rules_errors, started_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (instance_id) DO UPDATE
   SET ruleset = EXCLUDED.ruleset,
       rules_errors = EXCLUDED.rules_errors,
       heartbeat_at = now()
"""


async def beat(
    pool: asyncpg.Pool, me: Instance, *, ruleset: str, rules_errors: Sequence[str] = ()
) -> None:
    """Record that ``me`` is alive and serves ``ruleset``; prune long-silent rows."""
    async with pool.acquire() as con, con.transaction():
        await con.execute(
            _BEAT,
            me.instance_id,
            me.host,
            me.port,
            me.pid,
            ruleset,
            list(rules_errors),
            me.started_at,
        )
        await con.execute(
            f"DELETE FROM instances WHERE heartbeat_at < now() - interval '{PRUNE_AFTER}'"
        )


async def live(pool: asyncpg.Pool, *, within: float = LIVE_SECONDS) -> list[LiveInstance]:
    """The instances that beat within the last ``within`` seconds, oldest first."""
    rows = await pool.fetch(
        """SELECT instance_id, host, port, pid, ruleset, rules_errors, started_at, heartbeat_at
             FROM instances
            WHERE heartbeat_at >= now() - make_interval(secs => $1)
            ORDER BY started_at, instance_id""",
        within,
    )
    return [LiveInstance(*r) for r in rows]


async def leave(pool: asyncpg.Pool, me: Instance) -> None:
    """Remove ``me`` (a clean shutdown); a killed process's row just stops beating."""
    await pool.execute("DELETE FROM instances WHERE instance_id = $1", me.instance_id)
