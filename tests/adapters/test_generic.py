"""The generic adapters: published schemas, examples, signature rules."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import AdapterSpec, build
from adapters.generic import GENERIC, json_schema, sign
from adapters.signing import HmacKeys, hmac_sha256
from router.errors import PayloadError, SignatureError, UnstorableValue
from router.models import JSON_VALUES_MAX, Contact, WebhookRequest, unstorable_fields

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "adapters" / "schemas"


def request(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-omniroute-signature"] = signature
    return WebhookRequest("POST", "http://x/v1/webhooks/a", headers, {}, body)


@pytest.mark.parametrize("kind", [c.kind for c in GENERIC])
def test_published_schema_is_current(kind: str) -> None:
    published = orjson.loads((SCHEMAS / f"{kind}.json").read_bytes())
    assert published == json_schema(kind), "regenerate adapters/schemas (see docs/adapters.md)"


@pytest.mark.parametrize("kind", [c.kind for c in GENERIC])
def test_example_parses(kind: str) -> None:
    adapter = build(AdapterSpec(name=kind, kind=kind, secrets=("s",)))
    body = (ROOT / "examples" / f"{kind}.json").read_bytes()
    req = request(body, sign(body, "s", int(time.time())))
    adapter.verify(req)
    [contact] = adapter.parse(req).contacts
    assert contact.channel == kind
    assert contact.identifiers


def test_any_of_several_v1_signatures_may_match() -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("new",)))
    body = b"{}"
    now = int(time.time())
    old = sign(body, "old", now)
    new = sign(body, "new", now).split(",")[1]
    adapter.verify(request(body, f"{old},{new}"))


@pytest.mark.parametrize(
    "header", ["", "t=abc,v1=00", "v1=00", "t=1", f"t={int(time.time())},v1=zz"]
)
def test_malformed_signatures_are_refused(header: str) -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("s",)))
    with pytest.raises(SignatureError):
        adapter.verify(request(b"{}", header or None))


def test_signature_covers_the_body() -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("s",)))
    signature = sign(b'{"a":1}', "s", int(time.time()))
    with pytest.raises(SignatureError):
        adapter.verify(request(b'{"a":2}', signature))


def test_batch_limit() -> None:
    adapter = build(AdapterSpec(name="c", kind="social", secrets=("s",)))
    with pytest.raises(PayloadError) as err:
        adapter.parse(request(orjson.dumps({"contacts": []}), None))
    assert err.value.fields[0].field == "contacts"


def test_an_escaped_nul_anywhere_in_the_body_is_refused_naming_its_field() -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("s",)))
    body = b'{"contacts": [{"id": "a", "customer": {"email": "a@example.com"}},'
    body += b' {"id": "b", "customer": {"email": "b@example.com"}, "text": "x\\u0000",'
    body += b' "attributes": {"k\\u0000": 1}}]}'
    with pytest.raises(UnstorableValue) as caught:
        adapter.parse(request(body, None))
    assert [f.field for f in caught.value.fields] == [
        "contacts.1.text",
        "contacts.1.attributes.k\ufffd",
    ]


def test_the_text_of_an_escaped_nul_is_not_a_nul() -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("s",)))
    body = b'{"id": "a", "customer": {"email": "a@example.com"}, "text": "x\\\\u0000"}'
    [contact] = adapter.parse(request(body, None)).contacts
    assert contact.text == "x\\u0000"


def test_any_configured_secret_verifies_and_no_other() -> None:
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("new-secret", "old-secret")))
    body = b'{"id": "a"}'
    now = int(time.time())
    for secret in ("new-secret", "old-secret"):
        adapter.verify(request(body, sign(body, secret, now)))
    with pytest.raises(SignatureError):
        adapter.verify(request(body, sign(body, "other-secret", now)))
    with pytest.raises(SignatureError):  # the signature covers the body
        adapter.verify(request(body + b" ", sign(body, "new-secret", now)))


@pytest.mark.parametrize("kind", [c.kind for c in GENERIC])
def test_a_contact_is_what_validating_its_values_gives(kind: str) -> None:
    # built from the validated payload without validating again: every field
    # set, each value what the model's validation makes of it
    adapter = build(AdapterSpec(name=kind, kind=kind, secrets=("s",)))
    example = orjson.loads((ROOT / "examples" / f"{kind}.json").read_bytes())
    example["attributes"] = {"plan": "gold", "nested": {"list": [1, "two", None]}}
    [contact] = adapter.parse(request(orjson.dumps(example), None)).contacts
    assert list(contact.__dict__) == list(Contact.model_fields)
    validated = Contact.model_validate(contact.model_dump())
    assert contact == validated
    assert contact.model_dump_json() == validated.model_dump_json()
    assert contact.attributes["nested"] == {"list": [1, "two", None]}


@pytest.mark.parametrize(
    ("kind", "added"), [("chat", ["page_url"]), ("social", ["platform", "public", "attachments"])]
)
def test_attributes_taken_over_the_limits_by_what_the_adapter_adds_are_refused(
    kind: str, added: list[str]
) -> None:
    adapter = build(AdapterSpec(name=kind, kind=kind, secrets=("s",)))
    example = orjson.loads((ROOT / "examples" / f"{kind}.json").read_bytes())
    # one value more than the limit with the adapter's own attributes
    example["attributes"] = {f"k{n}": n for n in range(JSON_VALUES_MAX - len(added) + 1)}
    with pytest.raises(PayloadError) as caught:
        adapter.parse(request(orjson.dumps({"contacts": [example]}), None))
    assert [f.field for f in caught.value.fields] == ["contacts.0.attributes"]
    # at the limit: routed, with them
    example["attributes"].pop("k0")
    [contact] = adapter.parse(request(orjson.dumps(example), None)).contacts
    assert len(contact.attributes) == JSON_VALUES_MAX
    assert all(a in contact.attributes for a in added)


@pytest.mark.parametrize(
    "text", ["x\\u0000", "x\\\\u0000", "\\ud83d\\ude00", "\\ud83d", "caf\\u00e9", "x\u0000"]
)
def test_what_the_adapter_answers_storable_is_storable(text: str) -> None:
    # the pipeline does not check again the contacts of a delivery parsed as storable
    adapter = build(AdapterSpec(name="c", kind="chat", secrets=("s",)))
    body = '{"id": "a", "customer": {"email": "a@example.com"}, "text": "TEXT",'
    body = (body + ' "attributes": {"TEXT": "TEXT"}}').replace("TEXT", text)
    try:
        parsed = adapter.parse(request(body.encode("utf-8", "surrogatepass"), None))
    except (PayloadError, UnstorableValue):
        return
    assert parsed.storable
    assert [unstorable_fields(c) for c in parsed.contacts] == [[]]


@pytest.mark.parametrize("openssl", [True, False])
def test_the_keys_match_alike_with_or_without_openssls_hmac(
    openssl: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not openssl:  # hmac's own implementation (a digest constructor it cannot hand to OpenSSL)
        real = hmac.new
        monkeypatch.setattr(
            hmac, "new", lambda key, msg=None, digestmod="": real(key, msg, _sha256)
        )
    keys = HmacKeys(["old-secret", "new-secret"])
    assert isinstance(keys._keyed[0], hmac.HMAC) is not openssl
    message = b"1700000000." + b'{"id": "a"}'
    for secret in ("old-secret", "new-secret"):
        assert keys.matches_any(hmac_sha256(secret.encode(), message), message)
    assert not keys.matches_any(hmac_sha256(b"other-secret", message), message)
    assert not keys.matches_any(hmac_sha256(b"new-secret", message + b" "), message)


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)
