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

from router.models import Decision, Identifier, uuid7
from router.store.records import EarlierDelivery


@dataclass(slots=True)
class ResolveKey:
    """One contact to resolve: its delivery key, its identifiers (strongest
    first) and the id and time of its record-to-be (never changed once made)."""

    adapter: str
    external_id: str
    thread_id: str | None
    identifiers: Sequence[Identifier]
    contact_id: uuid.UUID
    at: datetime


@dataclass(slots=True)
class Resolution:
    """The customer a new contact belongs to, and the context as the resolve
    function returns it (JSON: profile, counts per channel, last contact,
    open conversations, journeys) (never changed once made)."""

    customer_id: uuid.UUID
    known: bool
    context: dict[str, Any]


#: An earlier delivery, the new contact's customer, or ``None`` for a contact
#: without identifiers (anonymous).
Resolved = EarlierDelivery | Resolution | None

_RESOLVE_MANY = """
SELECT * FROM resolve_batch($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[],
                           $6::timestamptz[], $7::int[], $8::text[], $9::text[], $10::bool[])
"""


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
    # one element per contact, then one per identifier (strongest first) with
    # the place of its contact in the batch: arrays, nothing to parse as JSON
    of = [n for n, x in enumerate(keys) for _ in x.identifiers]
    ids = [i for x in keys for i in x.identifiers]
    rows = await con.fetch(
        _RESOLVE_MANY,
        [x.adapter for x in keys],
        [x.external_id for x in keys],
        [x.thread_id for x in keys],
        [uuid7(x.at) for x in keys],
        [x.contact_id for x in keys],
        [x.at for x in keys],
        of,
        [i.kind for i in ids],
        [i.value for i in ids],
        [i.verified for i in ids],
    )
    found = {r["idx"]: r for r in rows}
    return [_outcome(found.get(n)) for n in range(len(keys))]
