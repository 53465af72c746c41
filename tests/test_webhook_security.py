"""Security review findings, over real HTTP against a real PostgreSQL:

* an empty secret (an unset ``env:`` variable) is never a usable key, and an
  adapter left without a usable secret does not start;
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from adapters.generic import sign
from router.errors import ConfigError
from router.web import create_app
from tests.conftest import TOKEN, make_settings, unique
from tests.test_routing import example

X_SECRET = "x-consumer-secret-0123456789abcdef"
META_SECRET = "meta-app-secret-0123456789abcdef"
SLACK_SECRET = "slack-signing-secret-0123456789ab"
INTERCOM_SECRET = "intercom-client-secret-0123456789"
MAILGUN_KEY = "mailgun-signing-key-0123456789abcd"
ADAPTERS: list[dict[str, Any]] = [
    {"name": "x", "kind": "x", "secrets": [X_SECRET]},
    {"name": "meta", "kind": "meta", "secrets": [META_SECRET], "verify_token": "verify-me"},
    {"name": "slack", "kind": "slack", "secrets": [SLACK_SECRET]},
    {"name": "intercom", "kind": "intercom", "secrets": [INTERCOM_SECRET]},
    {"name": "mailgun", "kind": "mailgun", "secrets": [MAILGUN_KEY]},
]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(
        TestServer(create_app(make_settings(database_url, adapters=ADAPTERS)))
    ) as c:
        yield c


async def records(client: TestClient[Any, Any], adapter: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/contacts",
        params={"adapter": adapter, "limit": "500"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body["contacts"]


async def fields_of(response: ClientResponse) -> dict[str, str]:
    body = await response.json()
    return {f["field"]: f["reason"] for f in body.get("fields", [])}


def b64_hmac(key: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


# -- 2. empty secrets are never keys -------------------------------------------


def chat_with(database_url: str, **secrets: str) -> Any:
    return make_settings(
        database_url,
        adapters=[{"name": "chat", "kind": "chat", "secrets": [f"env:{n}" for n in secrets]}],
    )


@pytest.mark.parametrize("previous", ["", "  \n"])
async def test_empty_previous_secret_is_not_a_key(
    database_url: str, monkeypatch: pytest.MonkeyPatch, previous: str
) -> None:
    current = "chat-secret-current-0123456789ab"
    monkeypatch.setenv("CHAT_SECRET", current)
    monkeypatch.setenv("CHAT_SECRET_PREVIOUS", previous)
    settings = chat_with(database_url, CHAT_SECRET=current, CHAT_SECRET_PREVIOUS=previous)
    async with TestClient(TestServer(create_app(settings))) as c:
        body = orjson.dumps(example("chat", id=unique()))
        for key, status in ((previous, 401), ("", 401), (current, 200)):
            response = await c.post(
                "/v1/webhooks/chat",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Omniroute-Signature": sign(body, key, int(time.time())),
                },
            )
            assert response.status == status, (repr(key), await response.text())


@pytest.mark.parametrize("kind", ["chat", "slack", "x"])
def test_adapter_without_a_usable_secret_does_not_start(
    database_url: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("CHAT_SECRET", "")
    monkeypatch.setenv("CHAT_SECRET_PREVIOUS", " ")
    settings = make_settings(
        database_url,
        adapters=[
            {
                "name": "support",
                "kind": kind,
                "secrets": ["env:CHAT_SECRET", "env:CHAT_SECRET_PREVIOUS"],
            }
        ],
    )
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    message = str(refused.value)
    assert "'support'" in message
    assert "env:CHAT_SECRET," in message and "env:CHAT_SECRET_PREVIOUS" in message


def test_short_secrets_are_logged_by_source_never_by_value(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_SECRET", "tiny-k3y")
    monkeypatch.setenv("CHAT_SECRET_PREVIOUS", "")
    with capture_logs() as logs:
        create_app(chat_with(database_url, CHAT_SECRET="", CHAT_SECRET_PREVIOUS=""))
    [short] = [e for e in logs if e["event"] == "adapter_secret_short"]
    assert short["adapter"] == "chat" and short["secrets"] == ["env:CHAT_SECRET"]
    assert "tiny-k3y" not in repr(logs)
