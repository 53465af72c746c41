"""Faults under load, each a few seconds (``bench/chaos.py`` runs them long):
omniroute killed with SIGKILL, the database gone, a slow context provider, a
broken rules edit. The load comes from a platform-like generator that retries
every delivery until it gets a 2xx; afterwards the database must hold exactly
one record per acknowledged delivery, the one the answer named."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.faults import Omniroute, Platform, Verdict, break_rules, copy_rules, verify
from tests.support.api import Api
from tests.support.apps import app_on, base_url, needs_rules_engine, platform, served_version
from tests.support.proxy import CuttableProxy


def assert_nothing_lost(load: Platform, verdict: Verdict) -> None:
    """Every delivery acknowledged once, recorded once; no 5xx but 503, each
    503 with ``Retry-After``."""
    assert verdict.ok, verdict.line()
    assert not [o for o in load.outcomes if o.startswith("5") and o != "503"], load.outcomes
    assert load.missing_retry_after == 0


async def test_kill_9_under_load_then_restart_loses_nothing(
    processes: Callable[..., Omniroute], database_url: str
) -> None:
    server = processes()
    await server.ready()
    load = platform(server.url, max_backoff=0.2)
    running = asyncio.create_task(load.run_for(3.0, concurrency=8, give_up_after=60))
    await asyncio.sleep(1.0)
    acknowledged_before = sum(d.answer is not None for d in load.deliveries)
    server.kill9()
    await asyncio.sleep(0.3)
    server.start()
    await server.ready()
    await running

    verdict = await verify(database_url, load)
    assert_nothing_lost(load, verdict)
    assert acknowledged_before > 0
    assert load.outcomes["connection"] > 0, load.outcomes  # the kill was felt
    assert verdict.retried > 0
    assert verdict.records == verdict.acknowledged == verdict.deliveries


async def test_database_outage_under_load_is_503_then_recovers(
    flaky: tuple[Api, CuttableProxy], database_url: str
) -> None:
    api, proxy = flaky
    load = platform(base_url(api), max_backoff=0.2, timeout=4.0)
    running = asyncio.create_task(load.run_for(3.0, concurrency=6, give_up_after=30))
    await asyncio.sleep(0.7)
    proxy.cut()
    cut_at = time.monotonic()
    await asyncio.sleep(0.5)
    ready = await api.client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"].startswith("unavailable")
    await asyncio.sleep(1.5)
    restored_at = time.monotonic()
    proxy.restore()
    await running

    verdict = await verify(database_url, load)
    assert_nothing_lost(load, verdict)
    assert load.outcomes["503"] > 0, load.outcomes
    during = load.between(cut_at, restored_at)
    assert during and "200" not in during, during
    recovery = load.first_success_after(restored_at)
    assert recovery is not None and recovery < 5.0
    assert (await api.client.get("/readyz")).status == 200


@pytest.fixture
async def slow_crm() -> AsyncIterator[str]:
    """A context provider that answers long after omniroute's timeout."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"tier": "late"})

    app = web.Application()
    app.router.add_get("/lookup", slow)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/lookup"))
    await server.close()


async def test_slow_context_provider_under_load_degrades_but_routes(
    database_url: str, slow_crm: str
) -> None:
    provider = {"url": slow_crm + "?email={email}", "timeout_ms": 100, "breaker_failures": 1000}
    async with app_on(database_url, context_provider=provider) as api:
        load = platform(base_url(api), channels=("chat", "email"))
        await load.run_for(1.5, concurrency=8, give_up_after=10)
    verdict = await verify(database_url, load)
    assert_nothing_lost(load, verdict)
    assert set(load.outcomes) == {"200"}, load.outcomes
    assert verdict.degraded == verdict.records > 0


@needs_rules_engine
async def test_broken_rules_edit_under_load_keeps_the_active_ruleset(
    database_url: str, tmp_path: Path
) -> None:
    rules = copy_rules(tmp_path)
    async with app_on(database_url, rules={"paths": [str(rules)], "watch": True}) as api:
        version = await served_version(api)
        load = platform(base_url(api))
        running = asyncio.create_task(load.run_for(2.0, concurrency=6, give_up_after=10))
        await asyncio.sleep(0.5)
        break_rules(rules)
        await running
        ready = await (await api.client.get("/readyz")).json()
        assert await served_version(api) == version
    verdict = await verify(database_url, load)
    assert_nothing_lost(load, verdict)
    assert set(load.outcomes) == {"200"}, load.outcomes
    assert {d.ruleset for d in load.deliveries} == {version}
    assert {d.answer["decision"]["ruleset"] for d in load.deliveries if d.answer} == {version}
    assert ready["rules_reload_errors"], ready
