"""The data that flows through the pipeline: pure models, no I/O.

A provider's delivery (``WebhookRequest``) is turned by an adapter into
normalized ``Contact`` objects; identity resolution adds a ``CustomerContext``;
the rules engine turns both into a ``Decision``; the store keeps all three.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["chat", "email", "voice", "social"]
CHANNELS: tuple[Channel, ...] = ("chat", "email", "voice", "social")

#: Longest message text kept on a record; longer texts are cut (and marked).
TEXT_LIMIT = 32_000


def uuid7(at: datetime | None = None) -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7) whose first 48 bits are ``at`` in ms."""
    ms = int((at.timestamp() if at else time.time()) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # variant
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID) -> datetime:
    """The creation time carried by a version-7 UUID (millisecond precision)."""
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def now_ms() -> datetime:
    """Now, cut to the millisecond, so it round-trips through a UUIDv7."""
    ms = int(time.time() * 1000)
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A delivery as received, independent of the HTTP framework.

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


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What an adapter wants sent back to the provider."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


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
    external_id: str = Field(min_length=1, max_length=512)
    thread_id: str | None = None
    identifiers: tuple[Identifier, ...] = ()
    sender_name: str | None = None
    subject: str | None = None
    text: str | None = None
    language: str | None = None
    sent_at: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


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


def unstorable_paths(value: Any, path: str = "") -> list[str]:
    """The dotted paths of the strings (values and object keys) in a JSON-like
    ``value`` that PostgreSQL cannot store."""
    if isinstance(value, str):
        return [] if storable_text(value) else [path]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            here = f"{path}.{storable(key)}" if path else storable(key)
            if not storable_text(key):
                found.append(here)
            found += unstorable_paths(item, here)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            found += unstorable_paths(item, f"{path}.{n}" if path else str(n))
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
    return found + unstorable_paths(contact.attributes, "attributes")


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
    """Contacts of the customer before this one, in rolling windows."""

    contacts_24h: int = 0
    contacts_7d: int = 0
    contacts_30d: int = 0


class PerChannel(BaseModel):
    chat: ChannelCounts = Field(default_factory=ChannelCounts)
    email: ChannelCounts = Field(default_factory=ChannelCounts)
    voice: ChannelCounts = Field(default_factory=ChannelCounts)
    social: ChannelCounts = Field(default_factory=ChannelCounts)


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
