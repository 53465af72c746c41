"""What erasure takes out of a contact that carries the erased person's
identifiers but is attached to another customer: pure functions over the
stored JSON (the store finds the records and writes them back).

The contact loses the person's identifiers and its sender name; every other
string of the contact, the context snapshot and the rule trace loses each
occurrence of the person's identifier values and names (replaced by
``[erased]``); a thread id that holds one is dropped. The external id (the
provider's message id, the idempotency key) is kept, as it is for the
person's own records."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MARK = "[erased]"
#: Shorter strings, and bare user ids / digits derived from identifiers
#: shorter than ``MIN_DERIVED``, are not looked for inside texts: too likely
#: to match something else.
MIN_NEEDLE = 3
MIN_DERIVED = 5


def needles(identifiers: Iterable[tuple[str, str]], names: Iterable[str | None]) -> list[str]:
    """The strings that identify the person inside free text: each identifier
    value (a phone number also without its ``+``, a ``platform:id`` also as
    the bare id) and each name."""
    found: set[str] = set()
    for kind, value in identifiers:
        found.add(value)
        derived = ""
        if kind == "phone":
            derived = value.lstrip("+")
        elif kind in ("social", "handle") and ":" in value:
            derived = value.split(":", 1)[1]
        if len(derived) >= MIN_DERIVED:
            found.add(derived)
    found.update(n.strip() for n in names if n)
    return sorted((n for n in found if len(n) >= MIN_NEEDLE), key=len, reverse=True)


def pattern(strings: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern of the strings, each as a whole word (not
    inside a longer run of letters, digits or ``_``)."""
    alternatives = [re.escape(s) for s in sorted(set(strings), key=len, reverse=True) if s]
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def redact(value: Any, found: re.Pattern[str] | None) -> Any:
    """A JSON-like value with every match of ``found`` in its strings (keys
    too) replaced by ``[erased]``."""
    if found is None:
        return value
    if isinstance(value, str):
        return found.sub(MARK, value)
    if isinstance(value, dict):
        return {found.sub(MARK, k): redact(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, found) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Person:
    """The erased person as erasure looks for them: identifiers and names."""

    identifiers: frozenset[tuple[str, str]]
    names: tuple[str, ...]

    @property
    def values(self) -> list[str]:
        """The identifier values, as the index on the snapshots holds them."""
        return sorted({value for _, value in self.identifiers})


@dataclass(frozen=True, slots=True)
class Redacted:
    contact: dict[str, Any]
    context: Any
    trace: Any
    thread_id: str | None


def redact_record(person: Person, row: Mapping[str, Any]) -> Redacted:
    """The record (``contact``, ``context``, ``trace``, ``thread_id``) without
    the person's identifiers, its sender name, and the person's identifier
    values and names wherever else they occur."""
    contact = dict(row["contact"])
    sender = contact.pop("sender_name", None)
    found = pattern(
        needles(person.identifiers, (*person.names, sender if isinstance(sender, str) else None))
    )
    identifiers = [
        i
        for i in contact.get("identifiers") or []
        if not (isinstance(i, dict) and (i.get("kind"), i.get("value")) in person.identifiers)
    ]
    kept = {"external_id": contact.get("external_id"), "identifiers": identifiers}
    contact = {**redact(contact, found), **kept}
    thread_id = row["thread_id"]
    if thread_id is not None and found is not None and found.search(thread_id):
        thread_id = None
    contact["thread_id"] = thread_id
    contact["redacted"] = True
    return Redacted(
        contact=contact,
        context=redact(row["context"], found),
        trace=redact(row["trace"], found),
        thread_id=thread_id,
    )
