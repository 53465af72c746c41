"""The data that flows through the pipeline: pure models, no I/O.

A provider's delivery (``WebhookRequest``) is turned by an adapter into
normalized ``Contact`` objects; identity resolution adds a ``CustomerContext``;
the rules engine turns both into a ``Decision``; the store keeps all three.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

Channel = Literal["chat", "email", "voice", "social"]
CHANNELS: tuple[Channel, ...] = ("chat", "email", "voice", "social")
#: The identifier kinds every deployment knows (configured kinds add to them).
BUILTIN_KINDS = ("crm", "email", "phone", "social", "handle", "visitor")

#: Longest message text kept on a record; longer texts are cut (and marked).
TEXT_LIMIT = 32_000

# -- limits of what is stored -----------------------------------------------
# Every adapter's contacts and every API body are held to these before
# anything is stored, so a value that an index, the JSON encoder or the
# database would refuse is a 4xx naming the field, never a 500 that each
# retry of the delivery meets again. Listed in docs/adapters.md.

#: Provider ids (``external_id``, ``thread_id``) are indexed, and a btree
#: entry holds at most about 2.7 kB: 512 characters are at most 2 kB of UTF-8.
ID_MAX = 512
#: Identities are indexed by (kind, value); longer values are not recognized.
IDENTIFIER_KIND_MAX = 64
IDENTIFIER_VALUE_MAX = 320
#: Identifiers of one contact (each is looked up and locked while resolving).
IDENTIFIERS_MAX = 32
#: Free-form JSON objects (a contact's ``attributes``, a profile's
#: ``attributes``, a journey's and an event's ``data``): how deep containers
#: nest (the object itself is level 1), how many values they hold in all
#: (every key and list item, at every level), how long a key is, and how
#: large the whole is as JSON.
JSON_DEPTH_MAX = 32
JSON_VALUES_MAX = 1000
JSON_KEY_MAX = 256
JSON_BYTES_MAX = 64 * 1024

#: The times the service accepts (query parameters, cursors, event times) and
#: stores: from 1970, where UUIDv7 ids (which carry their contact's time)
#: begin, to the start of the year 9999, which leaves the arithmetic of time
#: zones and report buckets room below the last year Python represents.
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9999, 1, 1, tzinfo=UTC)
#: What is said of a time outside them.
TIME_RANGE = f"must lie between {TIME_MIN:%Y-%m-%dT%H:%M:%SZ} and {TIME_MAX:%Y-%m-%dT%H:%M:%SZ}"


#: uuid7's bits: the 48 of the time, and of the 80 random ones all but the
#: version's 4 and the variant's 2, which are set
_MS_BITS = (1 << 48) - 1
_RANDOM_BITS = ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_VERSION_7 = 0x7 << 76 | 0x2 << 62
_new_uuid = uuid.UUID.__new__
#: the UUID's two slots, set through their descriptors (``object.__setattr__``
#: looks the slot up in the class on every call)
_set_int = uuid.UUID.__dict__["int"].__set__
_set_safety = uuid.UUID.__dict__["is_safe"].__set__
#: an enum member looked up once (each ``SafeUUID.unknown`` is a descriptor's call)
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
#: random 80-bit numbers from the OS's generator, read 256 at a time (one
#: system call, not one per id); a forked child reads its own
_RANDOM_BLOCK = 256
_randoms: Iterator[int] = iter(())


def _forget_randoms() -> None:
    global _randoms
    _randoms = iter(())


os.register_at_fork(after_in_child=_forget_randoms)


def _random80() -> int:
    global _randoms
    for value in _randoms:  # next() on a list's iterator: each value is handed out once
        return value
    block = os.urandom(10 * _RANDOM_BLOCK)
    values = [int.from_bytes(block[n : n + 10]) for n in range(0, len(block), 10)]
    _randoms = iter(values[1:])
    return values[0]


def uuid7(at: datetime | None = None) -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7) whose first 48 bits are ``at`` in ms."""
    ms = int((at.timestamp() if at else time.time()) * 1000)
    value = (ms & _MS_BITS) << 80 | _random80() & _RANDOM_BITS | _VERSION_7
    # what uuid.UUID(int=value) makes, without its argument checks (a routed
    # contact makes two): ``value`` is a 128-bit integer by construction
    made = _new_uuid(uuid.UUID)
    _set_int(made, value)
    _set_safety(made, _UNKNOWN_SAFETY)
    return made


