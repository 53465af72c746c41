"""Customer recognition in the database: resolve a contact's identifiers to one
customer and read the context the rules see, in one round trip."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from router.context import build_context
from router.models import Contact, CustomerContext, Decision, Identifier, uuid7

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
