"""Provider deliveries end to end over real HTTP: signed as each provider
signs, routed, recorded once with the right identifiers, retries answered as
duplicates, handshakes answered without contacts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.web import create_app
from tests.support import providers
from tests.support.settings import TOKEN, make_settings
from tests.support.webhooks import read

PUBLIC = "https://omniroute.example.com"
ADAPTERS = [
    {"name": "meta", "kind": "meta", "secrets": ["meta-secret"], "verify_token": "verify-me"},
    {"name": "slack", "kind": "slack", "secrets": ["slack-secret"]},
    {"name": "telegram", "kind": "telegram", "secrets": ["tg-secret"]},
    {"name": "phone", "kind": "twilio-voice", "secrets": ["twilio-token"]},
    {"name": "sms", "kind": "twilio-messaging", "secrets": ["twilio-token"]},
    {"name": "postmark", "kind": "postmark", "secrets": ["pm-pass"], "username": "pm"},
]


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    settings = make_settings(
        database_url,
        adapters=ADAPTERS,
        http={"public_url": PUBLIC, "host": "127.0.0.1", "port": 0, "max_body_bytes": 1 << 20},
    )
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def hub(body: bytes) -> dict[str, str]:
    return {**providers.meta(body, "meta-secret"), "Content-Type": "application/json"}


def slack(body: bytes) -> dict[str, str]:
    signature = providers.slack(body, "slack-secret", int(time.time()))
    return {**signature, "Content-Type": "application/json"}


def twilio(path: str, body: bytes) -> dict[str, str]:
    signature = providers.twilio(PUBLIC + path, body, "twilio-token")
    return {**signature, "Content-Type": "application/x-www-form-urlencoded"}


async def records(client: TestClient[Any, Any], adapter: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/contacts",
        params={"adapter": adapter, "limit": "100"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    body: dict[str, Any] = await response.json()
    return body["contacts"]


CASES = [
    ("meta", "meta_whatsapp.json", hub, "chat"),
    ("meta", "meta_messenger.json", hub, "social"),
    ("slack", "slack_message.json", slack, "chat"),
    (
        "telegram",
        "telegram_message.json",
        lambda b: {
            "X-Telegram-Bot-Api-Secret-Token": "tg-secret",
            "Content-Type": "application/json",
        },
        "chat",
    ),
    (
        "postmark",
        "postmark_inbound.json",
        lambda b: {"Authorization": "Basic cG06cG0tcGFzcw==", "Content-Type": "application/json"},
        "email",
    ),
    ("sms", "twilio_sms.txt", lambda b: twilio("/v1/webhooks/sms", b), "chat"),
]


@pytest.mark.parametrize(("adapter", "fixture", "headers", "channel"), CASES)
async def test_provider_delivery_is_routed_once(
    client: TestClient[Any, Any], adapter: str, fixture: str, headers: Any, channel: str
) -> None:
    body = read(fixture).strip() if fixture.endswith(".txt") else read(fixture)
    first = await client.post(f"/v1/webhooks/{adapter}", data=body, headers=headers(body))
    assert first.status == 200, await first.text()
    before = await records(client, adapter)
    mine = [r for r in before if r["channel"] == channel]
    assert mine, before
    retry = await client.post(f"/v1/webhooks/{adapter}", data=body, headers=headers(body))
    assert retry.status == 200
    assert len(await records(client, adapter)) == len(before)  # nothing written twice
    for record in mine:
        full = await client.get(
            f"/v1/contacts/{record['contact_id']}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert (await full.json())["contact"]["identifiers"], record


async def test_twilio_voice_answers_twiml_enqueue(client: TestClient[Any, Any]) -> None:
    body = read("twilio_call.txt").strip()
    response = await client.post(
        "/v1/webhooks/phone", data=body, headers=twilio("/v1/webhooks/phone", body)
    )
    assert response.status == 200, await response.text()
    assert response.content_type in ("text/xml", "application/xml")
    assert "<Enqueue" in await response.text()


async def test_bad_provider_signature_is_401(client: TestClient[Any, Any]) -> None:
    body = read("meta_whatsapp.json")
    response = await client.post(
        "/v1/webhooks/meta", data=body, headers={**hub(body), "X-Hub-Signature-256": "sha256=00"}
    )
    assert response.status == 401


async def test_handshakes_create_no_contact(client: TestClient[Any, Any]) -> None:
    response = await client.get(
        "/v1/webhooks/meta",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "verify-me",
            "hub.challenge": "1158201444",
        },
    )
    assert response.status == 200
    assert await response.text() == "1158201444"
    wrong = await client.get(
        "/v1/webhooks/meta",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status in (401, 403)
    body = read("slack_url_verification.json")
    challenge = await client.post("/v1/webhooks/slack", data=body, headers=slack(body))
    assert challenge.status == 200
    assert await challenge.text() == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


async def test_status_callbacks_are_acknowledged_and_ignored(client: TestClient[Any, Any]) -> None:
    before = len(await records(client, "sms"))
    body = read("twilio_sms_status.txt").strip()
    response = await client.post(
        "/v1/webhooks/sms", data=body, headers=twilio("/v1/webhooks/sms", body)
    )
    assert response.status == 200
    assert len(await records(client, "sms")) == before


async def test_without_a_public_url_each_request_is_verified_against_its_own_url(
    database_url: str,
) -> None:
    # Twilio signs the URL it posted to; the service rebuilds it from each
    # request's Host and path (and keeps the ones it built: not across hosts)
    settings = make_settings(database_url, adapters=[a for a in ADAPTERS if a["name"] == "phone"])
    body = read("twilio_call.txt").strip()
    async with TestClient(TestServer(create_app(settings))) as c:

        async def call(host: str, signed_for: str) -> int:
            url = f"http://{signed_for}/v1/webhooks/phone?leg=1"
            headers = {
                **providers.twilio(url, body, "twilio-token"),
                "Content-Type": "application/x-www-form-urlencoded",
                "Host": host,
            }
            response = await c.post("/v1/webhooks/phone?leg=1", data=body, headers=headers)
            return response.status

        assert await call("a.example.com", "a.example.com") == 200
        assert await call("b.example.com", "a.example.com") == 401
        assert await call("b.example.com", "b.example.com") == 200
