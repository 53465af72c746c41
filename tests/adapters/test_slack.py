import json

import pytest
from hypothesis import given, settings

from router.errors import PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

# Slack's published example (python-slack-sdk signature tests).
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = "1531420618"
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "slack-signing-secret"
NOW = 1741082400


def adapter(*secrets: str, now: float = NOW, **options: str):  # type: ignore[no-untyped-def]
    a = make("slack", secrets or [SECRET], **options)
    a.clock = lambda: now
    return a


def signed(body: bytes, ts: int = NOW, secret: str = SECRET) -> WebhookRequest:
    return request(body, providers.slack(body, secret, ts))


def test_published_vector() -> None:
    a = adapter(VECTOR_SECRET, now=int(VECTOR_TS) + 10)
    headers = {"X-Slack-Signature": VECTOR_SIG, "X-Slack-Request-Timestamp": VECTOR_TS}
    a.verify(request(VECTOR_BODY, headers, content_type="application/x-www-form-urlencoded"))


def test_expired_timestamp() -> None:
    with pytest.raises(SignatureError) as exc:
        adapter(now=NOW + 301).verify(signed(read("slack_message.json")))
    assert "window" in exc.value.message
    adapter(now=NOW + 299).verify(signed(read("slack_message.json")))


def test_wrong_signature_rotation_and_missing_headers() -> None:
    body = read("slack_message.json")
    with pytest.raises(SignatureError):
        adapter().verify(signed(body, secret="nope"))
    adapter("old", SECRET).verify(signed(body))
    with pytest.raises(SignatureError):
        adapter().verify(request(body, {"X-Slack-Signature": "v0=00"}))
    with pytest.raises(SignatureError):
        adapter().verify(request(body, {"X-Slack-Request-Timestamp": str(NOW)}))


def test_url_verification_handshake() -> None:
    parsed = run(adapter(), signed(read("slack_url_verification.json")))
    assert parsed.contacts == [] and parsed.reply is not None
    assert parsed.reply.content_type == "text/plain"
    assert parsed.reply.body == b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


def test_message_mapping() -> None:
    [contact] = run(adapter(), signed(read("slack_message.json"))).contacts
    assert contact.channel == "chat"
    assert contact.external_id == "T0EXAMPLE1:D0DMCHAN1:1741082399.000200"
    assert contact.thread_id == "D0DMCHAN1:1741082000.000100"
    assert contact.identifiers[0].value == "slack:U0CUSTOMER"
    assert contact.text == "My invoice is wrong"
    assert contact.attributes["event_id"] == "Ev0EXAMPLE9"
    assert contact.attributes["attachment_types"] == ["application/pdf"]
    assert contact.attributes["public"] is False


@pytest.mark.parametrize(
    "change",
    [
        {"subtype": "message_changed"},
        {"subtype": "bot_message", "bot_id": "B01"},
        {"bot_id": "B01"},
        {"user": "U0BOTUSER"},  # our own bot (from authorizations)
        {"user": "U0OURBOT"},  # our own bot (from the option)
        {"type": "reaction_added"},
    ],
)
def test_skipped_events(change: dict[str, str]) -> None:
    doc = load("slack_message.json")
    doc["event"].update(change)
    parsed = run(adapter(bot_user_id="U0OURBOT"), signed(json.dumps(doc).encode()))
    assert parsed.contacts == [] and parsed.ignored == 1


def test_bad_payload() -> None:
    doc = load("slack_message.json")
    del doc["event"]["ts"]
    with pytest.raises(PayloadError) as exc:
        run(adapter(), signed(json.dumps(doc).encode()))
    assert [f.field for f in exc.value.fields] == ["event.ts"]
    with pytest.raises(PayloadError):
        run(adapter(), signed(b'{"type": "url_verification"}'))


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("slack_message.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(adapter(), signed(body))
