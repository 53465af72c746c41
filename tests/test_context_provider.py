"""The external context provider against a real local HTTP server that
answers, answers slowly and fails: routing never fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router.recognition.breaker import CircuitBreaker
from router.web import create_app
from tests.support.api import Api
from tests.support.examples import example, person, unique
from tests.support.settings import make_settings


class Crm:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {"ok": 0, "slow": 0, "fail": 0}

    async def ok(self, request: web.Request) -> web.Response:
        self.calls["ok"] += 1
        return web.json_response(
            {"tier": "platinum", "attributes": {"ltv": 1200}, "email": request.query["email"]}
        )

    async def nul(self, request: web.Request) -> web.Response:
        self.calls["nul"] = self.calls.get("nul", 0) + 1
        return web.json_response({"tier": "gold\u0000", "attributes": {"k\u0000": "v\u0000"}})

    async def slow(self, request: web.Request) -> web.Response:
        self.calls["slow"] += 1
        await asyncio.sleep(1)
        return web.json_response({"tier": "late"})

    async def fail(self, request: web.Request) -> web.Response:
        self.calls["fail"] += 1
        return web.Response(status=500)


@pytest.fixture
async def crm() -> AsyncIterator[tuple[Crm, str]]:
    state = Crm()
    app = web.Application()
    app.router.add_get("/ok", state.ok)
    app.router.add_get("/nul", state.nul)
    app.router.add_get("/slow", state.slow)
    app.router.add_get("/fail", state.fail)
    server = TestServer(app)
    await server.start_server()
    yield state, str(server.make_url(""))
    await server.close()


async def api_with(database_url: str, url: str) -> TestClient[Any, Any]:
    provider = {
        "url": url + "?email={email}",
        "timeout_ms": 150,
        "breaker_failures": 3,
        "breaker_reset_seconds": 60,
    }
    settings = make_settings(database_url, context_provider=provider)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


async def contexts(api: Api, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        payload = example("chat", id=unique(), customer=person())
        response = await api.deliver("chat", payload)
        assert response.status == 200
        contact_id = (await response.json())["contacts"][0]["contact_id"]
        out.append((await (await api.get(f"/v1/contacts/{contact_id}")).json())["context"])
    return out


async def test_answers_enrich_the_context_and_are_cached(
    database_url: str, crm: tuple[Crm, str]
) -> None:
    state, base = crm
    client = await api_with(database_url, base + "/ok")
    try:
        api = Api(client)
        who = person()
        for _ in range(2):
            response = await api.deliver("chat", example("chat", id=unique(), customer=who))
            contact_id = (await response.json())["contacts"][0]["contact_id"]
            context = (await (await api.get(f"/v1/contacts/{contact_id}")).json())["context"]
            assert context["tier"] == "platinum"
            assert context["attributes"]["ltv"] == 1200
            assert context["degraded"] is False
        assert state.calls["ok"] == 1  # the second lookup came from the cache
    finally:
        await client.close()


async def test_an_answer_postgresql_cannot_store_does_not_fail_the_contact(
    database_url: str, crm: tuple[Crm, str]
) -> None:
    state, base = crm
    client = await api_with(database_url, base + "/nul")
    try:
        api = Api(client)
        response = await api.deliver("chat", example("chat", id=unique(), customer=person()))
        assert response.status == 200, await response.text()
        contact_id = (await response.json())["contacts"][0]["contact_id"]
        context = (await (await api.get(f"/v1/contacts/{contact_id}")).json())["context"]
        assert context["tier"] == "gold\ufffd"
        assert context["attributes"]["k\ufffd"] == "v\ufffd"
        assert state.calls["nul"] == 1
    finally:
        await client.close()


@pytest.mark.parametrize("endpoint", ["slow", "fail"])
async def test_slow_or_failing_provider_degrades_and_opens_the_circuit(
    database_url: str, crm: tuple[Crm, str], endpoint: str
) -> None:
    state, base = crm
    client = await api_with(database_url, f"{base}/{endpoint}")
    try:
        api = Api(client)
        started = asyncio.get_running_loop().time()
        found = await contexts(api, 5)
        elapsed = asyncio.get_running_loop().time() - started
        assert all(c["degraded"] for c in found)
        assert state.calls[endpoint] == 3  # then the circuit is open: no more calls
        assert elapsed < 3  # each slow lookup was cut at 150 ms
        metrics = await (await api.get("/metrics")).text()
        assert 'omniroute_context_lookups_total{result="circuit_open"} 2.0' in metrics
    finally:
        await client.close()


def test_breaker_half_opens_after_the_reset_time() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_seconds=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    now[0] = 11
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # while the trial is out
    breaker.success()
    assert breaker.state == "closed"
