"""Customer resolution in the database: a contact's identifiers resolved to one
customer (created when none matches), and the raw context the rules will see,
read in the same round trip -- or the earlier delivery of the same contact.

The caller (``router/recognition``) orders the identifiers, strongest first,
and builds the context from what is returned here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from router.models import Decision, Identifier, uuid7
from router.store.records import EarlierDelivery


@dataclass(frozen=True, slots=True)
class ResolveKey:
    """One contact to resolve: its delivery key, its identifiers (strongest
    first) and the id and time of its record-to-be."""

    adapter: str
    external_id: str
    thread_id: str | None
    identifiers: Sequence[Identifier]
    contact_id: uuid.UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    """The customer a new contact belongs to, and the context as the resolve
    function returns it (JSON: profile, counts per channel, last contact,
    open conversations, journeys)."""

    customer_id: uuid.UUID
    known: bool
    context: dict[str, Any]


#: An earlier delivery, the new contact's customer, or ``None`` for a contact
#: without identifiers (anonymous).
Resolved = EarlierDelivery | Resolution | None

_RESOLVE_MANY = "SELECT * FROM resolve_many($1::text::jsonb)"


def _outcome(row: asyncpg.Record | None) -> Resolved:
    if row is None:
        return None
    if row["dup_contact_id"] is not None:
        return EarlierDelivery(
            contact_id=row["dup_contact_id"],
            customer_id=row["dup_customer_id"],
            decision=Decision.model_validate(row["dup_decision"]),
        )
    return Resolution(row["customer_id"], row["known"], row["context"])


async def resolve_many(
    con: asyncpg.Connection | asyncpg.Pool, keys: Sequence[ResolveKey]
) -> list[Resolved]:
    """Resolve many contacts in one statement and one transaction."""
    batch = [
        {
            "a": x.adapter,
            "e": x.external_id,
            "k": [i.kind for i in x.identifiers],
            "v": [i.value for i in x.identifiers],
            "f": [i.verified for i in x.identifiers],
            "n": str(uuid7(x.at)),
            "c": str(x.contact_id),
            "t": x.at.isoformat(),
            "h": x.thread_id,
        }
        for x in keys
    ]
    rows = {r["idx"]: r for r in await con.fetch(_RESOLVE_MANY, orjson.dumps(batch).decode())}
    return [_outcome(rows.get(n)) for n in range(len(keys))]
