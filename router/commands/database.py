"""The database the commands work on: opened (embedded or configured),
migrated, handed to the command's work, closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from router.settings import Settings
from router.store import Store, open_store

T = TypeVar("T")


async def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work(store)`` on a migrated database (embedded or configured)."""
    async with open_store(settings.database) as store:
        return await work(store)
