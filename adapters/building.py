"""Building normalized contacts from provider payloads, shared by the provider
adapters: lenient payload models, identifier helpers, the ``Contact`` builder
and a batch collector."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from adapters.base import Parsed, require_json, validate
from router.errors import FieldError, PayloadError, field_errors
from router.models import TEXT_LIMIT, Channel, Contact, Identifier, WebhookRequest

M = TypeVar("M", bound=BaseModel)

#: A provider id usable as ``external_id`` / ``thread_id``.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
#: A short free-form string (names, handles, types).
Short = Annotated[str, StringConstraints(max_length=1024)]


class Lenient(BaseModel):
    """Base of provider payload models: unknown fields ignored (providers add
    fields without notice), numeric ids accepted where strings are expected."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, frozen=True)


def parse_json(request: WebhookRequest, model: type[M]) -> M:
    """The JSON body validated as ``model`` (``PayloadError`` naming bad fields)."""
    return validate(model, require_json(request))


def social(platform: str, user_id: str) -> Identifier:
    """A platform-scoped user id; the platform vouches for it."""
    return Identifier(kind="social", value=f"{platform}:{user_id}", verified=True)


def handle(platform: str, name: str) -> Identifier:
    return Identifier(kind="handle", value=f"{platform}:{name.lstrip('@')}")


def international(digits: str) -> str:
    """``+`` in front of a number given as international digits without it."""
    digits = digits.strip()
    return f"+{digits}" if digits.isdigit() else digits


def from_epoch(value: float | str | None, *, millis: bool = False) -> datetime | None:
    """A unix timestamp (seconds, or milliseconds) as an aware datetime; ``None`` if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value) / (1000 if millis else 1)
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def build(
    *,
    channel: Channel,
    provider: str,
    external_id: str,
    identifiers: Iterable[Identifier],
    text: str | None = None,
    attributes: dict[str, Any] | None = None,
    **fields: Any,
) -> Contact:
    """A ``Contact`` with the text capped at ``TEXT_LIMIT`` (marked ``text_truncated``)
    and ``None`` attributes dropped. A value the model refuses is a ``PayloadError``."""
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    if text is not None:
        text = text.strip() or None
    if text and len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT]
        attrs["text_truncated"] = True
    try:
        return Contact(
            channel=channel,
            provider=provider,
            external_id=external_id,
            identifiers=tuple(identifiers),
            text=text,
            attributes=attrs,
            **fields,
        )
    except ValidationError as exc:
        raise PayloadError("payload gives an unusable contact", fields=field_errors(exc)) from None


def attachment_summary(types: Iterable[str | None]) -> dict[str, Any]:
    """``attachments`` (count) and ``attachment_types`` (sorted, distinct) attributes."""
    kinds = [t for t in types]
    if not kinds:
        return {"attachments": 0}
    return {"attachments": len(kinds), "attachment_types": sorted({t or "unknown" for t in kinds})}


class Batch:
    """Collects the contacts of one delivery, the skipped events, and the
    errors of bad items (each under its dotted path) so one bad item names
    itself instead of hiding the others."""

    def __init__(self) -> None:
        self.contacts: list[Contact] = []
        self.ignored = 0
        self.errors: list[FieldError] = []

    def skip(self, count: int = 1) -> None:
        self.ignored += count

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Gather a ``PayloadError`` raised inside the block instead of stopping."""
        try:
            yield
        except PayloadError as exc:
            self.errors.extend(exc.fields or [FieldError("body", exc.message)])

    def keep(self, contact: Contact | None) -> None:
        """Keep a contact; ``None`` (an event that is not a contact) counts as ignored."""
        if contact is None:
            self.ignored += 1
        else:
            self.contacts.append(contact)

    def parsed(self, kind: str) -> Parsed:
        if self.errors:
            raise PayloadError(f"payload does not match the {kind} format", fields=self.errors)
        return Parsed(contacts=self.contacts, ignored=self.ignored)


def single(contact: Contact | None) -> Parsed:
    """The result of a delivery that carries at most one event."""
    return Parsed(contacts=[contact], ignored=0) if contact else Parsed(contacts=[], ignored=1)


def missing_field(path: str, reason: str = "required field is missing") -> PayloadError:
    return PayloadError(f"{path}: {reason}", fields=[FieldError(path, reason)])
