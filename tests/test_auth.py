"""Who may call what: bearer tokens and their scopes, the brake on failed
token attempts (per client address, 429 with Retry-After), and ``/metrics``,
which needs the ``metrics:read`` scope unless made public."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.errors import TooManyRequests
from router.settings import SCOPES
from router.web import create_app
from router.web.limits import FailureLimiter
from tests.support.settings import READ_TOKEN, TOKEN, make_settings

TOKENS = [
    {"name": "all", "token": TOKEN, "scopes": list(SCOPES)},
    {"name": "reader", "token": READ_TOKEN, "scopes": ["reports:read"]},
]


@asynccontextmanager
async def client(database_url: str, **overrides: Any) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(make_settings(database_url, **overrides)))) as c:
        yield c


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def test_failed_tokens_are_braked_per_address(database_url: str) -> None:
    api = {"tokens": TOKENS, "failed_auth_limit": 3, "failed_auth_window": 1.5}
    async with client(database_url, api=api) as c:
        for _ in range(3):
            assert (await c.get("/v1/rules", headers=bearer("guess"))).status == 401
        # the brake holds for every token, the right one too (or guessing would go on)
        for token in ("guess", TOKEN):
            response = await c.get("/v1/rules", headers=bearer(token))
            assert response.status == 429
            assert (await response.json())["error"] == "too_many_requests"
            assert 1 <= int(response.headers["Retry-After"]) <= 2
        # requests without a token are not guesses, and webhooks are not braked
        assert (await c.get("/healthz")).status == 200
        assert (await c.post("/v1/webhooks/chat", data=b"{}")).status == 401
        await asyncio.sleep(1.6)
        assert (await c.get("/v1/rules", headers=bearer(TOKEN))).status == 200
        # successes do not count against the address
        for _ in range(2):
            assert (await c.get("/v1/rules", headers=bearer("guess"))).status == 401
        for _ in range(5):
            assert (await c.get("/v1/rules", headers=bearer(TOKEN))).status == 200


async def test_forwarded_for_counts_only_from_trusted_proxies(database_url: str) -> None:
    api = {"tokens": TOKENS, "failed_auth_limit": 2, "failed_auth_window": 60}
    http = {"host": "127.0.0.1", "port": 0, "trusted_proxies": ["127.0.0.0/8"]}
    async with client(database_url, api=api, http=http) as c:
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        for _ in range(2):
            response = await c.get("/v1/rules", headers=bearer("guess", **attacker))
            assert response.status == 401
        assert (await c.get("/v1/rules", headers=bearer(TOKEN, **attacker))).status == 429
        # another client behind the same balancer is not locked out
        other = {"X-Forwarded-For": "198.51.100.2, 127.0.0.1"}
        assert (await c.get("/v1/rules", headers=bearer(TOKEN, **other))).status == 200
    async with client(database_url, api=api) as c:  # no trusted proxy: the header is ignored
        for n in range(2):
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert (await c.get("/v1/rules", headers=bearer("guess", **spoofed))).status == 401
        spoofed = {"X-Forwarded-For": "203.0.113.99"}
        assert (await c.get("/v1/rules", headers=bearer(TOKEN, **spoofed))).status == 429


def test_the_limiter_slides_its_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(2, 10, clock=lambda: now[0])
    limiter.failed("a")
    now[0] = 5
    limiter.failed("a")
    limiter.check("b")
    with pytest.raises(TooManyRequests) as caught:
        limiter.check("a")
    assert caught.value.retry_after == 5
    now[0] = 10.5  # the first failure left the window: one more try
    limiter.check("a")
    limiter.failed("a")
    with pytest.raises(TooManyRequests):
        limiter.check("a")
    unlimited = FailureLimiter(0, 10)
    for _ in range(100):
        unlimited.failed("a")
    unlimited.check("a")


async def test_ipv6_clients_are_counted_by_their_64(database_url: str) -> None:
    api = {"tokens": TOKENS, "failed_auth_limit": 2, "failed_auth_window": 60}
    http = {"host": "127.0.0.1", "port": 0, "trusted_proxies": ["127.0.0.1"]}
    async with client(database_url, api=api, http=http) as c:
        for n in (1, 2):
            via = {"X-Forwarded-For": f"2001:db8:0:7::{n}"}
            assert (await c.get("/v1/rules", headers=bearer("guess", **via))).status == 401
        same = {"X-Forwarded-For": "2001:db8:0:7:ffff::9"}
        assert (await c.get("/v1/rules", headers=bearer(TOKEN, **same))).status == 429
        other = {"X-Forwarded-For": "2001:db8:0:8::1"}
        assert (await c.get("/v1/rules", headers=bearer(TOKEN, **other))).status == 200


async def test_metrics_need_the_metrics_scope(database_url: str) -> None:
    async with client(database_url, api={"tokens": TOKENS}) as c:
        assert (await c.get("/metrics")).status == 401
        assert (await c.get("/metrics", headers=bearer(READ_TOKEN))).status == 403
        response = await c.get("/metrics", headers=bearer(TOKEN))
        assert response.status == 200
        assert "omniroute_errors_total" in await response.text()


async def test_metrics_can_be_public(database_url: str) -> None:
    async with client(database_url, metrics={"public": True}) as c:
        response = await c.get("/metrics")
        assert response.status == 200
        assert "omniroute_errors_total" in await response.text()
