"""The marks of the outbox's attempts: a mark reads the rows it marks, not
the backlog, whatever the table held when the connection planned it."""

from __future__ import annotations

import uuid

import asyncpg

from router.settings import DatabaseSettings
from router.store import deliveries, open_store
from router.store.deliveries import Mark
from tests.support.databases import new_database

_ROWS = """
INSERT INTO deliveries (delivery_id, destination, event_type, payload, status, attempts)
SELECT gen_random_uuid(), 'hook', 'contact.routed',
       jsonb_build_object('data', repeat(md5(n::text), 12)), $2, 1
  FROM generate_series(1, $1) AS n
"""

_HEAP_READS = "SELECT pg_stat_get_xact_blocks_fetched('deliveries'::regclass)"


async def test_a_mark_reads_its_own_rows_not_the_backlog(server_url: str) -> None:
    """The connection plans its marks while the outbox is empty (a new
    database, or an instance started while nothing was pending); statistics
    are gathered while it is drained (the usual case); then a backlog of
    20,000 pending events builds up. Marking 5 of them reads a few pages
    X, and commits without
    waiting for the WAL flush."""
    async with new_database(server_url, "omniroute_marks") as url:
        async with open_store(DatabaseSettings(url=url, pool_min=1, pool_max=1)):
            pass  # the schema
        con = await asyncpg.connect(url, server_settings={"search_path": "omniroute"})
        try:
            for _ in range(8):  # past the custom plans: the connection's generic plan
                assert await deliveries.mark(con, [Mark(uuid.uuid4(), 1)]) == [False]
            await con.execute(_ROWS, 500, "delivered")
            await con.execute("ANALYZE deliveries")
            await con.execute(_ROWS, 20_000, "pending")
            ids = [
                r[0]
                for r in await con.fetch(
                    "SELECT delivery_id FROM deliveries WHERE status = 'pending' LIMIT 5"
                )
            ]
            marks = [Mark(ids[0], 1), Mark(ids[1], 1, "HTTP 500", 30.0), Mark(ids[2], 1, "x")]
            marks += [Mark(ids[3], 2), Mark(ids[4], 1)]  # an attempt that no longer holds it
            async with con.transaction():
                before = await con.fetchval(_HEAP_READS)
                took = await deliveries.mark(con, marks)
                reads = await con.fetchval(_HEAP_READS) - before
                relaxed = await con.fetchval("SHOW synchronous_commit")
            assert took == [True, True, True, False, True]
            assert reads <= 10 * len(marks), reads  # the backlog: about 1,000
            assert relaxed == "off"
            rows = {
                r["delivery_id"]: (r["status"], r["last_error"])
                for r in await con.fetch(
                    "SELECT delivery_id, status, last_error FROM deliveries"
                    " WHERE delivery_id = any($1)",
                    ids,
                )
            }
            assert [rows[i] for i in ids] == [
                ("delivered", None),
                ("pending", "HTTP 500"),
                ("failed", "x"),
                ("pending", None),
                ("delivered", None),
            ]
        finally:
            await con.close()
