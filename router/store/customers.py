"""Customer recognition in the database: resolve a contact's identifiers to one
customer and read the context the rules see, in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from router.context import build_context
from router.identity import strength
from router.models import Contact, CustomerContext, Decision, uuid7


@dataclass(frozen=True, slots=True)
class Earlier:
    """The record of an earlier delivery with the same (adapter, external id)."""

    contact_id: uuid.UUID
    customer_id: uuid.UUID | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class Resolved:
    """A new contact's customer (``None`` for an anonymous contact) and context."""

    context: CustomerContext
    anonymous: bool


_RESOLVE = "SELECT * FROM resolve_contact($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_RESOLVE_MANY = "SELECT * FROM resolve_many($1::text::jsonb)"


@dataclass(frozen=True, slots=True)
class Lookup:
    """One contact to resolve."""

    adapter: str
    contact: Contact
    contact_id: uuid.UUID
    at: datetime


def _outcome(lookup: Lookup, row: asyncpg.Record | None) -> Earlier | Resolved:
    if row is not None and row["dup_contact_id"] is not None:
        return Earlier(
            contact_id=row["dup_contact_id"],
            customer_id=row["dup_customer_id"],
            decision=Decision.model_validate(row["dup_decision"]),
        )
    if row is None:  # no identifier: an anonymous contact
        anonymous = CustomerContext(customer_id=uuid7(lookup.at), known=False)
        return Resolved(context=anonymous, anonymous=True)
    context = build_context(
        row["customer_id"],
        row["known"],
        row["context"],
        channel=lookup.contact.channel,
        at=lookup.at,
    )
    return Resolved(context=context, anonymous=False)


async def resolve(
    con: asyncpg.Connection | asyncpg.Pool,
    *,
    adapter: str,
    contact: Contact,
    contact_id: uuid.UUID,
    at: datetime,
) -> Earlier | Resolved:
    """The earlier delivery of this contact, or its customer and context."""
    ordered = sorted(contact.identifiers, key=strength)
    row = await con.fetchrow(
        _RESOLVE,
        adapter,
        contact.external_id,
        [i.kind for i in ordered],
        [i.value for i in ordered],
        [i.verified for i in ordered],
        uuid7(at),
        contact_id,
        at,
        contact.thread_id,
    )
    return _outcome(Lookup(adapter, contact, contact_id, at), row)


async def resolve_many(
    con: asyncpg.Connection | asyncpg.Pool, lookups: Sequence[Lookup]
) -> list[Earlier | Resolved]:
    """``resolve`` for many contacts in one statement and one transaction."""
    batch = []
    for x in lookups:
        ordered = sorted(x.contact.identifiers, key=strength)
        batch.append(
            {
                "a": x.adapter,
                "e": x.contact.external_id,
                "k": [i.kind for i in ordered],
                "v": [i.value for i in ordered],
                "f": [i.verified for i in ordered],
                "n": str(uuid7(x.at)),
                "c": str(x.contact_id),
                "t": x.at.isoformat(),
                "h": x.contact.thread_id,
            }
        )
    rows = {r["idx"]: r for r in await con.fetch(_RESOLVE_MANY, orjson.dumps(batch).decode())}
    return [_outcome(x, rows.get(n)) for n, x in enumerate(lookups)]
