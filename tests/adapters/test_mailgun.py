import pytest
from hypothesis import given, settings

from router.errors import ConfigError, PayloadError, SignatureError, UnsupportedMediaType
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import form_pairs
from tests.support.webhooks import form_body, load, make, multipart, read, request, robust, run

KEY = "example-signing-key"
NOW = 1741082400
FORM = "application/x-www-form-urlencoded"


def adapter(*keys: str, now: float = NOW, **options: int):  # type: ignore[no-untyped-def]
    a = make("mailgun", keys or [KEY], **options)
    a.clock = lambda: now
    return a


def sign(
    fields: dict[str, str], ts: int = NOW, key: str = KEY, token: str = "t" * 50
) -> dict[str, str]:
    return providers.mailgun(fields, key, ts, token)


def urlencoded(fields: dict[str, str]) -> WebhookRequest:
    return request(form_body(fields), content_type=FORM)


def test_reference_self_check_vector() -> None:
    fields = {
        "timestamp": "1700000000",
        "token": "a" * 50,
        "signature": "dc30fc610f30aa6f91763225c85fd2df75b2b52af899e0622c370c3580d0c494",
    }
    adapter(now=1700000000).verify(urlencoded(fields))


def test_replay_window_wrong_key_rotation() -> None:
    fields = sign(load("mailgun_fields.json"))
    adapter("other", KEY).verify(urlencoded(fields))
    with pytest.raises(SignatureError):
        adapter(now=NOW + 301).verify(urlencoded(fields))
    adapter(now=NOW + 3000, tolerance_seconds=3600).verify(urlencoded(fields))
    with pytest.raises(SignatureError):
        adapter().verify(urlencoded(sign(load("mailgun_fields.json"), key="wrong")))
    with pytest.raises(SignatureError):
        adapter().verify(urlencoded(load("mailgun_fields.json")))


def test_urlencoded_mapping() -> None:
    [contact] = run(adapter(), urlencoded(sign(load("mailgun_fields.json")))).contacts
    assert contact.external_id == "CAF1x9k2Q@mail.example.org"
    assert contact.thread_id == "ticket-8841.root@mg.example.com"
    assert contact.identifiers[0].value == "jane.doe@example.org"
    assert contact.sender_name == "Jane Döe"
    assert contact.text == "Thanks, that fixed it."
    assert contact.language == "en-GB"
    assert contact.attributes["stripped"] is True
    assert contact.attributes["recipient"] == "support+ticket-8841@mg.example.com"
    assert contact.attributes["attachments"] == 1


@pytest.mark.parametrize("declared", ["\u00b9", "\u0663", "9" * 5000])
def test_unusable_attachment_count_is_ignored(declared: str) -> None:
    fields = sign({**load("mailgun_fields.json"), "attachment-count": declared})
    [contact] = run(adapter(), urlencoded(fields)).contacts
    assert contact.attributes["attachments"] == 0


def test_multipart_with_attachment() -> None:
    fields = sign(load("mailgun_fields.json"))
    body, ctype = multipart(
        fields.items(), [("attachment-1", "shot.png", "image/png", b"\x89PNG..")]
    )
    [contact] = run(adapter(), request(body, content_type=ctype)).contacts
    assert contact.attributes["attachment_types"] == ["image/png"]
    assert contact.text == "Thanks, that fixed it."


def test_raw_mime_route() -> None:
    fields = sign({"recipient": "support@mg.example.com", "sender": "jorg@example.de"})
    body, ctype = multipart([*fields.items(), ("body-mime", read("raw_email.eml"))])
    [contact] = run(adapter(), request(body, content_type=ctype)).contacts
    assert contact.external_id == "raw-4711@mail.example.de"
    assert contact.sender_name == "Jörg Müller"
    assert contact.subject == "Rechnung für März"
    assert contact.text == "Die Rechnung für März fehlt.\n\nGrüße"
    assert contact.thread_id == "root-1@example.com"
    assert contact.attributes["attachment_types"] == ["application/pdf"]


def test_missing_sender_and_message_id() -> None:
    with pytest.raises(PayloadError) as exc:
        run(adapter(), urlencoded(sign({"subject": "hi"})))
    assert exc.value.fields[0].field == "from"
    [contact] = run(
        adapter(), urlencoded(sign({"from": "a@example.org", "body-plain": "x"}))
    ).contacts
    assert contact.external_id.startswith("sha256:")


def test_wrong_content_type_and_config() -> None:
    with pytest.raises(UnsupportedMediaType):
        adapter().verify(request(b"{}"))
    with pytest.raises(ConfigError):
        make("mailgun", [KEY], tolerance_seconds="soon")


@settings(max_examples=200, deadline=None)
@given(pairs=form_pairs(list(sign(load("mailgun_fields.json")).items())))
def test_random_forms_only_raise_router_errors(pairs: list[tuple[str, str]]) -> None:
    robust(adapter(), request(form_body(pairs), content_type=FORM))


def test_non_ascii_attachment_count_does_not_crash() -> None:
    """``"²".isdigit()`` is true but ``int("²")`` fails."""
    fields = {**load("mailgun_fields.json"), "attachment-count": "²"}
    [contact] = run(adapter(), urlencoded(sign(fields))).contacts
    assert contact.attributes["attachments"] == 0


def test_token_is_a_nonce_fingerprinted_by_adapter_and_message() -> None:
    parsed = run(adapter(), urlencoded(sign(load("mailgun_fields.json"))))
    assert parsed.nonce is not None
    assert (parsed.nonce.scope, parsed.nonce.value, parsed.nonce.field) == (
        "mailgun",
        "t" * 50,
        "token",
    )
    assert parsed.nonce.expires_at.timestamp() == NOW + 300 + 60
    other = run(adapter(), urlencoded(sign({**load("mailgun_fields.json"), "Message-Id": "<b@x>"})))
    assert other.nonce is not None and other.nonce.fingerprint != parsed.nonce.fingerprint
    unsigned = adapter().parse(urlencoded({**sign(load("mailgun_fields.json")), "timestamp": "²"}))
    assert unsigned.nonce is None
