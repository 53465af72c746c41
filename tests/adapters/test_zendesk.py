import json

import pytest
from hypothesis import given, settings

from router.errors import PayloadError, SignatureError
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "sunco-webhook-secret"


def test_shared_secret_header() -> None:
    body = read("zendesk_messages.json")
    make("zendesk", ["old", SECRET]).verify(request(body, {"X-API-Key": SECRET}))
    with pytest.raises(SignatureError):
        make("zendesk", [SECRET]).verify(request(body, {"X-API-Key": "nope"}))
    with pytest.raises(SignatureError):
        make("zendesk", [SECRET]).verify(request(body))
    make("zendesk", [SECRET], header="X-Webhook-Secret").verify(
        request(body, {"X-Webhook-Secret": SECRET})
    )


def test_batch_mapping() -> None:
    parsed = run(
        make("zendesk", [SECRET]), request(read("zendesk_messages.json"), {"X-API-Key": SECRET})
    )
    [contact] = parsed.contacts
    assert parsed.ignored == 2  # business-authored message, read event
    assert contact.external_id == "0ca7d56ba7b2e081e479fccc"
    assert contact.thread_id == "13f32c6cf7d0d38e6e0eddd"
    assert [(i.kind, i.value) for i in contact.identifiers] == [
        ("crm", "crm-7781"),
        ("social", "zendesk:cbec0073faeda4dfcd21dfff"),
        ("email", "mia@example.net"),
    ]
    assert contact.language == "sv-SE"
    assert contact.text == "Where is my refund?"
    assert contact.attributes["platform"] == "web"


def test_bad_payload() -> None:
    doc = load("zendesk_messages.json")
    del doc["events"][0]["payload"]["message"]["author"]
    with pytest.raises(PayloadError) as exc:
        run(make("zendesk", [SECRET]), request(json.dumps(doc).encode(), {"X-API-Key": SECRET}))
    assert [f.field for f in exc.value.fields] == ["events.0.payload.message.author"]


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("zendesk_messages.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(make("zendesk", [SECRET]), request(body, {"X-API-Key": SECRET}))


def test_the_ticket_id_comes_from_the_conversation_metadata() -> None:
    def ticket(metadata: object) -> object:
        doc = load("zendesk_messages.json")
        doc["events"][0]["payload"]["conversation"]["metadata"] = metadata
        body = json.dumps(doc).encode()
        [contact] = run(make("zendesk", [SECRET]), request(body, {"X-API-Key": SECRET})).contacts
        return contact.attributes.get("ticket_id")

    assert ticket({"ticket_id": 4242}) == "4242"
    assert ticket({"zen:ticket_id": "77", "other": "x"}) == "77"
    for nothing in ({}, {"ticket_id": "abc"}, {"ticket_id": True}, {"ticket_id": 0}, ["x"], None):
        assert ticket(nothing) is None
