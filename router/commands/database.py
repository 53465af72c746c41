"""The database the commands work on: opened (embedded or configured),
migrated, handed to the command's work, closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from router.settings import Settings
from router.store import db, migrations

T = TypeVar("T")


async def with_pool(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(pool)`` on a migrated database (embedded or configured)."""
    async with db.database(settings.database) as url:
        pool = await db.connect_pool(url, settings.database)
        try:
            async with pool.acquire() as con:
                await migrations.migrate(con)
            return await work(pool)
        finally:
            await pool.close()
