"""Apps for the multi-instance, fault and security tests: apps built by
``create_app`` on ports of their own, a retrying platform-like load generator
(``bench/faults.py``) aimed at them, and waiting for what they report. The
``processes`` and ``flaky`` fixtures built on these are in ``conftest.py``."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.faults import Platform, engine_reads_the_files, free_port
from router.web import create_app
from tests.support.api import Api
from tests.support.examples import unique
from tests.support.settings import SECRETS, make_settings

T = TypeVar("T")


needs_rules_engine = pytest.mark.skipif(
    not engine_reads_the_files(),
    reason="the rules engine in this checkout does not read the rules files",
)


# -- waiting ------------------------------------------------------------------


async def ready(proc: subprocess.Popen[Any], port: int, *, seconds: float = 30.0) -> None:
    """Wait until the ``omniroute serve`` process ``proc`` answers ``/readyz``
    on ``port``; fail with its standard error if it exits first."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"exited with {proc.returncode}: {err}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"not ready after {seconds} s")


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


# -- apps on ports of their own ---------------------------------------------


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
