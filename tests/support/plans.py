"""The plan of one of the store's statements as the service's prepared
statement may get it: generic (after five runs PostgreSQL may keep a plan
made without the parameters' values; ``unnest`` of an array parameter is
then estimated at 10 rows), optionally with nested loops as the only join."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

#: the planner left with nested loops, and the tables probed by their keys
#: (as they are once they are not tiny)
NESTED = (
    "enable_hashjoin = off",
    "enable_mergejoin = off",
    "enable_seqscan = off",
    "enable_bitmapscan = off",
)


async def generic_plan(
    pool: asyncpg.Pool, sql: str, args: Sequence[str], *, settings: Sequence[str] = ()
) -> str:
    """EXPLAIN (the statement not run) of ``sql`` prepared with ``PREPARE``
    and executed with ``args`` (SQL literals) under ``plan_cache_mode =
    force_generic_plan`` and ``settings`` (``SET LOCAL``: for a transaction)."""
    async with pool.acquire() as con:
        try:
            async with con.transaction():
                for setting in ("plan_cache_mode = force_generic_plan", *settings):
                    await con.execute(f"SET LOCAL {setting}")
                await con.execute(f"PREPARE generic_plan AS {sql}")
                rows = await con.fetch(f"EXPLAIN EXECUTE generic_plan ({', '.join(args)})")
        finally:  # the session's, not the transaction's (asyncpg's own are kept)
            if await con.fetchval(
                "SELECT true FROM pg_prepared_statements WHERE name = 'generic_plan'"
            ):
                await con.execute("DEALLOCATE generic_plan")
    return "\n".join(r[0] for r in rows)