def uuid_of_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` of a ``value`` known to be a 128-bit integer
    (as ``uuid7`` makes it, without the argument checks)."""
    made = _new_uuid(uuid.UUID)
    _set_int(made, value)
    _set_safety(made, _UNKNOWN_SAFETY)
    return made


def uuid_text(value: uuid.UUID) -> str:
    """``str(value)``: for a ``uuid.UUID`` by orjson, which writes one the
    same way (32 lower-case hex digits in groups of 8, 4, 4, 4 and 12) in a
    third of the time of ``UUID.__str__`` (Python); a subclass (the database
    driver's, whose own is compiled) by ``str``."""
    if type(value) is uuid.UUID:
        return orjson.dumps(value)[1:-1].decode()
    return str(value)


def uuid7_time(value: uuid.UUID) -> datetime:
    """The creation time carried by a version-7 UUID (millisecond precision);
    ``ValueError`` beyond the year 9999 (the UUID's 48 bits reach 10889)."""
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def contact_time(contact_id: uuid.UUID) -> datetime | None:
    """The time a contact's id carries (its ``received_at``), or ``None`` when
    the UUID cannot be a contact's id: not version 7, or a time outside
    ``TIME_MIN`` .. ``TIME_MAX``."""
    if contact_id.version != 7:
        return None
    try:
        at = uuid7_time(contact_id)
    except (ValueError, OverflowError):
        return None
    return at if in_time_range(at) else None


def in_time_range(at: datetime) -> bool:
    """``at`` (timezone-aware) lies in ``TIME_MIN`` .. ``TIME_MAX``."""
    return TIME_MIN <= at <= TIME_MAX


def json_problem(value: Any) -> str | None:
    """Why the JSON-like ``value`` is over the ``JSON_*`` limits, or ``None``.
    Iterative, so any depth is measured without recursion; stops at the first
    problem."""
    if not value:  # an empty object (most contacts' attributes), or a falsy scalar
        return None
    values = 0
    size = 0
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > JSON_DEPTH_MAX:
                return f"nested more than {JSON_DEPTH_MAX} levels deep (at {_show(path)})"
            values += len(item)
            if values > JSON_VALUES_MAX:
                return f"holds more than {JSON_VALUES_MAX} values (keys and list items)"
            size += 2 + len(item)
            entries = item.items() if isinstance(item, dict) else enumerate(item)
            for key, inner in entries:
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    if len(key) > JSON_KEY_MAX:
                        return f"a key is longer than {JSON_KEY_MAX} characters (at {_show(where)})"
                    size += len(key.encode("utf-8", "surrogatepass")) + 3
                stack.append((inner, depth + 1, where))
        elif isinstance(item, str):
            size += len(item.encode("utf-8", "surrogatepass")) + 2
        elif isinstance(item, int) and not isinstance(item, bool):
            size += item.bit_length() // 3 + 2  # its digits, at least
        else:
            size += 24  # a float (at most 24 characters as JSON), true, false or null
        if size > JSON_BYTES_MAX:
            return f"larger than {JSON_BYTES_MAX // 1024} kB as JSON"
    return None


def _show(path: str) -> str:
    return path if len(path) <= 120 else path[:117] + "..."


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise PydanticCustomError("json_limits", problem)
    return value


#: What the published schemas say of a ``JsonObject`` (JSON Schema cannot
#: state a depth or a total size).
JSON_LIMITS = (
    f"Free-form JSON object: nested at most {JSON_DEPTH_MAX} levels deep, at most "
    f"{JSON_VALUES_MAX} keys and list items in all, keys of at most {JSON_KEY_MAX} "
    f"characters, at most {JSON_BYTES_MAX // 1024} kB as JSON."
)

#: A free-form JSON object held to the ``JSON_*`` limits.
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_bounded),
    Field(
        description=JSON_LIMITS,
        json_schema_extra={"propertyNames": {"maxLength": JSON_KEY_MAX}},
    ),
]


Model = TypeVar("Model", bound=BaseModel)


def trusted(cls: type[Model], values: dict[str, Any]) -> Model:
    """An instance of ``cls`` holding ``values`` as they are, without validation:
    for data that our own code or the store produced, never for what a
    customer sends. ``values`` names every field of ``cls`` with the value
    (and type) validation would have given it; the fields set are those named.

    What ``cls.model_construct(**values)`` does for such values, for a
    fraction of its cost (it looks every field up again, and for a field
    left out inspects its default factory's signature on every call). Only
    for plain models: no private attributes, no ``extra="allow"``, no
    ``model_post_init``."""
    model = _new_object(cls)
    _set_dict(model, values)
    _set_fields_set(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model


#: ``trusted``'s steps: the object made as ``cls.__new__`` makes it (no model
#: class has a ``__new__`` of its own), and BaseModel's four slots set through
#: their descriptors, looked up once (``object.__setattr__`` looks each one up
#: in the class's MRO on every call, a third of ``trusted``'s cost)
_new_object = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


#: The last ``now_ms``: its millisecond and its datetime (immutable, so
#: shared by every caller within the same millisecond, which under load is
#: most of them; building one costs about a microsecond).
_now: tuple[int, datetime] = (0, datetime.fromtimestamp(0, tz=UTC))


def now_ms() -> datetime:
    """Now, cut to the millisecond, so it round-trips through a UUIDv7."""
    global _now
    ms = int(time.time() * 1000)
    last, at = _now
    if ms == last:
        return at
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    _now = (ms, at)
    return at


@dataclass(slots=True)
class WebhookRequest:
    """A delivery as received, independent of the HTTP framework (never changed once made).

    ``headers`` has lower-cased names; ``url`` is the URL the provider called
    (reconstructed from configured base URL or forwarded headers if needed).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    received_at: datetime = field(default_factory=now_ms)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(slots=True)
class WebhookReply:
    """What an adapter wants sent back to the provider (never changed once made)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Nonce:
    """A one-time value of a signature that does not cover the body (Mailgun's
    ``token``): the pipeline claims it before routing, so a captured signature
    cannot be reused with another body.

    ``fingerprint`` identifies the delivery that used it: a retry of that
    delivery presents the same fingerprint and is let through (it is then
    answered as a duplicate); another delivery with the same value is refused.
    The claim is kept until ``expires_at``, when the signature's timestamp
    leaves the replay window anyway.
    """

    scope: str  # the adapter kind: the provider that issues the values
    value: str
    fingerprint: bytes
    expires_at: datetime
    field: str = "token"  # the field named when a reuse is refused


class Identifier(BaseModel):
    """One way to recognize a customer: ``kind`` (email, phone, social, ...) and a
    normalized ``value``. ``verified`` marks identifiers the provider vouches for."""

    model_config = ConfigDict(frozen=True)

    kind: str
    value: str
    verified: bool = False


class Contact(BaseModel):
    """A contact normalized from any provider's payload."""

    model_config = ConfigDict(frozen=True)

    channel: Channel
    provider: str
    external_id: str = Field(min_length=1, max_length=ID_MAX)
    thread_id: str | None = Field(default=None, max_length=ID_MAX)
    identifiers: tuple[Identifier, ...] = Field(default=(), max_length=IDENTIFIERS_MAX)
    sender_name: str | None = None
    subject: str | None = None
    text: str | None = None
    language: str | None = None
    sent_at: datetime | None = None
    attributes: JsonObject = Field(default_factory=dict)


#: What PostgreSQL stores in place of a character it cannot store.
REPLACEMENT = "\ufffd"
#: Attribute set on a contact whose values had such characters replaced.
REPLACED_ATTRIBUTE = "characters_replaced"


def storable_text(value: str) -> bool:
    """PostgreSQL can store ``value`` in text and jsonb: no NUL character, and
    valid UTF-8 (no unpaired surrogate)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(value: str) -> str:
    """``value`` with each NUL and unpaired surrogate replaced by U+FFFD."""
    if storable_text(value):
        return value
    return "".join(REPLACEMENT if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)


def unstorable_paths(value: Any, path: str = "", *, depth: int = 0) -> list[str]:
    """The dotted paths of the strings (values and object keys) in a JSON-like
    ``value`` that PostgreSQL cannot store. Values nested deeper than any
    stored JSON may be are not looked into: the limits refuse them anyway."""
    if isinstance(value, str):
        return [] if storable_text(value) else [path]
    found: list[str] = []
    if depth > JSON_DEPTH_MAX + 2:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            here = f"{path}.{storable(key)}" if path else storable(key)
            if not storable_text(key):
                found.append(here)
            found += unstorable_paths(item, here, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            found += unstorable_paths(item, f"{path}.{n}" if path else str(n), depth=depth + 1)
    return found


def scrub(value: Any) -> Any:
    """A JSON-like ``value`` with every string made ``storable``."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


_CONTACT_TEXTS = (
    "provider",
    "external_id",
    "thread_id",
    "sender_name",
    "subject",
    "text",
    "language",
)


def unstorable_fields(contact: Contact) -> list[str]:
    """The fields of ``contact`` (dotted paths) holding a value PostgreSQL cannot store."""
    # Every contact is checked, and nearly all are clean: one look at all the
    # texts at once (a NUL or an unpaired surrogate in any of them is one in
    # the whole) before naming the fields one by one.
    texts = [v for name in _CONTACT_TEXTS if (v := getattr(contact, name)) is not None]
    for ident in contact.identifiers:
        texts += (ident.kind, ident.value)
    if storable_text("".join(texts)) and (
        not contact.attributes or storable_json(contact.attributes)
    ):
        return []
    found = [
        name
        for name in _CONTACT_TEXTS
        if (v := getattr(contact, name)) is not None and not storable_text(v)
    ]
    for n, ident in enumerate(contact.identifiers):
        found += [
            f"identifiers.{n}.{part}"
            for part in ("kind", "value")
            if not storable_text(getattr(ident, part))
        ]
    if contact.attributes and not storable_json(contact.attributes):
        found += unstorable_paths(contact.attributes, "attributes")
    return found


def storable_json(value: Any) -> bool:
    """A quick check that every string in ``value`` is storable: orjson refuses
    an unpaired surrogate and writes NUL as ``\\u0000``. False when unsure
    (the text ``\\u0000`` itself, or a value orjson does not encode); the
    caller then looks at every string."""
    try:
        return b"\\u0000" not in orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return False


def replace_unstorable(contact: Contact) -> Contact:
    """``contact`` with every character PostgreSQL cannot store replaced by
    U+FFFD, marked with the attribute ``characters_replaced``."""
    data = scrub(contact.model_dump())
    data["attributes"][REPLACED_ATTRIBUTE] = True
    return Contact.model_validate(data)


class LastContact(BaseModel):
    """The customer's previous contact, on any channel."""

    at: datetime
    channel: str
    queue: str | None = None
    agent: str | None = None
    rule: str | None = None


class ChannelCounts(BaseModel):
    """Contacts of the customer before this one, in rolling windows.

    Frozen: a channel without contacts is one shared instance (``PerChannel``'s
    default), where a default factory is a validation per channel and context."""

    model_config = ConfigDict(frozen=True)

    contacts_24h: int = 0
    contacts_7d: int = 0
    contacts_30d: int = 0


#: No contacts: shared by every channel without any (frozen, so not copied).
_NO_CONTACTS = ChannelCounts()


class PerChannel(BaseModel):
    chat: ChannelCounts = _NO_CONTACTS
    email: ChannelCounts = _NO_CONTACTS
    voice: ChannelCounts = _NO_CONTACTS
    social: ChannelCounts = _NO_CONTACTS


class Conversation(BaseModel):
    """The conversation this contact continues (same thread id), if any."""

    id: str
    started_at: datetime
    last_at: datetime
    contacts: int
    channels: list[str] = Field(default_factory=list)
    last_queue: str | None = None
    last_agent: str | None = None
    open: bool = True


class Journey(BaseModel):
    """The customer's point in a multi-step process, set through the API."""

    ref: str
    type: str
    step: str | None = None
    opened_at: datetime
    updated_at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


class CustomerContext(BaseModel):
    """What the service knows about the customer when the contact arrives.

    Counts and ``last`` cover the customer's contacts before this one.
    ``docs/context.md`` describes every field."""

    customer_id: uuid.UUID
    known: bool
    tier: str | None = None
    language: str | None = None
    segment: str | None = None
    name: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    contacts_24h: int = 0
    contacts_7d: int = 0
    contacts_30d: int = 0
    per_channel: PerChannel = Field(default_factory=PerChannel)
    channels_7d: list[str] = Field(default_factory=list)
    last: LastContact | None = None
    #: the previous contact was within 24 hours
    repeat: bool = False
    #: the previous contact (within 7 days) was on another channel
    channel_switch: bool = False
    conversation: Conversation | None = None
    #: open journeys, most recently updated first; ``journey`` is the first
    journeys: list[Journey] = Field(default_factory=list)
    journey: Journey | None = None
    #: the external context provider did not answer in time; routed without it
    degraded: bool = False


class OverflowStep(BaseModel):
    """After ``after_seconds`` unanswered, the platform applies this step."""

    after_seconds: int
    queue: str | None = None
    drop_skills: tuple[str, ...] = ()
    priority: int | None = None


class Decision(BaseModel):
    """Where a contact goes. The platform executes it; we record it."""

    queue: str
    priority: int
    skills: tuple[str, ...] = ()
    sla_seconds: int | None = None
    tags: tuple[str, ...] = ()
    preferred_agent: str | None = None
    overflow: tuple[OverflowStep, ...] = ()
    rule: str | None = None
    ruleset: str


class Routed(BaseModel):
    """The outcome of routing one contact, as answered to the platform."""

    contact_id: uuid.UUID
    customer_id: uuid.UUID | None
    duplicate: bool
    decision: Decision
    external_id: str


#: The outcome events that move a contact's lifecycle (``POST /v1/contacts/{id}/events``).
OutcomeType = Literal["assigned", "answered", "transferred", "abandoned", "resolved", "closed"]


class OutcomeEvent(BaseModel):
    """An outcome a provider reports in a delivery of its own (a status
    callback), for the contacts it names: by ``contact_id``, or by the
    adapter's ``external_id`` or ``thread_id`` (every contact of a call, say).
    Recorded as ``POST /v1/contacts/{id}/events`` would record it."""

    model_config = ConfigDict(frozen=True)

    type: OutcomeType
    #: the provider's id of the event: a retried callback is a duplicate
    event_id: str = Field(min_length=1, max_length=256)
    contact_id: uuid.UUID | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=ID_MAX)
    thread_id: str | None = Field(default=None, min_length=1, max_length=ID_MAX)
    #: when it happened (``None``: when it was received)
    at: datetime | None = None
    #: what the provider said, kept with the event (no message text)
    data: dict[str, Any] = Field(default_factory=dict)
