import base64
import json

import pytest
from hypothesis import given, settings

from router.errors import ConfigError, PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

USER, PASSWORD = "postmark", "s3cret-pw"


def authed(body: bytes, user: str = USER, password: str = PASSWORD) -> WebhookRequest:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return request(body, {"Authorization": f"Basic {token}"})


def adapter(*secrets: str):  # type: ignore[no-untyped-def]
    return make("postmark", secrets or [PASSWORD], username=USER)


def test_basic_auth() -> None:
    body = read("postmark_inbound.json")
    adapter("old-pw", PASSWORD).verify(authed(body))
    for bad in (authed(body, password="x"), authed(body, user="other"), request(body)):
        with pytest.raises(SignatureError):
            adapter().verify(bad)
    with pytest.raises(SignatureError):
        adapter().verify(request(body, {"Authorization": "Basic !!!"}))
    with pytest.raises(ConfigError):
        make("postmark", [PASSWORD])


def test_mapping() -> None:
    [contact] = run(adapter(), authed(read("postmark_inbound.json"))).contacts
    assert contact.channel == "email"
    assert contact.external_id == "3f2a6c1e-9b7d-4e21-8a55-0c4d2e6f7a81"
    assert contact.thread_id == "t8841-root@example.com"
    assert contact.identifiers[0].value == "jane.doe@example.org"
    assert contact.sender_name == 'Jane "JD" Doe'
    assert contact.text == "Thanks!"
    assert contact.subject == "Re: ticket 8841"
    attrs = contact.attributes
    assert attrs["message_id"] == "CAF2x@mail.example.org"
    assert attrs["in_reply_to"] == "t8841@example.com"
    assert attrs["reply"] is True and attrs["stripped"] is True and attrs["spam"] is False
    assert attrs["attachments"] == 1 and attrs["attachment_types"] == ["text/plain"]
    assert attrs["to"] == ["support+8841@inbound.example.com"]


def test_html_only_and_long_text() -> None:
    doc = load("postmark_inbound.json")
    doc.update(
        StrippedTextReply="", TextBody="", HtmlBody="<div>Hello <b>there</b></div><p>Bye</p>"
    )
    [contact] = run(adapter(), authed(json.dumps(doc).encode())).contacts
    assert contact.text == "Hello there\n\nBye"
    doc.update(StrippedTextReply="x" * 40_000)
    [contact] = run(adapter(), authed(json.dumps(doc).encode())).contacts
    assert contact.text is not None and len(contact.text) == 32_000
    assert contact.attributes["text_truncated"] is True


def test_bad_payload() -> None:
    doc = load("postmark_inbound.json")
    del doc["MessageID"]
    doc["Headers"] = [{"Value": "x"}]
    with pytest.raises(PayloadError) as exc:
        run(adapter(), authed(json.dumps(doc).encode()))
    assert sorted(f.field for f in exc.value.fields) == ["Headers.0.Name", "MessageID"]


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("postmark_inbound.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(adapter(), authed(body))
