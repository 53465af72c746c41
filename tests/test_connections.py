"""A pooled connection goes back to the pool clean, whatever happened on it:
a call that failed on the client's side (an argument the driver cannot
encode, after the statement was already prepared on the server) must not
leave the server inside a transaction that the next borrower inherits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.store import DatabaseSettings, db
from router.web import create_app
from tests.support.api import Api
from tests.support.settings import make_settings

#: A time PostgreSQL stores but the driver cannot encode (year 10000 in UTC).
UNENCODABLE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))


async def stuck_backends(database_url: str) -> list[asyncpg.Record]:
    """Backends of the test database (other than the one asking) that are
    inside a transaction while waiting for their client -- eventually none."""
    monitor = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = []
        for _ in range(40):
            rows = await monitor.fetch(
                """SELECT pid, state, wait_event, query FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND (state LIKE 'idle in transaction%'
                           OR (state = 'active' AND wait_event = 'ClientRead'))"""
            )
            if not rows:
                return rows
            await asyncio.sleep(0.05)  # a statement in flight moves on; a leaked one stays
        return rows
    finally:
        await monitor.close()


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[Api]:
    """The app with a pool of a single connection: every request borrows it."""
    settings = make_settings(
        database_url, database={"url": database_url, "pool_min": 1, "pool_max": 1}
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield Api(client)


async def test_a_refused_query_does_not_break_the_next_request(
    one_connection: Api, database_url: str
) -> None:
    api = one_connection
    refused = await api.get(
        "/v1/contacts", queue="q1", rule="r1", since="9999-12-31T23:59:59-14:00"
    )
    assert 400 <= refused.status < 500, await refused.text()
    assert await stuck_backends(database_url) == []
    for _ in range(3):
        summary = await api.get("/v1/reports/summary")
        assert summary.status == 200, await summary.text()
    assert await stuck_backends(database_url) == []


@pytest.fixture
async def pool_of_one(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    settings = DatabaseSettings(url=database_url, pool_min=1, pool_max=1)
    pool = await db.connect_pool(database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


async def locks_of(database_url: str, pid: int) -> int:
    monitor = await asyncpg.connect(database_url)
    try:
        count: int = await monitor.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND relation IS NOT NULL", pid
        )
        return count
    finally:
        await monitor.close()


async def test_an_argument_the_driver_cannot_encode_leaves_no_transaction(
    pool_of_one: asyncpg.Pool, database_url: str
) -> None:
    query = "SELECT count(*) FROM contacts WHERE received_at >= $1"
    # The failure escapes the borrowing block ...
    with pytest.raises(asyncpg.exceptions.DataError):
        await pool_of_one.fetchval(query, UNENCODABLE)
    async with pool_of_one.acquire() as con:
        pid = con.get_server_pid()
    assert await locks_of(database_url, pid) == 0
    assert await stuck_backends(database_url) == []
    # ... or is caught inside it: either way the next borrower starts clean.
    async with pool_of_one.acquire() as con:
        with pytest.raises(asyncpg.exceptions.DataError):
            await con.fetchval(query, UNENCODABLE)
    assert await locks_of(database_url, pid) == 0
    async with pool_of_one.acquire() as con:
        async with con.transaction(isolation="repeatable_read", readonly=True):
            assert await con.fetchval(query, datetime(2001, 1, 1, tzinfo=UTC)) >= 0
        assert con.get_server_pid() == pid  # the same connection, cleaned, not replaced


async def test_a_connection_without_failures_is_not_reset(pool_of_one: asyncpg.Pool) -> None:
    async with pool_of_one.acquire() as con:
        await con.execute("SET application_name = 'kept'")  # session state survives release
    async with pool_of_one.acquire() as con:
        assert await con.fetchval("SHOW application_name") == "kept"
        with pytest.raises(asyncpg.exceptions.DataError):
            await con.fetchval("SELECT $1::int", 2**40)
    async with pool_of_one.acquire() as con:  # after a failure: reset as if new
        assert await con.fetchval("SHOW application_name") == "omniroute"


async def test_the_pool_runs_its_statements_without_jit(pool_of_one: asyncpg.Pool) -> None:
    """The routing statements are short OLTP statements: the pool's sessions
    turn JIT off for themselves whatever the server's default, also after a
    failure resets the session."""
    async with pool_of_one.acquire() as con:
        assert await con.fetchval("SHOW jit") == "off"
        # set by the session itself (the server's configuration is left alone)
        assert await con.fetchval("SELECT source FROM pg_settings WHERE name = 'jit'") == "client"
        with pytest.raises(asyncpg.exceptions.DataError):
            await con.fetchval("SELECT $1::int", 2**40)
    async with pool_of_one.acquire() as con:  # reset after the failure: still off
        assert await con.fetchval("SHOW jit") == "off"
