"""Shared by the multi-instance, fault and fuzz tests: apps and ``omniroute
serve`` processes on one test database, rules folders a test can edit, a
database link a test can cut, and the platform-like retrying load generator
(``bench/faults.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.faults import (
    Omniroute,
    Platform,
    engine_reads_the_files,
    free_port,
    write_config,
)
from router.settings import SCOPES
from router.web import create_app
from tests.conftest import ROOT, SECRETS, TOKEN, Api, make_settings, unique
from tests.proxy import CuttableProxy

T = TypeVar("T")


needs_rules_engine = pytest.mark.skipif(
    not engine_reads_the_files(),
    reason="the rules engine in this checkout does not read the rules files",
)


# -- waiting ------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], *, timeout: float = 10.0
) -> T:
    """Poll ``probe`` until ``accept`` holds for its result; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(0.1)


async def served_version(api: Api) -> str:
    """The ruleset version an instance reports in ``/readyz``."""
    version: str = (await (await api.client.get("/readyz")).json())["ruleset"]
    return version


# -- in-process apps and processes -------------------------------------------


@asynccontextmanager
async def app_on(database_url: str, **overrides: Any) -> AsyncIterator[Api]:
    """An app built by ``create_app`` on its own loopback port (the port it
    registers as an instance)."""
    port = free_port()
    http = {"host": "127.0.0.1", "port": port, "max_body_bytes": 64 * 1024}
    settings = make_settings(database_url, http=http, **overrides)
    async with TestClient(TestServer(create_app(settings), port=port)) as client:
        yield Api(client)


def base_url(api: Api) -> str:
    return str(api.client.make_url("")).rstrip("/")


def platform(*urls: str, **options: Any) -> Platform:
    """A retrying platform for the test adapters, with a fresh run id."""
    return Platform(urls=list(urls), secrets=SECRETS, run=unique("run"), **options)


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
