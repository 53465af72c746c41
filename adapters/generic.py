"""The generic JSON adapters, one per channel: ``chat``, ``email``, ``voice``,
``social``. A platform (or a small bridge in front of one) posts our documented
JSON and signs it with ``X-Omniroute-Signature``.

Signature: ``X-Omniroute-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256 of ``"<t>.<raw body>"`` with the adapter's secret. Several ``v1``
entries may be sent; any configured secret may match (rotation). Timestamps
more than five minutes away from our clock are refused.

A body is one contact object, or ``{"contacts": [ ... ]}`` with up to
``MAX_BATCH`` of them. The JSON Schemas are in ``adapters/schemas/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.base import Adapter, AdapterSpec, Parsed, require_json, validate
from adapters.signing import (
    HmacKeys,
    check_timestamp,
    decode_hex,
    hmac_sha256,
    mismatch,
    missing,
)
from router.errors import FieldError, PayloadError, SignatureError, UnstorableValue, field_errors
from router.models import (
    ID_MAX,
    TEXT_LIMIT,
    Contact,
    Identifier,
    JsonObject,
    WebhookRequest,
    json_problem,
    storable_json,
    trusted,
    unstorable_paths,
)

SIGNATURE_HEADER = "x-omniroute-signature"
MAX_BATCH = 100
UNSTORABLE = "contains a NUL character or an unpaired surrogate, which cannot be stored"


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Omniroute-Signature`` value for ``body`` (used by clients and tests)."""
    digest = hmac_sha256(secret.encode(), str(timestamp).encode() + b"." + body)
    return f"t={timestamp},v1={digest.hex()}"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Text = Field(default=None, max_length=TEXT_LIMIT * 4)
Id = Field(min_length=1, max_length=ID_MAX)
Ref = Field(default=None, max_length=ID_MAX)
Attributes: Any = Field(default_factory=dict)


class ChatCustomer(_Payload):
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    crm_id: str | None = Field(default=None, max_length=256)
    visitor_id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    email_verified: bool = False


class ChatPayload(_Payload):
    """A new chat conversation or message."""

    id: str = Id
    conversation_id: str | None = Ref
    customer: ChatCustomer
    text: str | None = Text
    language: str | None = Field(default=None, max_length=35)
    sent_at: datetime | None = None
    page_url: str | None = Field(default=None, max_length=2048)
    attributes: JsonObject = Attributes


class Address(_Payload):
    address: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=256)


class EmailPayload(_Payload):
    """An inbound email, already parsed into fields."""

    id: str = Id  # the Message-Id
    from_: Address = Field(alias="from")
    to: list[Address] = Field(default_factory=list, max_length=100)
    cc: list[Address] = Field(default_factory=list, max_length=100)
    subject: str | None = Field(default=None, max_length=2000)
    text: str | None = Text
    in_reply_to: str | None = Ref
    references: list[Annotated[str, Field(max_length=ID_MAX)]] = Field(
        default_factory=list, max_length=200
    )
    language: str | None = Field(default=None, max_length=35)
    sent_at: datetime | None = None
    attachments: int = Field(default=0, ge=0)
    attributes: JsonObject = Attributes

    model_config = ConfigDict(populate_by_name=True)


class Ivr(_Payload):
    path: list[str] = Field(default_factory=list, max_length=50)
    digits: str | None = Field(default=None, max_length=64)
    speech: str | None = Field(default=None, max_length=4000)


class VoicePayload(_Payload):
    """The metadata of an incoming call (no audio)."""

    id: str = Id  # the call id
    #: a conversation this call continues, when the platform links channels
    conversation_id: str | None = Ref
    caller: str = Field(min_length=1, max_length=128)
    callee: str | None = Field(default=None, max_length=128)
    caller_name: str | None = Field(default=None, max_length=256)
    crm_id: str | None = Field(default=None, max_length=256)
    ivr: Ivr = Field(default_factory=Ivr)
    intent: str | None = Field(default=None, max_length=128)
    language: str | None = Field(default=None, max_length=35)
    started_at: datetime | None = None
    queue_seconds: int | None = Field(default=None, ge=0)
    forwarded_from: str | None = Field(default=None, max_length=128)
    attributes: JsonObject = Attributes


class SocialAuthor(_Payload):
    id: str = Field(min_length=1, max_length=256)
    handle: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)


class SocialPayload(_Payload):
    """A message or public post on a social platform."""

    id: str = Id
    platform: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    author: SocialAuthor
    public: bool = False
    thread_id: str | None = Ref
    text: str | None = Text
    language: str | None = Field(default=None, max_length=35)
    sent_at: datetime | None = None
    attachments: int = Field(default=0, ge=0)
    attributes: JsonObject = Attributes


