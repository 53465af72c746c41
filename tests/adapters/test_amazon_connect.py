import json

import pytest
from hypothesis import given, settings

from router.errors import PayloadError, SignatureError
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "eventbridge-api-key-value"


def test_shared_secret_header() -> None:
    body = read("connect_initiated.json")
    make("amazon-connect", ["old", SECRET]).verify(request(body, {"x-omniroute-token": SECRET}))
    with pytest.raises(SignatureError):
        make("amazon-connect", [SECRET]).verify(request(body, {"x-omniroute-token": "no"}))
    with pytest.raises(SignatureError):
        make("amazon-connect", [SECRET]).verify(request(body))


def test_initiated_inbound_voice_is_a_contact() -> None:
    parsed = run(
        make("amazon-connect", [SECRET]),
        request(read("connect_initiated.json"), {"x-omniroute-token": SECRET}),
    )
    [contact] = parsed.contacts
    assert contact.channel == "voice"
    assert contact.external_id == "7e8f9a0b-1111-2222-3333-444455556666"
    assert contact.identifiers[0].value == "+447700900456"
    assert contact.attributes["callee"] == "+442071838750"
    assert contact.attributes["initiation_method"] == "INBOUND"
    assert contact.sent_at is not None


def test_other_events_ignored() -> None:
    adapter = make("amazon-connect", [SECRET])
    parsed = run(adapter, request(read("connect_agent.json"), {"x-omniroute-token": SECRET}))
    assert parsed.contacts == [] and parsed.ignored == 1
    other = json.dumps({"detail-type": "EC2 Instance State-change Notification", "detail": {}})
    assert run(adapter, request(other.encode(), {"x-omniroute-token": SECRET})).ignored == 1


def test_bad_payload() -> None:
    doc = load("connect_initiated.json")
    del doc["detail"]["contactId"]
    with pytest.raises(PayloadError) as exc:
        run(
            make("amazon-connect", [SECRET]),
            request(json.dumps(doc).encode(), {"x-omniroute-token": SECRET}),
        )
    assert [f.field for f in exc.value.fields] == ["detail.contactid"]


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("connect_initiated.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(make("amazon-connect", [SECRET]), request(body, {"x-omniroute-token": SECRET}))
