"""Query-string parsing for the ``/v1`` API: every bad parameter is a 400 that
names the parameter and the reason."""

from __future__ import annotations

import base64
import functools
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo

from router import times
from router.errors import BadQuery, FieldError, NotFound
from router.models import TIME_RANGE, contact_time, in_time_range

_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


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
    """An ISO 8601 time (UTC when it has no offset) in ``TIME_MIN`` ..
    ``TIME_MAX``: nothing outside reaches the database or the arithmetic."""
    try:
        parsed = times.parse_time(value)
    except ValueError:
        raise bad(name, "expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    if not in_time_range(parsed):
        raise bad(name, TIME_RANGE)
    return parsed


def parse_uuid(name: str, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise bad(name, "expected a UUID") from None


def parse_contact_id(name: str, value: str) -> uuid.UUID:
    """A contact's id from the path: 400 when it is not a UUID, 404 when it
    cannot be a contact's (not a UUIDv7, or its time is out of range)."""
    contact_id = parse_uuid(name, value)
    if contact_time(contact_id) is None:
        raise NotFound(f"no contact {contact_id}", fields=[FieldError(name, "unknown contact")])
    return contact_id


@functools.cache
def _zones() -> frozenset[str]:
    # "localtime" names the host's zone, not one of the IANA database.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def parse_zone(name: str, value: str) -> tzinfo:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``). POSIX-style names
    such as ``UTC+5`` (which PostgreSQL would read as five hours *west*) and
    names unknown to the zone database are refused."""
    if value == "UTC":
        return UTC
    if _ZONE.match(value) and value in _zones():
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise bad(name, "expected an IANA time zone name such as Europe/Berlin or UTC")


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
        received_at, contact_id = datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, UnicodeDecodeError):
        raise bad("cursor", "not a cursor returned by this API") from None
    if received_at.tzinfo is None or not in_time_range(received_at):
        raise bad("cursor", "not a cursor returned by this API")
    return received_at, contact_id