def _cap(text: str | None) -> str | None:
    return text[:TEXT_LIMIT] if text else text


def _identifier(kind: str, value: str, verified: bool = False) -> Identifier:
    return trusted(Identifier, {"kind": kind, "value": value, "verified": verified})


def _contact(values: dict[str, Any], *, added: bool = True) -> Contact:
    """The contact of a validated payload (``values`` names every field of
    ``Contact``), built without validating its values a second time: the
    payload models hold them to the contact's types and limits already (the
    ids' lengths, the attributes' JSON limits), and a generic contact has at
    most four identifiers. Only attributes with values ``added`` to the
    payload's may be over the JSON limits: then the contact is validated,
    which refuses them (a ``ValidationError`` naming the field) as before."""
    if added and json_problem(values["attributes"]) is not None:
        return Contact(**values)
    return trusted(Contact, values)


def _chat(p: ChatPayload, provider: str) -> Contact:
    c = p.customer
    ids = []  # strongest first; a CRM id is the platform's own, verified
    if c.crm_id:
        ids.append(_identifier("crm", c.crm_id, True))
    if c.email:
        ids.append(_identifier("email", c.email, c.email_verified))
    if c.phone:
        ids.append(_identifier("phone", c.phone))
    if c.visitor_id:
        ids.append(_identifier("visitor", c.visitor_id))
    if not ids:
        raise PayloadError(
            "the chat customer has no identifier",
            fields=[
                FieldError("customer", "give at least one of email, phone, crm_id, visitor_id")
            ],
        )
    attrs = dict(p.attributes)
    if p.page_url:
        attrs["page_url"] = p.page_url
    return _contact(
        {
            "channel": "chat",
            "provider": provider,
            "external_id": p.id,
            "thread_id": p.conversation_id,
            "identifiers": tuple(ids),
            "sender_name": c.name,
            "subject": None,
            "text": _cap(p.text),
            "language": p.language,
            "sent_at": p.sent_at,
            "attributes": attrs,
        },
        added=bool(p.page_url),
    )


def _email(p: EmailPayload, provider: str) -> Contact:
    # The thread is the first message's id: the root of References, else the
    # message replied to, else this message (which starts a thread).
    thread = p.references[0] if p.references else (p.in_reply_to or p.id)
    attrs = dict(p.attributes)
    attrs["attachments"] = p.attachments
    attrs["to"] = [a.address for a in p.to]
    if p.in_reply_to:
        attrs["reply"] = True
    return _contact(
        {
            "channel": "email",
            "provider": provider,
            "external_id": p.id,
            "thread_id": thread,
            "identifiers": (_identifier(kind="email", value=p.from_.address),),
            "sender_name": p.from_.name,
            "subject": p.subject,
            "text": _cap(p.text),
            "language": p.language,
            "sent_at": p.sent_at,
            "attributes": attrs,
        },
    )


def _voice(p: VoicePayload, provider: str) -> Contact:
    ids = [_identifier(kind="phone", value=p.caller)]
    if p.crm_id:
        ids.insert(0, _identifier(kind="crm", value=p.crm_id, verified=True))
    attrs = dict(p.attributes)
    attrs.update(
        {
            k: v
            for k, v in {
                "callee": p.callee,
                "ivr_path": p.ivr.path or None,
                "ivr_digits": p.ivr.digits,
                "ivr_speech": p.ivr.speech,
                "intent": p.intent,
                "queue_seconds": p.queue_seconds,
                "forwarded_from": p.forwarded_from,
            }.items()
            if v is not None
        }
    )
    return _contact(
        {
            "channel": "voice",
            "provider": provider,
            "external_id": p.id,
            "thread_id": p.conversation_id,
            "identifiers": tuple(ids),
            "sender_name": p.caller_name,
            "subject": None,
            "text": _cap(p.ivr.speech),
            "language": p.language,
            "sent_at": p.started_at,
            "attributes": attrs,
        },
    )


def _social(p: SocialPayload, provider: str) -> Contact:
    ids = [_identifier(kind="social", value=f"{p.platform}:{p.author.id}", verified=True)]
    if p.author.handle:
        ids.append(_identifier(kind="handle", value=f"{p.platform}:{p.author.handle}"))
    attrs = dict(p.attributes)
    attrs.update({"platform": p.platform.lower(), "public": p.public, "attachments": p.attachments})
    return _contact(
        {
            "channel": "social",
            "provider": provider,
            "external_id": p.id,
            "thread_id": p.thread_id,
            "identifiers": tuple(ids),
            "sender_name": p.author.name,
            "subject": None,
            "text": _cap(p.text),
            "language": p.language,
            "sent_at": p.sent_at,
            "attributes": attrs,
        },
    )


