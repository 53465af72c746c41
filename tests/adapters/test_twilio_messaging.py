from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings

from router.errors import PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import form_pairs
from tests.support.webhooks import form_body, make, read, request, robust, run

FORM = "application/x-www-form-urlencoded"
TOKEN = "auth-token-1"
URL = "https://hooks.example.com/v1/webhooks/sms?tenant=acme"


def signed(body: bytes, token: str = TOKEN) -> WebhookRequest:
    return request(body, providers.twilio(URL, body, token), url=URL, content_type=FORM)


def test_sms_mapping() -> None:
    [contact] = run(make("twilio-messaging", [TOKEN]), signed(read("twilio_sms.txt"))).contacts
    assert contact.channel == "chat"
    assert contact.external_id == "SM0f3c9a7e2b1d4c5a8e6f7a9b0c1d2e3f"
    assert contact.thread_id == "+447700900123|+15005550006"
    assert [(i.kind, i.value, i.verified) for i in contact.identifiers] == [
        ("phone", "+447700900123", False)
    ]
    assert contact.text == "Hi, is my order shipped?"
    assert contact.attributes["platform"] == "mms"
    assert contact.attributes["attachments"] == 1
    assert contact.attributes["attachment_types"] == ["image/jpeg"]
    assert contact.attributes["from_country"] == "GB"


def test_whatsapp_mapping() -> None:
    [contact] = run(make("twilio-messaging", [TOKEN]), signed(read("twilio_whatsapp.txt"))).contacts
    assert contact.attributes["platform"] == "whatsapp"
    assert [(i.kind, i.value, i.verified) for i in contact.identifiers] == [
        ("phone", "+5511988887777", True)
    ]
    assert contact.sender_name == "Ana Souza"
    assert contact.text == "Olá, preciso de ajuda"
    assert contact.thread_id == "whatsapp:+5511988887777|whatsapp:+15550001111"


def test_status_callback_ignored() -> None:
    parsed = run(make("twilio-messaging", [TOKEN]), signed(read("twilio_sms_status.txt")))
    assert parsed.contacts == [] and parsed.ignored == 1


def test_signature_checks() -> None:
    adapter = make("twilio-messaging", ["rotated", TOKEN])
    adapter.verify(signed(read("twilio_sms.txt")))
    with pytest.raises(SignatureError):
        adapter.verify(signed(read("twilio_sms.txt"), token="wrong"))
    with pytest.raises(SignatureError):
        adapter.verify(
            request(
                read("twilio_sms.txt"), {"X-Twilio-Signature": "%%%"}, url=URL, content_type=FORM
            )
        )


@pytest.mark.parametrize("value", ["lots", "\u00b9", "\u0663"])  # superscript 1, Arabic 3
def test_bad_num_media_is_422(value: str) -> None:
    body = form_body({"MessageSid": "SM1", "From": "+15550100", "NumMedia": value})
    with pytest.raises(PayloadError) as exc:
        run(make("twilio-messaging", [TOKEN]), signed(body))
    assert exc.value.fields[0].field == "NumMedia"


def test_reply_is_empty_twiml() -> None:
    adapter = make("twilio-messaging", [TOKEN])
    parsed = run(adapter, signed(read("twilio_sms.txt")))
    reply = adapter.reply([], parsed)
    assert reply.content_type == "text/xml" and reply.body.endswith(b"<Response/>")


@settings(max_examples=150, deadline=None)
@given(pairs=form_pairs(parse_qsl(read("twilio_sms.txt").decode())))
def test_random_forms_only_raise_router_errors(pairs: list[tuple[str, str]]) -> None:
    robust(make("twilio-messaging", [TOKEN]), signed(form_body(pairs)))
