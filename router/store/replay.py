"""The stored contacts a replay decides again, read in one snapshot with a
server-side cursor (a batch at a time, so memory stays flat however many)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from router.store.records import Snapshot

#: rows fetched per round trip
BATCH = 1000

_RECEIVED = """
SELECT contact_id, received_at, contact, context, decision,
       least(assigned_at, answered_at, abandoned_at, resolved_at, closed_at, outcome_at)
  FROM contacts
 WHERE received_at >= $1 AND received_at < $2
 ORDER BY received_at, contact_id
"""


async def received(
    pool: asyncpg.Pool, *, since: datetime, until: datetime, batch: int = BATCH
) -> AsyncIterator[Snapshot]:
    """The snapshots of the records received in ``[since, until)``, oldest first."""
    async with (
        pool.acquire() as con,
        con.transaction(isolation="repeatable_read", readonly=True),
    ):
        async for row in con.cursor(_RECEIVED, since, until, prefetch=batch):
            yield Snapshot(*row)
