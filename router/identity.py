"""Identifier normalization: the same person written two ways is one key.

Pure functions; the pipeline applies them to what adapters extract, so every
adapter gets the same rules (and the configured default phone region).

| kind      | normalized form                                       |
|-----------|-------------------------------------------------------|
| email     | trimmed, lower-cased (``Ann@X.org`` -> ``ann@x.org``)  |
| phone     | E.164 (``+14155550100``); local numbers use the default region |
| social    | ``platform:user-id`` with the platform lower-cased     |
| handle    | ``platform:handle`` without ``@``, case-folded         |
| crm, visitor and other kinds | trimmed                        |
"""

from __future__ import annotations

import re

import phonenumbers

from router.models import Identifier

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_PREFIXES = ("tel:", "sip:", "whatsapp:", "sms:")


def normalize_email(raw: str) -> str | None:
    value = raw.strip().strip("<>").strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    return value if _EMAIL.match(value) else None


def normalize_phone(raw: str, default_region: str) -> str | None:
    value = raw.strip()
    lowered = value.lower()
    for prefix in _PHONE_PREFIXES:
        if lowered.startswith(prefix):
            value = value[len(prefix) :]
            break
    value = value.split("@", 1)[0]  # sip:+1415...@host
    if not any(ch.isdigit() for ch in value):
        return None  # "anonymous", "restricted", ...
    try:
        number = phonenumbers.parse(value, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _platform_pair(raw: str) -> tuple[str, str] | None:
    platform, sep, rest = raw.partition(":")
    if not sep or not platform.strip() or not rest.strip():
        return None
    return platform.strip().lower(), rest.strip()


def normalize(identifier: Identifier, *, default_region: str) -> Identifier | None:
    """The normalized identifier, or ``None`` when nothing usable remains."""
    kind = identifier.kind.strip().lower()
    raw = identifier.value
    value: str | None
    if kind == "email":
        value = normalize_email(raw)
    elif kind == "phone":
        value = normalize_phone(raw, default_region)
    elif kind == "social":
        pair = _platform_pair(raw)
        value = f"{pair[0]}:{pair[1]}" if pair else None
    elif kind == "handle":
        pair = _platform_pair(raw)
        value = f"{pair[0]}:{pair[1].lstrip('@').casefold()}" if pair else None
    else:
        value = raw.strip() or None
    if value is None or len(value) > 320:
        return None
    return Identifier(kind=kind, value=value, verified=identifier.verified)


def normalize_all(
    identifiers: tuple[Identifier, ...], *, default_region: str
) -> tuple[Identifier, ...]:
    """Normalize and de-duplicate, keeping the first (kind, value) seen."""
    seen: dict[tuple[str, str], Identifier] = {}
    for identifier in identifiers:
        norm = normalize(identifier, default_region=default_region)
        if norm is None:
            continue
        key = (norm.kind, norm.value)
        if key not in seen or (norm.verified and not seen[key].verified):
            seen[key] = norm
    return tuple(seen.values())
