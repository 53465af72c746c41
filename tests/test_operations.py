"""Health, readiness, metrics, the API description, the active ruleset, and
behaviour when the database goes away and comes back."""

from __future__ import annotations

import asyncio

from tests.support.api import Api
from tests.support.examples import example, unique
from tests.support.proxy import CuttableProxy


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    ready = await api.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"


async def test_metrics_count_routed_contacts(api: Api) -> None:
    await api.deliver("social", example("social", id=unique()))
    text = await (await api.get("/metrics")).text()
    assert 'omniroute_contacts_routed_total{adapter="social",channel="social"' in text
    assert "omniroute_routing_seconds_bucket" in text


def _sample(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return float(line.split()[-1])


async def test_metrics_show_the_sizes_of_the_database_batches(api: Api) -> None:
    """Concurrent contacts share batches; every contact is in exactly one
    resolve batch and one record batch."""
    names = [
        f'omniroute_batch_items_{part}{{batcher="{batcher}"}}'
        for batcher in ("resolve", "record")
        for part in ("sum", "count")
    ]
    before_text = await (await api.get("/metrics")).text()
    before = {n: _sample(before_text, n) if n in before_text else 0.0 for n in names}
    answers = await asyncio.gather(
        *(api.deliver("chat", example("chat", id=unique())) for _ in range(6))
    )
    assert all(a.status == 200 for a in answers)
    text = await (await api.get("/metrics")).text()
    grown = {n: _sample(text, n) - before[n] for n in names}
    for batcher in ("resolve", "record"):
        assert grown[f'omniroute_batch_items_sum{{batcher="{batcher}"}}'] == 6
        assert 1 <= grown[f'omniroute_batch_items_count{{batcher="{batcher}"}}'] <= 6
    assert 'omniroute_batch_items_bucket{batcher="record",le="128.0"}' in text


async def test_openapi_lists_the_endpoints(api: Api) -> None:
    spec = await (await api.client.get("/openapi.json")).json()
    assert {"/v1/webhooks/{adapter}", "/v1/contacts", "/v1/contacts/{id}"} <= set(spec["paths"])


async def test_active_ruleset(api: Api) -> None:
    body = await (await api.get("/v1/rules")).json()
    assert len(body["version"]) >= 8
    assert body["sources"]


async def test_database_outage_is_503_then_recovers(flaky: tuple[Api, CuttableProxy]) -> None:
    api, proxy = flaky
    assert (await api.deliver("chat", example("chat", id=unique()))).status == 200

    proxy.cut()
    payload = example("chat", id=unique())
    response = await api.deliver("chat", payload)
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"] == "store_unavailable"
    assert (await api.client.get("/readyz")).status == 503
    assert (await api.get("/v1/contacts")).status == 503

    proxy.restore()
    response = await api.deliver("chat", payload)  # the platform retries
    assert response.status == 200
    assert (await response.json())["contacts"][0]["duplicate"] is False
    assert (await api.client.get("/readyz")).status == 200


async def test_the_server_header_names_no_version(api: Api) -> None:
    for path in ("/healthz", "/no-such-page", "/v1/contacts"):
        assert (await api.client.get(path)).headers["Server"] == "omniroute"
    # an answer aiohttp writes itself, without the app: a malformed request
    assert api.client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: omniroute\r\nno colon here\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"400"
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nserver: omniroute\r\n" in head + b"\r\n"
    assert b"aiohttp" not in answer.lower() and b"python" not in answer.lower()
