import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.errors import ConfigError, PayloadError, SignatureError, UnsupportedMediaType
from router.models import WebhookRequest
from tests.support.webhooks import load, make, multipart, read, request, robust, run

TOKEN = "parse-url-token"


def parse_request(fields: dict[str, str | bytes], files=(), token: str = TOKEN) -> WebhookRequest:  # type: ignore[no-untyped-def]
    body, ctype = multipart(fields.items(), files)
    return request(body, content_type=ctype, query={"token": token})


def latin1_fields() -> dict[str, str | bytes]:
    fields: dict[str, str | bytes] = dict(load("sendgrid_fields.json"))
    fields["text"] = str(fields["text"]).encode("iso-8859-1")
    fields["html"] = str(fields["html"]).encode("iso-8859-1")
    return fields


def test_query_token_and_rotation() -> None:
    req = parse_request(latin1_fields())
    make("sendgrid", ["old", TOKEN]).verify(req)
    with pytest.raises(SignatureError):
        make("sendgrid", [TOKEN]).verify(parse_request(latin1_fields(), token="nope"))
    with pytest.raises(SignatureError):
        make("sendgrid", [TOKEN]).verify(request(req.body, req.headers))


def test_basic_auth_mode() -> None:
    adapter = make("sendgrid", [TOKEN], auth="basic", username="sg")
    body, ctype = multipart(latin1_fields().items())
    auth = "Basic " + base64.b64encode(f"sg:{TOKEN}".encode()).decode()
    adapter.verify(request(body, {"Authorization": auth}, content_type=ctype))
    with pytest.raises(SignatureError):
        adapter.verify(request(body, content_type=ctype, query={"token": TOKEN}))
    with pytest.raises(ConfigError):
        make("sendgrid", [TOKEN], auth="basic")
    with pytest.raises(ConfigError):
        make("sendgrid", [TOKEN], auth="ecdsa")


def test_parsed_mode_with_charsets() -> None:
    files = [("attachment1", "box.jpg", "image/jpeg", b"\xff\xd8\xff")]
    [contact] = run(make("sendgrid", [TOKEN]), parse_request(latin1_fields(), files)).contacts
    assert contact.external_id == "9b1e@mail.example.org"
    assert contact.thread_id == "order-5521@example.com"
    assert contact.text == "Bonjour, la boîte était écrasée..."
    assert contact.subject == "Commande 5521 arrivée endommagée"
    assert contact.language == "fr"
    assert contact.identifiers[0].value == "jane.doe@example.org"
    attrs = contact.attributes
    assert attrs["envelope_from"] == "jane.doe@example.org"
    assert attrs["recipient"] == ["support@parse.example.com"]
    assert attrs["attachment_types"] == ["image/jpeg"]
    assert attrs["spam_score"] == "0.1"


def test_raw_mode() -> None:
    fields: dict[str, str | bytes] = {
        "email": read("raw_email.eml"),
        "envelope": '{"to":["support@parse.example.com"],"from":"jorg@example.de"}',
    }
    [contact] = run(make("sendgrid", [TOKEN]), parse_request(fields)).contacts
    assert contact.external_id == "raw-4711@mail.example.de"
    assert contact.text == "Die Rechnung für März fehlt.\n\nGrüße"


def test_wrong_content_type_and_broken_multipart() -> None:
    adapter = make("sendgrid", [TOKEN])
    with pytest.raises(UnsupportedMediaType):
        adapter.parse(request(b"{}", query={"token": TOKEN}))
    with pytest.raises(PayloadError):
        adapter.parse(request(b"garbage", content_type="multipart/form-data"))


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(sorted(load("sendgrid_fields.json")) + ["email", "x"]),
        st.text(max_size=60) | st.binary(max_size=60),
        max_size=8,
    ),
    boundary=st.sampled_from(["xYzZY", "", "a b"]),
    tail=st.binary(max_size=40),
)
def test_random_multipart_only_raises_router_errors(
    fields: dict[str, str | bytes], boundary: str, tail: bytes
) -> None:
    body, ctype = multipart(fields.items(), boundary=boundary or "b")
    robust(
        make("sendgrid", [TOKEN]),
        request(
            body + tail,
            content_type=ctype if boundary else "multipart/form-data",
            query={"token": TOKEN},
        ),
    )
