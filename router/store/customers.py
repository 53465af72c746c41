"""Customer recognition in the database: resolve a contact's identifiers to one
customer and read the context the rules see, in one round trip."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

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


async def resolve(
    con: asyncpg.Connection | asyncpg.Pool,
    *,
    adapter: str,
    contact: Contact,
    contact_id: uuid.UUID,
    at: datetime,
) -> Earlier | Resolved:
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
    if row is not None and row["dup_contact_id"] is not None:
        return Earlier(
            contact_id=row["dup_contact_id"],
            customer_id=row["dup_customer_id"],
            decision=Decision.model_validate(row["dup_decision"]),
        )
    if row is None:
        return Resolved(context=CustomerContext(customer_id=uuid7(at), known=False), anonymous=True)
    context = build_context(
        row["customer_id"], row["known"], row["context"], channel=contact.channel, at=at
    )
    return Resolved(context=context, anonymous=False)
