"""The ``console_sessions`` table: the console's server-side sessions
(docs/console.md). Rows are keyed by the SHA-256 of the session id the browser
holds; a lookup that finds a live session also marks it seen, in one
statement, so the idle expiry moves with use. Expired rows are deleted at
every sign-in and by the periodic job ``session_purge`` (``purge_expired``),
so a console nobody signs into keeps none for long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

#: A session that has ended without a sign-out: past its absolute expiry, or
#: idle too long. Neither can become live again (``touch`` needs both in the
#: future and moves only ``last_seen_at`` of a live row), so such rows are
#: only kept until deleted.
_EXPIRED = """expires_at <= now()
           OR last_seen_at + make_interval(secs => idle_seconds) <= now()"""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live console session."""

    token_name: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


async def open_session(
    pool: asyncpg.Pool,
    id_hash: bytes,
    *,
    token_name: str,
    csrf_token: str,
    idle_seconds: int,
    absolute_seconds: int,
) -> None:
    """Store a new session; the expired rows of every session go at the same time."""
    async with pool.acquire() as con, con.transaction():
        await con.execute(f"DELETE FROM console_sessions WHERE {_EXPIRED}")
        await con.execute(
            """INSERT INTO console_sessions
                      (id_hash, token_name, csrf_token, idle_seconds, expires_at)
               VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
            id_hash,
            token_name,
            csrf_token,
            idle_seconds,
            float(absolute_seconds),
        )


async def purge_expired(pool: asyncpg.Pool, *, limit: int) -> int:
    """Delete up to ``limit`` expired sessions; the number deleted. Rows that
    another instance's purge or a sign-in is deleting right now are skipped
    (``SKIP LOCKED``), so instances running the job at the same time share
    the rows instead of waiting on each other's."""
    status: str = await pool.execute(
        f"""DELETE FROM console_sessions WHERE id_hash IN (
               SELECT id_hash FROM console_sessions
                WHERE {_EXPIRED}
                LIMIT $1
                  FOR UPDATE SKIP LOCKED)""",
        limit,
    )
    return int(status.split()[-1])


async def touch(pool: asyncpg.Pool, id_hash: bytes) -> ConsoleSession | None:
    """The live session ``id_hash`` names, marked seen now; ``None`` when there
    is none (never was, signed out, idle too long or past its absolute expiry)."""
    row = await pool.fetchrow(
        """UPDATE console_sessions
              SET last_seen_at = now()
            WHERE id_hash = $1
              AND expires_at > now()
              AND last_seen_at + make_interval(secs => idle_seconds) > now()
        RETURNING token_name, csrf_token, created_at, last_seen_at, expires_at""",
        id_hash,
    )
    return None if row is None else ConsoleSession(*row)


async def close_session(pool: asyncpg.Pool, id_hash: bytes) -> bool:
    """Delete the session; False when there was none."""
    done = await pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", id_hash)
    return bool(done != "DELETE 0")
