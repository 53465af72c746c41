"""Resolution of concurrent contacts to their customers: the identifiers go to
the store strongest first, in one round trip per batch, and the context the
rules see is built here from the raw rows the store returns."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from router.models import Contact, CustomerContext, uuid7
from router.recognition.context import anonymous_context, build_context
from router.recognition.identity import strength
from router.store import EarlierDelivery, Resolution, ResolveKey


@dataclass(slots=True)
class Lookup:
    """One contact to resolve, with the id and time its record will have
    (never changed once made)."""

    adapter: str
    contact: Contact
    contact_id: uuid.UUID
    at: datetime


@dataclass(slots=True)
class Recognized:
    """A new contact's customer context (for an anonymous contact, a context
    of a customer nobody knows, under an id of its own) (never changed once made)."""

    context: CustomerContext
    anonymous: bool


#: The store's resolution of a batch (``Store.customers.resolve_many``).
Resolve = Callable[[Sequence[ResolveKey]], Awaitable[Sequence[EarlierDelivery | Resolution | None]]]


def key(lookup: Lookup) -> ResolveKey:
    contact = lookup.contact
    identifiers = contact.identifiers
    return ResolveKey(  # by position (a contact's every resolution): its fields' order
        lookup.adapter,
        contact.external_id,
        contact.thread_id,
        sorted(identifiers, key=strength) if len(identifiers) > 1 else [*identifiers],
        lookup.contact_id,
        lookup.at,
    )


def recognized(
    lookup: Lookup, found: EarlierDelivery | Resolution | None
) -> EarlierDelivery | Recognized:
    """What the pipeline gets for ``lookup`` from the store's answer ``found``."""
    if isinstance(found, EarlierDelivery):
        return found
    if found is None:  # no identifier: an anonymous contact
        return Recognized(context=anonymous_context(uuid7(lookup.at)), anonymous=True)
    context = build_context(
        found.customer_id,
        found.known,
        found.context,
        channel=lookup.contact.channel,
        at=lookup.at,
    )
    return Recognized(context=context, anonymous=False)


async def resolve_many(
    resolve: Resolve, lookups: Sequence[Lookup]
) -> list[EarlierDelivery | Recognized]:
    """The earlier delivery of each contact, or its customer and context: one
    call of ``resolve`` (one round trip) for the whole batch."""
    found = await resolve([key(x) for x in lookups])
    return [recognized(x, f) for x, f in zip(lookups, found, strict=True)]
