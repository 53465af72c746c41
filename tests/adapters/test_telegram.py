import json

import pytest
from hypothesis import given, settings

from router.errors import ConfigError, PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support.strategies import json_bodies
from tests.support.webhooks import load, make, read, request, robust, run

SECRET = "tg_secret-Token_1"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def signed(body: bytes, token: str = SECRET) -> WebhookRequest:
    return request(body, {HEADER: token})


def test_token_checks_and_rotation() -> None:
    body = read("telegram_message.json")
    make("telegram", ["older", SECRET]).verify(signed(body))
    with pytest.raises(SignatureError):
        make("telegram", [SECRET]).verify(signed(body, "wrong"))
    with pytest.raises(SignatureError):
        make("telegram", [SECRET]).verify(request(body))
    with pytest.raises(ConfigError):
        make("telegram", [SECRET], header="x-other")


def test_message_mapping() -> None:
    [contact] = run(make("telegram", [SECRET]), signed(read("telegram_message.json"))).contacts
    assert contact.external_id == "804512733"
    assert contact.channel == "chat"
    assert contact.thread_id == "123456789"
    assert [(i.kind, i.value) for i in contact.identifiers] == [
        ("social", "telegram:123456789"),
        ("handle", "telegram:lena_k"),
    ]
    assert contact.sender_name == "Lena Krause"
    assert contact.language == "de"
    assert contact.attributes["public"] is False


def test_shared_own_contact_gives_phone() -> None:
    doc = load("telegram_message.json")
    doc["message"]["contact"] = {"phone_number": "4915123456789", "user_id": 123456789}
    [contact] = run(make("telegram", [SECRET]), signed(json.dumps(doc).encode())).contacts
    assert ("phone", "+4915123456789") in [(i.kind, i.value) for i in contact.identifiers]


def test_edits_and_bots_are_ignored() -> None:
    parsed = run(make("telegram", [SECRET]), signed(read("telegram_edited.json")))
    assert parsed.contacts == [] and parsed.ignored == 1
    doc = load("telegram_message.json")
    doc["message"]["from"]["is_bot"] = True
    assert run(make("telegram", [SECRET]), signed(json.dumps(doc).encode())).ignored == 1


def test_bad_payload() -> None:
    with pytest.raises(PayloadError) as exc:
        run(make("telegram", [SECRET]), signed(b'{"message": {}}'))
    assert {f.field for f in exc.value.fields} >= {"update_id", "message.chat"}


@settings(max_examples=200, deadline=None)
@given(body=json_bodies(load("telegram_message.json")))
def test_random_bodies_only_raise_router_errors(body: bytes) -> None:
    robust(make("telegram", [SECRET]), signed(body))