class GenericAdapter(Adapter):
    """Shared verify/parse of the four generic JSON adapters."""

    payload: ClassVar[type[_Payload]]
    # The platform reads the answer: a delivery with a value that cannot be
    # stored is refused whole, before anything is routed, naming each field.
    unstorable: ClassVar[Literal["refuse", "replace"]] = "refuse"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        self._keys = HmacKeys(self.secrets)

    def verify(self, request: WebhookRequest) -> None:
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            raise missing("X-Omniroute-Signature")
        timestamps: list[str] = []
        signatures: list[str] = []
        for item in header.split(","):
            key, sep, value = item.strip().partition("=")
            if sep:
                if key == "t":
                    timestamps.append(value)
                elif key == "v1":
                    signatures.append(value)
        if not timestamps or not signatures:
            raise SignatureError(
                "malformed signature header",
                fields=[FieldError("X-Omniroute-Signature", "expected t=<unix>,v1=<hex>")],
            )
        timestamp = timestamps[0]
        check_timestamp(timestamp, header="X-Omniroute-Signature")
        message = timestamp.encode() + b"." + request.body
        for candidate in signatures:
            digest = decode_hex(candidate, header="X-Omniroute-Signature")
            if self._keys.matches_any(digest, message):
                return
        raise mismatch("X-Omniroute-Signature")

    def parse(self, request: WebhookRequest) -> Parsed:
        data = require_json(request)
        if isinstance(data, dict) and set(data) == {"contacts"}:
            items = data["contacts"]
            if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
                raise PayloadError(
                    "bad contacts batch",
                    fields=[FieldError("contacts", f"must be a list of 1 to {MAX_BATCH} objects")],
                )
            prefixes = [f"contacts.{i}" for i in range(len(items))]
        else:
            items, prefixes = [data], [""]
        contacts = []
        errors: list[FieldError] = []
        refused: list[FieldError] = []
        # orjson refused any unpaired surrogate and raw NUL already: only an
        # escaped NUL can make a value of a decoded body unstorable
        check = b"\\u0000" in request.body
        for item, prefix in zip(items, prefixes, strict=True):
            if check and not storable_json(item):
                refused += [
                    FieldError(p or "body", UNSTORABLE) for p in unstorable_paths(item, prefix)
                ]
            try:
                payload = validate(self.payload, item, prefix=prefix)
            except PayloadError as exc:  # its fields carry the prefix
                errors.extend(exc.fields)
                continue
            try:
                contacts.append(self.to_contact(payload))
            except PayloadError as exc:  # the adapter's own checks: the item's fields
                errors.extend(
                    FieldError(f"{prefix}.{f.field}", f.reason) if prefix else f for f in exc.fields
                )
            except ValidationError as exc:  # the contact made of a valid payload is over a limit
                errors.extend(field_errors(exc, prefix=prefix))
        if errors:
            raise PayloadError(
                f"payload does not match the {self.kind} schema", fields=errors + refused
            )
        if refused:
            # Every item is checked before any is routed: all or nothing.
            raise UnstorableValue(
                "a value of the delivery cannot be stored; no contact of it was routed",
                fields=refused,
            )
        # Storable: orjson refused any unpaired surrogate and raw NUL, an
        # escaped NUL was refused above, and what the adapter adds is its own.
        return Parsed(contacts=contacts, storable=True)

    def to_contact(self, payload: Any) -> Contact:
        raise NotImplementedError


class ChatAdapter(GenericAdapter):
    kind = "chat"
    payload = ChatPayload

    def to_contact(self, payload: Any) -> Contact:
        return _chat(payload, self.kind)


class EmailAdapter(GenericAdapter):
    kind = "email"
    payload = EmailPayload

    def to_contact(self, payload: Any) -> Contact:
        return _email(payload, self.kind)


class VoiceAdapter(GenericAdapter):
    kind = "voice"
    payload = VoicePayload

    def to_contact(self, payload: Any) -> Contact:
        return _voice(payload, self.kind)


class SocialAdapter(GenericAdapter):
    kind = "social"
    payload = SocialPayload

    def to_contact(self, payload: Any) -> Contact:
        return _social(payload, self.kind)


GENERIC: tuple[type[GenericAdapter], ...] = (ChatAdapter, EmailAdapter, VoiceAdapter, SocialAdapter)


def json_schema(kind: str) -> dict[str, Any]:
    """The published JSON Schema of a generic adapter's payload (adapters/schemas/)."""
    cls = {c.kind: c for c in GENERIC}[kind]
    schema = cls.payload.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://omniroute.dev/schemas/{kind}.json"
    return schema
