import json

import pytest
from hypothesis import given, settings

from router.errors import PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "intercom-client-secret"


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return request(body, providers.intercom(body, secret))


def test_signature() -> None:
    body = read("intercom_replied.json")
    make("intercom", ["rotated", SECRET]).verify(signed(body))
    with pytest.raises(SignatureError):
        make("intercom", [SECRET]).verify(signed(body, "other"))
    with pytest.raises(SignatureError):
        make("intercom", [SECRET]).verify(request(body))


def test_ping_is_answered_without_contacts() -> None:
    parsed = run(make("intercom", [SECRET]), signed(read("intercom_ping.json")))
    assert parsed.contacts == [] and parsed.reply is not None and parsed.reply.status == 200


def test_user_reply_mapping() -> None:
    [contact] = run(make("intercom", [SECRET]), signed(read("intercom_replied.json"))).contacts
    assert contact.external_id == "part:998877"
    assert contact.thread_id == "215467890123"
    assert contact.text == "Still broken & urgent"
    assert [(i.kind, i.value) for i in contact.identifiers] == [
        ("crm", "crm-4411"),
        ("social", "intercom:65f0c0ffee"),
        ("email", "jane@example.org"),
    ]
    assert contact.attributes["notification_id"] == "notif_4e3504a3-ba3f-46dc-ab48-8e4d5bdfd000"
    assert contact.attributes["attachment_types"] == ["image/png"]


def test_new_conversation_and_ignored_topics() -> None:
    doc = load("intercom_replied.json")
    doc["topic"] = "conversation.user.created"
    [contact] = run(make("intercom", [SECRET]), signed(json.dumps(doc).encode())).contacts
    assert contact.external_id == "conversation:215467890123"
    assert contact.text == "My export fails"
    doc["topic"] = "conversation.admin.replied"
    parsed = run(make("intercom", [SECRET]), signed(json.dumps(doc).encode()))
    assert parsed.contacts == [] and parsed.ignored == 1


def test_bad_payload() -> None:
    doc = load("intercom_replied.json")
    del doc["data"]["item"]["id"]
    with pytest.raises(PayloadError) as exc:
        run(make("intercom", [SECRET]), signed(json.dumps(doc).encode()))
    assert [f.field for f in exc.value.fields] == ["data.item.id"]


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("intercom_replied.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(make("intercom", [SECRET]), signed(body))
