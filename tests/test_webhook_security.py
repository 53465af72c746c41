"""Security review findings, over real HTTP against a real PostgreSQL:

* no handshake signs or echoes a value that could be used as a delivery's
  signature, and none echoes markup;
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
from tests.adapters.support import load, read
from tests.conftest import TOKEN, make_settings, unique
from tests.test_routing import example

X_SECRET = "x-consumer-secret-0123456789abcdef"
META_SECRET = "meta-app-secret-0123456789abcdef"
SLACK_SECRET = "slack-signing-secret-0123456789ab"
INTERCOM_SECRET = "intercom-client-secret-0123456789"
MAILGUN_KEY = "mailgun-signing-key-0123456789abcd"
ADAPTERS: list[dict[str, Any]] = [
    {"name": "sec-x", "kind": "x", "secrets": [X_SECRET]},
    {"name": "sec-meta", "kind": "meta", "secrets": [META_SECRET], "verify_token": "verify-me"},
    {"name": "sec-slack", "kind": "slack", "secrets": [SLACK_SECRET]},
    {"name": "sec-intercom", "kind": "intercom", "secrets": [INTERCOM_SECRET]},
    {"name": "sec-mailgun", "kind": "mailgun", "secrets": [MAILGUN_KEY]},
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


# -- 1. handshakes are no signing oracle --------------------------------------


async def test_x_crc_cannot_sign_a_forged_delivery(client: TestClient[Any, Any]) -> None:
    """A delivery body sent as ``crc_token`` is refused, so the handshake gives
    no signature for it, and the forged delivery is 401 with nothing recorded."""
    forged = orjson.dumps(orjson.loads(read("x_activity.json")))
    crc = await client.get("/v1/webhooks/sec-x", params={"crc_token": forged.decode()})
    oracle = (await crc.json()).get(
        "response_token", "sha256=" + base64.b64encode(bytes(32)).decode()
    )
    delivered = await client.post(
        "/v1/webhooks/sec-x",
        data=forged,
        headers={"x-twitter-webhooks-signature": oracle, "Content-Type": "application/json"},
    )
    assert delivered.status == 401, await delivered.text()
    assert crc.status == 400
    assert "crc_token" in await fields_of(crc)
    assert await records(client, "sec-x") == []


async def test_x_crc_answers_real_tokens(client: TestClient[Any, Any]) -> None:
    for token in ("9b4507b3-9040-4669-9ca3-6b94edb50553", "Mzk4Njg2+MjM1/MjA1MDQx=="):
        crc = await client.get("/v1/webhooks/sec-x", params={"crc_token": token})
        assert crc.status == 200, await crc.text()
        expected = "sha256=" + b64_hmac(X_SECRET, token.encode())
        assert await crc.json() == {"response_token": expected}
    too_long = await client.get("/v1/webhooks/sec-x", params={"crc_token": "a" * 257})
    assert too_long.status == 400


async def test_meta_challenge_echoes_no_delivery_and_no_markup(
    client: TestClient[Any, Any],
) -> None:
    """Even with the right verify token, a challenge that is not one (a JSON
    body, markup) is refused; a real one comes back as plain text. The echo is
    no signature: the forged delivery is 401."""
    forged = orjson.dumps(orjson.loads(read("meta_whatsapp.json")))
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me"}
    for value in (forged.decode(), "<script>alert(1)</script>"):
        echoed = await client.get("/v1/webhooks/sec-meta", params={**query, "hub.challenge": value})
        assert echoed.status == 400, await echoed.text()
        assert "hub.challenge" in await fields_of(echoed)
    delivered = await client.post(
        "/v1/webhooks/sec-meta",
        data=forged,
        headers={"X-Hub-Signature-256": f"sha256={await echoed.text()}"},
    )
    assert delivered.status == 401
    real = await client.get(
        "/v1/webhooks/sec-meta", params={**query, "hub.challenge": "1158201444"}
    )
    assert (real.status, await real.text()) == (200, "1158201444")
    assert real.content_type == "text/plain"
    assert real.headers["X-Content-Type-Options"] == "nosniff"
    wrong = await client.get(
        "/v1/webhooks/sec-meta", params={**query, "hub.verify_token": "no", "hub.challenge": "1"}
    )
    assert wrong.status == 403


def slack_headers(body: bytes, secret: str = SLACK_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json",
    }


async def test_slack_challenge_is_plain_text_and_no_signature(
    client: TestClient[Any, Any],
) -> None:
    markup = orjson.dumps({"type": "url_verification", "challenge": "<img src=x onerror=1>"})
    refused = await client.post(
        "/v1/webhooks/sec-slack", data=markup, headers=slack_headers(markup)
    )
    assert refused.status == 422, await refused.text()
    assert "challenge" in await fields_of(refused)

    body = read("slack_url_verification.json")
    unsigned = await client.post(
        "/v1/webhooks/sec-slack", data=body, headers=slack_headers(body, "x")
    )
    assert unsigned.status == 401
    answer = await client.post("/v1/webhooks/sec-slack", data=body, headers=slack_headers(body))
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    echoed = await answer.text()
    assert echoed == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"

    forged = read("slack_message.json")
    delivered = await client.post(
        "/v1/webhooks/sec-slack",
        data=forged,
        headers={**slack_headers(forged), "X-Slack-Signature": f"v0={echoed}"},
    )
    assert delivered.status == 401
    assert await records(client, "sec-slack") == []


async def test_intercom_ping_echoes_nothing(client: TestClient[Any, Any]) -> None:
    """The ping answer is constant (it never carries caller input), and only a
    signed ping gets it."""
    ping = load("intercom_ping.json")
    ping["data"]["item"]["message"] = "<script>x</script>"
    body = orjson.dumps(ping)

    def signed(payload: bytes, secret: str = INTERCOM_SECRET) -> dict[str, str]:
        digest = hmac.new(secret.encode(), payload, hashlib.sha1).hexdigest()
        return {"X-Hub-Signature": f"sha1={digest}", "Content-Type": "application/json"}

    unsigned = await client.post("/v1/webhooks/sec-intercom", data=body, headers=signed(body, "x"))
    assert unsigned.status == 401
    answer = await client.post("/v1/webhooks/sec-intercom", data=body, headers=signed(body))
    assert (answer.status, await answer.json()) == (200, {"ok": True})
    forged = read("intercom_replied.json")
    delivered = await client.post(
        "/v1/webhooks/sec-intercom",
        data=forged,
        headers={
            "X-Hub-Signature": f"sha1={await answer.text()}",
            "Content-Type": "application/json",
        },
    )
    assert delivered.status == 401
    assert await records(client, "sec-intercom") == []


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
