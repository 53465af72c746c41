"""Security review findings, over real HTTP against a real PostgreSQL:

* no handshake signs or echoes a value that could be used as a delivery's
  signature, and none echoes markup;
* an empty secret (an unset ``env:`` variable) is never a usable key, and an
  adapter left without a usable secret does not start;
* a signature that does not cover the body (Mailgun's timestamp + token) is
  good for one delivery, in every instance, while the provider's retry of that
  delivery still gets the original answer.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from adapters.generic import sign
from router.errors import ConfigError
from router.models import Nonce
from router.store import DatabaseSettings, db, nonces
from router.web import create_app
from tests.support import providers
from tests.support.apps import app_on
from tests.support.examples import example, unique
from tests.support.proxy import CuttableProxy
from tests.support.settings import TOKEN, make_settings
from tests.support.webhooks import load, multipart, read

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
        expected = providers.x_digest(token.encode(), X_SECRET)
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
    signature = providers.slack(body, secret, int(time.time()))
    return {**signature, "Content-Type": "application/json"}


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
        return {**providers.intercom(payload, secret), "Content-Type": "application/json"}

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


# -- 3. Mailgun tokens are good for one delivery -------------------------------


def mailgun_fields(message_id: str, text: str = "Thanks, that fixed it.") -> dict[str, str]:
    fields: dict[str, str] = load("mailgun_fields.json")
    fields["Message-Id"] = f"<{message_id}@mail.example.org>"
    fields["stripped-text"] = text
    return fields


def mailgun_signed(fields: dict[str, str], *, token: str, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return providers.mailgun(fields, MAILGUN_KEY, ts, token)


async def post_form(client: TestClient[Any, Any], fields: dict[str, str]) -> ClientResponse:
    return await client.post(
        "/v1/webhooks/sec-mailgun", data=urlencode(fields), headers={"Content-Type": FORM}
    )


async def test_mailgun_signature_reused_with_another_message_is_401(
    client: TestClient[Any, Any],
) -> None:
    token = unique("tok")
    original = mailgun_signed(mailgun_fields(unique("orig")), token=token)
    first = await post_form(client, original)
    assert first.status == 200, await first.text()
    before = await records(client, "sec-mailgun")

    forged = {
        **mailgun_fields(unique("forged"), text="Please wire the refund to IBAN XX00..."),
        **{k: original[k] for k in ("timestamp", "token", "signature")},
    }
    replayed = await post_form(client, forged)
    assert replayed.status == 401, await replayed.text()
    assert (await replayed.json())["error"] == "bad_signature"
    assert "token" in await fields_of(replayed)
    assert len(await records(client, "sec-mailgun")) == len(before)


async def test_mailgun_retry_of_the_same_delivery_gets_the_original_answer(
    client: TestClient[Any, Any],
) -> None:
    """A retry reuses the token: same message, so it is the duplicate path,
    even when its bytes differ (form encoding, a new multipart boundary)."""
    fields = mailgun_signed(mailgun_fields(unique("retry")), token=unique("tok"))
    first = await post_form(client, fields)
    assert first.status == 200, await first.text()
    [routed] = (await first.json())["contacts"]
    assert routed["duplicate"] is False

    again = await post_form(client, fields)
    body, ctype = multipart(fields.items(), boundary="another-boundary")
    as_multipart = await client.post(
        "/v1/webhooks/sec-mailgun", data=body, headers={"Content-Type": ctype}
    )
    for retry in (again, as_multipart):
        assert retry.status == 200, await retry.text()
        [dup] = (await retry.json())["contacts"]
        assert dup["duplicate"] is True
        assert dup["contact_id"] == routed["contact_id"]
        assert dup["decision"] == routed["decision"]


async def test_mailgun_token_is_shared_by_every_instance(
    client: TestClient[Any, Any], database_url: str
) -> None:
    token = unique("tok")
    original = mailgun_signed(mailgun_fields(unique("one")), token=token)
    assert (await post_form(client, original)).status == 200
    forged = {
        **mailgun_fields(unique("two")),
        **{k: original[k] for k in ("timestamp", "token", "signature")},
    }
    settings = make_settings(database_url, adapters=ADAPTERS)
    async with TestClient(TestServer(create_app(settings))) as other:
        replayed = await post_form(other, forged)
        assert replayed.status == 401, await replayed.text()
        retried = await post_form(other, original)
        assert retried.status == 200
        assert (await retried.json())["contacts"][0]["duplicate"] is True


async def test_mailgun_token_cannot_be_spent_at_another_adapter(database_url: str) -> None:
    """Two adapters with the same signing key (two routes of one account): a
    token seen by one is refused at the other with another message."""
    twins = [{"name": n, "kind": "mailgun", "secrets": [MAILGUN_KEY]} for n in ("mg-a", "mg-b")]
    async with TestClient(TestServer(create_app(make_settings(database_url, adapters=twins)))) as c:
        original = mailgun_signed(mailgun_fields(unique("a")), token=unique("tok"))
        sent = await c.post(
            "/v1/webhooks/mg-a", data=urlencode(original), headers={"Content-Type": FORM}
        )
        assert sent.status == 200
        forged = {**original, "Message-Id": f"<{unique('b')}@mail.example.org>"}
        replayed = await c.post(
            "/v1/webhooks/mg-b", data=urlencode(forged), headers={"Content-Type": FORM}
        )
        assert replayed.status == 401


async def test_database_outage_during_the_claim_is_503(database_url: str) -> None:
    proxy = CuttableProxy(database_url)
    await proxy.start()
    database = {"url": proxy.url, "pool_min": 1, "pool_max": 2, "command_timeout": 2}
    try:
        async with app_on(proxy.url, database=database, adapters=ADAPTERS) as api:
            fields = mailgun_signed(mailgun_fields(unique("outage")), token=unique("tok"))
            proxy.cut()
            refused = await post_form(api.client, fields)
            assert refused.status == 503, await refused.text()
            assert refused.headers["Retry-After"]
            assert (await refused.json())["error"] == "store_unavailable"
            proxy.restore()
            retried = await post_form(api.client, fields)
            assert retried.status == 200, await retried.text()
            assert (await retried.json())["contacts"][0]["duplicate"] is False
    finally:
        await proxy.close()


async def test_expired_nonces_are_purged_and_free_again(
    client: TestClient[Any, Any], database_url: str
) -> None:
    pool = await db.connect_pool(database_url, DatabaseSettings(url=database_url, pool_min=1))
    try:
        past = datetime.now(UTC) - timedelta(seconds=1)
        value = unique("expired")
        old = Nonce(scope="test", value=value, fingerprint=b"a", expires_at=past)
        assert await nonces.claim(pool, old)
        assert await nonces.claim(pool, old)  # the same delivery again
        live = Nonce(
            scope="test", value=value, fingerprint=b"b", expires_at=past + timedelta(minutes=6)
        )
        assert await nonces.claim(pool, live)  # the old claim had expired
        assert not await nonces.claim(pool, Nonce("test", value, b"c", live.expires_at))

        gone = Nonce(scope="test", value=unique("gone"), fingerprint=b"a", expires_at=past)
        assert await nonces.claim(pool, gone)
        assert await nonces.purge(pool) >= 1
        left = await pool.fetchval("SELECT count(*) FROM replay_nonces WHERE expires_at < now()")
        assert left == 0
        assert await pool.fetchval("SELECT count(*) FROM replay_nonces WHERE scope = 'test'") == 1
    finally:
        await pool.close()
