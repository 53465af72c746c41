"""The marks of the outbox's attempts: a mark reads the rows it marks, not
the backlog, whatever the table held when the connection planned it; and
waiting for it holds no slot of the destination."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from router.settings import DatabaseSettings
from router.store import deliveries, open_store
from router.store.deliveries import Mark
from tests.support.apps import app_on
from tests.support.databases import new_database
from tests.support.receivers import destination, receiver

_ROWS = """
INSERT INTO deliveries (delivery_id, destination, event_type, payload, status, attempts)
SELECT gen_random_uuid(), $3, 'contact.routed',
       jsonb_build_object('data', repeat(md5(n::text), 12)), $2, $4
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
            await con.execute(_ROWS, 500, "delivered", "hook", 1)
            await con.execute("ANALYZE deliveries")
            await con.execute(_ROWS, 20_000, "pending", "hook", 1)  # attempted once
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


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_attempt_whose_mark_waits_holds_no_slot(own_database: str) -> None:
    """A destination of concurrency 1 with three events claimed: while the
    first attempt's outcome cannot be written (the outbox locked, as a
    database slow to take it), the other two are sent all the same; all
    three are marked once the lock goes."""
    fast = {"retry_base": 0.05, "retry_max_delay": 0.2, "poll_interval": 0.2}
    async with receiver() as r:
        dest = destination(r, concurrency=1)

        async def held() -> bool:
            return len(r.held) == 1

        async def sent(n: int) -> bool:
            return len(r.received) == n

        con = await asyncpg.connect(own_database, server_settings={"search_path": "omniroute"})
        try:

            async def marked() -> bool:
                statuses = await con.fetch(
                    "SELECT status FROM deliveries WHERE destination = $1", dest["name"]
                )
                return [s["status"] for s in statuses] == ["delivered"] * 3

            async with app_on(own_database, destinations=[dest], delivery=fast):
                r.hold = True  # the first attempt stays in flight
                await con.execute(_ROWS, 3, "pending", dest["name"], 0)
                await until(held)  # the three claimed together, the first one sent
                lock = con.transaction()
                await lock.start()
                await con.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")  # no mark now
                r.hold = False  # the first attempt gets its answer (503: to be retried)
                try:
                    await until(lambda: sent(2), timeout=2.0)
                finally:
                    await lock.rollback()
                await until(lambda: sent(3))  # the first one again, after its retry mark
                await until(marked)
            attempts = await con.fetch(
                "SELECT attempts FROM deliveries WHERE destination = $1 ORDER BY attempts",
                dest["name"],
            )
        finally:
            await con.close()
    assert [a["attempts"] for a in attempts] == [1, 1, 2]
    assert len(set(r.ids)) == 3
