"""Identifier normalization: the same person written two ways is one key.

Pure functions; the pipeline applies them to what adapters extract, so every
adapter gets the same rules (and the configured default phone region).

| kind      | normalized form                                       |
|-----------|-------------------------------------------------------|
| email     | trimmed, lower-cased (``Ann@X.org`` -> ``ann@x.org``)  |
| phone     | E.164 (``+14155550100``); local numbers use the default region |
| social    | ``platform:user-id`` with the platform lower-cased     |
| handle    | ``platform:handle`` without ``@``, case-folded         |
| crm, visitor    | trimmed                                               |
| custom kinds    | trimmed; case-folded when configured case-insensitive |

Custom kinds are declared in ``identity.kinds``; identifiers of undeclared
kinds are refused by the API and dropped from contacts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import phonenumbers

from router.models import BUILTIN_KINDS, IDENTIFIER_VALUE_MAX, Identifier, trusted

if TYPE_CHECKING:
    from router.settings import IdentitySettings

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


#: Strength of identifier kinds, strongest first: a contact whose identifiers
#: point at different customers is attached to the strongest match.
KIND_STRENGTH = ("crm", "email", "phone", "social", "visitor", "handle")


def strength(identifier: Identifier) -> tuple[int, int, int]:
    """Sort key, strongest first: CRM ids, then verified identifiers, then the
    rest, each by kind in ``KIND_STRENGTH`` order (unknown kinds last)."""
    try:
        rank = KIND_STRENGTH.index(identifier.kind)
    except ValueError:
        rank = len(KIND_STRENGTH)
    return (identifier.kind != "crm", not identifier.verified, rank)


def normalize(
    identifier: Identifier,
    *,
    default_region: str,
    custom: Mapping[str, bool] | None = None,
) -> Identifier | None:
    """The normalized identifier, or ``None`` when nothing usable remains.

    ``custom`` maps declared custom kinds to "case-insensitive"; without it any
    kind is accepted as trimmed text."""
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
    elif kind in ("crm", "visitor"):
        value = raw.strip() or None
    elif custom is not None and kind not in custom:
        value = None
    else:
        value = raw.strip() or None
        if value and custom and custom.get(kind):
            value = value.casefold()
    if value is None or len(value) > IDENTIFIER_VALUE_MAX:
        return None
    if value == raw and kind == identifier.kind:
        return identifier  # already normalized: the same object (compared by identity)
    return trusted(Identifier, {"kind": kind, "value": value, "verified": identifier.verified})


def normalize_all(
    identifiers: tuple[Identifier, ...],
    *,
    default_region: str,
    custom: Mapping[str, bool] | None = None,
) -> tuple[Identifier, ...]:
    """Normalize and de-duplicate, keeping the first (kind, value) seen.
    Identifiers already normalized and distinct are handed back as they are
    (the same tuple: the caller sees by identity that nothing changed)."""
    seen: dict[tuple[str, str], Identifier] = {}
    same = True
    for identifier in identifiers:
        norm = normalize(identifier, default_region=default_region, custom=custom)
        if norm is None:
            same = False
            continue
        key = (norm.kind, norm.value)
        if key not in seen or (norm.verified and not seen[key].verified):
            seen[key] = norm
        same = same and norm is identifier
    if same and len(seen) == len(identifiers):
        return identifiers
    return tuple(seen.values())


@dataclass(frozen=True)
class Normalizer:
    """The configured normalization: default phone region and custom kinds."""

    default_region: str = "US"
    #: declared custom kind -> case-insensitive
    custom: Mapping[str, bool] = field(default_factory=dict)

    def one(self, identifier: Identifier) -> Identifier | None:
        return normalize(identifier, default_region=self.default_region, custom=self.custom)

    def all(self, identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
        return normalize_all(identifiers, default_region=self.default_region, custom=self.custom)


def normalize_given(
    given: list[tuple[str, Identifier]], normalizer: Normalizer
) -> tuple[tuple[Identifier, ...], list[dict[str, str]]]:
    """Normalize identifiers named by the field they came from: the valid ones
    (deduplicated, strongest first) and an error per invalid one."""
    found: dict[tuple[str, str], Identifier] = {}
    errors: list[dict[str, str]] = []
    for where, ident in given:
        norm = normalizer.one(ident)
        if norm is None:
            known = ident.kind in normalizer.custom or not normalizer.custom
            reason = (
                f"not a valid {ident.kind}" if known else f"unknown identifier kind {ident.kind!r}"
            )
            errors.append({"field": where, "reason": reason})
        else:
            found.setdefault((norm.kind, norm.value), norm)
    return tuple(sorted(found.values(), key=strength)), errors


def configured(settings: IdentitySettings) -> Normalizer:
    """The normalization the ``identity`` settings ask for."""
    custom = {k: False for k in BUILTIN_KINDS} | {
        k.name: k.case_insensitive for k in settings.kinds
    }
    return Normalizer(settings.default_region, custom)
