import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings

from router.errors import BadQuery, PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "x-consumer-secret"


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return request(body, providers.x(body, secret))


def test_crc_vector_from_x_sample() -> None:
    adapter = make("x", ["z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"])
    reply = adapter.handshake(
        request(method="GET", query={"crc_token": "9b4507b3-9040-4669-9ca3-6b94edb50553"})
    )
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "response_token": "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8="
    }
    with pytest.raises(BadQuery) as missing:
        make("x", [SECRET]).handshake(request(method="GET"))
    assert missing.value.fields[0].field == "crc_token"


def test_crc_uses_first_secret_but_deliveries_accept_any() -> None:
    adapter = make("x", ["current", SECRET])
    body = read("x_activity.json")
    adapter.verify(signed(body))
    token = json.loads(adapter.handshake(request(method="GET", query={"crc_token": "t"})).body)
    expected = hmac.new(b"current", b"t", hashlib.sha256).digest()
    assert token["response_token"] == "sha256=" + base64.b64encode(expected).decode()


def test_wrong_and_missing_signature() -> None:
    body = read("x_activity.json")
    with pytest.raises(SignatureError):
        make("x", [SECRET]).verify(signed(body, "other"))
    with pytest.raises(SignatureError):
        make("x", [SECRET]).verify(request(body))
    with pytest.raises(SignatureError):
        make("x", [SECRET]).verify(request(body, {"x-twitter-webhooks-signature": "sha256=@@"}))


def test_batch_mapping() -> None:
    parsed = run(make("x", [SECRET]), signed(read("x_activity.json")))
    dm, post = parsed.contacts
    assert parsed.ignored == 3  # our own DM, a retweet, a typing indicator
    assert dm.external_id == "1897312345678901234"
    assert dm.channel == "social"
    assert [(i.kind, i.value) for i in dm.identifiers] == [
        ("social", "x:3805104374"),
        ("handle", "x:samlee_example"),
    ]
    assert dm.sender_name == "Sam Lee"
    assert dm.thread_id == "3805104374-4337869213"
    assert dm.attributes == {
        "platform": "x",
        "public": False,
        "attachments": 1,
        "attachment_types": ["photo"],
    }
    assert post.attributes["public"] is True
    assert post.language == "en"
    assert post.identifiers[1].value == "x:robintan_example"


def test_bad_payload() -> None:
    doc = load("x_activity.json")
    doc["direct_message_events"][0]["message_create"]["sender_id"] = ""
    with pytest.raises(PayloadError) as exc:
        run(make("x", [SECRET]), signed(json.dumps(doc).encode()))
    assert exc.value.fields[0].field == "direct_message_events.0.message_create.sender_id"


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("x_activity.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(make("x", [SECRET]), signed(body))
