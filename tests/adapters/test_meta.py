import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings

from router.errors import (
    BadQuery,
    ConfigError,
    PayloadError,
    SignatureError,
    UnsupportedMediaType,
)
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "meta-app-secret"


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return request(body, providers.meta(body, secret))


def adapter(*secrets: str):  # type: ignore[no-untyped-def]
    return make("meta", secrets or [SECRET], verify_token="tok-123")


def test_signature_over_raw_bytes_with_escaped_unicode() -> None:
    body = b'{"object":"page","entry":[],"note":"\\u00e4\\u00f6\\u00e5"}'
    # Meta's note: the signature covers the escaped form exactly as sent.
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    adapter().verify(request(body, {"X-Hub-Signature-256": f"sha256={expected}"}))
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()
    with pytest.raises(SignatureError):
        adapter().verify(request(reserialized, {"X-Hub-Signature-256": f"sha256={expected}"}))


def test_wrong_missing_and_malformed_signature() -> None:
    body = read("meta_messenger.json")
    with pytest.raises(SignatureError):
        adapter().verify(signed(body, "other"))
    with pytest.raises(SignatureError):
        adapter().verify(request(body))
    with pytest.raises(SignatureError):
        adapter().verify(request(body, {"X-Hub-Signature-256": "sha1=abcd"}))
    with pytest.raises(SignatureError):
        adapter().verify(request(body, {"X-Hub-Signature-256": "sha256=zz"}))


def test_rotated_secret() -> None:
    adapter("new-secret", SECRET).verify(signed(read("meta_messenger.json")))


def test_handshake() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok-123", "hub.challenge": "1158201444"}
    reply = adapter().handshake(request(method="GET", query=query, content_type=None))
    assert (reply.status, reply.body, reply.content_type) == (200, b"1158201444", "text/plain")
    bad = adapter().handshake(request(method="GET", query={**query, "hub.verify_token": "x"}))
    assert bad.status == 403
    with pytest.raises(BadQuery) as missing_mode:
        adapter().handshake(request(method="GET", query={"hub.challenge": "1"}))
    assert missing_mode.value.fields[0].field == "hub.mode"


def test_messenger_batch() -> None:
    parsed = run(adapter(), signed(read("meta_messenger.json")))
    assert [c.external_id for c in parsed.contacts] == ["m_Ab3dEf9hIjKlMnOp", "m_Second"]
    assert parsed.ignored == 3  # echo, delivery, read
    first = parsed.contacts[0]
    assert first.channel == "social"
    assert first.provider == "meta"
    assert first.identifiers[0].value == "messenger:6283749201837465"
    assert first.thread_id == "104857600012345:6283749201837465"
    assert first.attributes["public"] is False
    assert first.attributes["attachments"] == 1
    assert first.attributes["attachment_types"] == ["image"]
    assert first.sent_at is not None and first.sent_at.year == 2025
    assert parsed.contacts[1].attributes["quick_reply_payload"] == "ORDER_STATUS"


def test_instagram_dm_and_comments() -> None:
    parsed = run(adapter(), signed(read("meta_instagram.json")))
    dm, comment = parsed.contacts
    assert dm.identifiers[0].value == "instagram:908172635445362"
    assert dm.attributes["public"] is False
    assert comment.attributes["public"] is True
    assert [(i.kind, i.value) for i in comment.identifiers] == [
        ("social", "instagram:232323232"),
        ("handle", "instagram:maple_fan"),
    ]
    assert parsed.ignored == 1  # our own reply comment


def test_whatsapp_messages_and_statuses() -> None:
    parsed = run(adapter(), signed(read("meta_whatsapp.json")))
    text, image = parsed.contacts
    assert parsed.ignored == 2
    assert text.channel == "chat"
    assert text.external_id == "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABIYFDNBRkU5"
    assert [(i.kind, i.value, i.verified) for i in text.identifiers] == [
        ("phone", "+5511988887777", True)
    ]
    assert text.sender_name == "Ana Souza"
    assert text.thread_id == "112233445566778:5511988887777"
    assert text.attributes["platform"] == "whatsapp"
    assert image.text == "foto da caixa"
    assert image.attributes["attachment_types"] == ["image/jpeg"]
    assert image.attributes["reply_to"] == "wamid.PREVIOUS"


def test_only_statuses_gives_no_contacts() -> None:
    doc = load("meta_whatsapp.json")
    doc["entry"][0]["changes"] = doc["entry"][0]["changes"][1:]
    parsed = run(adapter(), signed(json.dumps(doc).encode()))
    assert parsed.contacts == [] and parsed.ignored == 2


def test_bad_fields_are_named() -> None:
    doc = load("meta_whatsapp.json")
    del doc["entry"][0]["changes"][0]["value"]["messages"][1]["id"]
    with pytest.raises(PayloadError) as exc:
        run(adapter(), signed(json.dumps(doc).encode()))
    assert [f.field for f in exc.value.fields] == ["entry.0.changes.0.value.messages.1.id"]
    with pytest.raises(PayloadError):
        run(adapter(), signed(b'{"object": "page"}'))


def test_content_type() -> None:
    body = read("meta_messenger.json")
    req = signed(body)
    with pytest.raises(UnsupportedMediaType):
        adapter().parse(request(body, req.headers | {"content-type": "text/plain"}))


def test_config() -> None:
    with pytest.raises(ConfigError):
        make("meta", [SECRET])  # no verify_token
    with pytest.raises(ConfigError):
        make("meta", [], verify_token="t")


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("meta_messenger.json")) | json_bodies(load("meta_whatsapp.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(adapter(), signed(body))


@settings(max_examples=100, deadline=None)
@given(body=json_bodies(load("meta_instagram.json")))
def test_random_instagram_bodies(body: bytes) -> None:
    robust(adapter(), signed(body))
