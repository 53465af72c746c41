"""Customer recognition in the database: resolve a contact's identifiers to one
customer and read the context the rules see, in one round trip."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from router.models import CustomerContext, Decision, Identifier, LastContact, uuid7

#: Strength of identifier kinds, strongest first: a contact whose identifiers
#: point at different customers is attached to the strongest match.
KIND_STRENGTH = ("crm", "email", "phone", "social", "visitor", "handle")


def strength(identifier: Identifier) -> tuple[int, int]:
    try:
        rank = KIND_STRENGTH.index(identifier.kind)
    except ValueError:
        rank = len(KIND_STRENGTH)
    return (0 if identifier.verified else 1, rank) if identifier.kind != "crm" else (-1, 0)


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


_RESOLVE = "SELECT * FROM resolve_contact($1, $2, $3, $4, $5, $6, $7)"


async def resolve(
    con: asyncpg.Connection | asyncpg.Pool,
    *,
    adapter: str,
    external_id: str,
    identifiers: tuple[Identifier, ...],
    at: datetime,
) -> Earlier | Resolved:
    ordered = sorted(identifiers, key=strength)
    row = await con.fetchrow(
        _RESOLVE,
        adapter,
        external_id,
        [i.kind for i in ordered],
        [i.value for i in ordered],
        [i.verified for i in ordered],
        uuid7(at),
        at,
    )
    if row is not None and row["dup_contact_id"] is not None:
        return Earlier(
            contact_id=row["dup_contact_id"],
            customer_id=row["dup_customer_id"],
            decision=Decision.model_validate(row["dup_decision"]),
        )
    if row is None:
        return Resolved(context=CustomerContext(customer_id=uuid7(at), known=False), anonymous=True)
    last = None
    if row["last_at"] is not None:
        last = LastContact(at=row["last_at"], channel=row["last_channel"], queue=row["last_queue"])
    context = CustomerContext(
        customer_id=row["customer_id"],
        known=row["known"],
        name=row["name"],
        tier=row["tier"],
        language=row["language"],
        segment=row["segment"],
        attributes=row["attributes"] or {},
        contacts_24h=row["contacts_24h"],
        contacts_7d=row["contacts_7d"],
        last=last,
    )
    return Resolved(context=context, anonymous=False)
