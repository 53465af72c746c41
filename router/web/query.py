"""Query-string parsing for the ``/v1`` API: every bad parameter is a 400 that
names the parameter and the reason."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from router.errors import BadQuery, FieldError


def bad(name: str, reason: str) -> BadQuery:
    return BadQuery(f"invalid query parameter {name!r}", fields=[FieldError(name, reason)])


def check_known(query: Mapping[str, str], known: Iterable[str]) -> None:
    allowed = set(known)
    for name, value in query.items():
        if "\x00" in value:
            raise bad(name, "must not contain NUL characters")
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadQuery(
            "unknown query parameter",
            fields=[
                FieldError(name, f"not a parameter here (known: {', '.join(sorted(allowed))})")
                for name in unknown
            ],
        )


def parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(name, "expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_uuid(name: str, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise bad(name, "expected a UUID") from None


def parse_bool(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise bad(name, "expected true or false")
    return value == "true"


def parse_int(name: str, value: str, *, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise bad(name, "expected an integer") from None
    if not low <= number <= high:
        raise bad(name, f"must be between {low} and {high}")
    return number


def encode_cursor(received_at: datetime, contact_id: uuid.UUID) -> str:
    raw = f"{received_at.isoformat()}|{contact_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, _, cid = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, UnicodeDecodeError):
        raise bad("cursor", "not a cursor returned by this API") from None
