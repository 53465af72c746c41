"""The customer profiles a CRM keeps: create or update one from its
identities (normalized here, strongest first), merge two customers, erase
one, record journeys, list identity conflicts. The SQL is the store's; the
errors raised name the fields of the request that caused them."""

from __future__ import annotations

import uuid
from datetime import datetime

from router.bodies import JourneyIn, ProfileIn
from router.errors import CustomerGone, FieldError, Gone, InvalidBody, RequestError, UnknownCustomer
from router.models import Identifier
from router.recognition.identity import Normalizer, normalize_given
from router.store import Store
from router.store.profiles import Conflict, JourneyRow, Profile, Upserted


class Profiles:
    def __init__(self, store: Store, normalizer: Normalizer) -> None:
        self._store = store
        self.normalizer = normalizer

    def identities(self, body: ProfileIn) -> tuple[Identifier, ...]:
        """The body's identities normalized, strongest first; ``InvalidBody``
        naming any invalid one."""
        out, bad = normalize_given(body.given_identifiers(), self.normalizer)
        if bad:
            raise InvalidBody("an identity is not valid", fields=[FieldError(**b) for b in bad])
        return out

    async def show(self, customer_id: uuid.UUID) -> Profile:
        """The live customer; ``UnknownCustomer`` or ``CustomerGone`` otherwise."""
        return await self._store.customers.profile(customer_id)

    async def require_live(self, customer_id: uuid.UUID) -> None:
        """Nothing if the customer is live; ``UnknownCustomer`` or ``CustomerGone``."""
        if not await self._store.customers.live(customer_id):
            raise UnknownCustomer(customer_id)

    async def upsert(self, *, actor: str, body: ProfileIn) -> Upserted:
        """Create the customer of the body's strongest known identity, or update it."""
        identities = self.identities(body)
        if not identities:
            raise RequestError(
                "a customer needs a crm_id or at least one identity",
                fields=[FieldError("crm_id", "give crm_id or identities")],
            )
        return await self._store.customers.upsert(
            actor=actor, identities=identities, profile=body.profile()
        )

    async def update(self, *, actor: str, customer_id: uuid.UUID, body: ProfileIn) -> Upserted:
        """Update the profile of ``customer_id`` and link the body's identities."""
        return await self._store.customers.upsert(
            actor=actor,
            identities=self.identities(body),
            profile=body.profile(),
            customer_id=customer_id,
        )

    async def merge(self, *, actor: str, into: uuid.UUID, source: uuid.UUID) -> dict[str, int]:
        """Move ``source``'s identities, history and journeys to ``into``; how
        many of each moved."""
        if source == into:
            raise RequestError(
                "cannot merge a customer into itself",
                fields=[FieldError("from", "same as the target customer")],
            )
        try:
            return await self._store.customers.merge(actor=actor, into=into, source=source)
        except CustomerGone as exc:
            raise Gone(
                f"a customer of the merge is gone: {exc.message}",
                fields=[FieldError("from", "merged or erased")],
            ) from None
        except UnknownCustomer as exc:
            if exc.customer_id == source:
                raise UnknownCustomer(source, field="from") from None
            raise

    async def erase(self, *, actor: str, customer_id: uuid.UUID) -> dict[str, int]:
        """Remove the customer's personal data (``Store.customers.erase``)."""
        return await self._store.customers.erase(actor=actor, customer_id=customer_id)

    async def put_journey(
        self, *, actor: str, customer_id: uuid.UUID, ref: str, body: JourneyIn, at: datetime
    ) -> JourneyRow:
        return await self._store.customers.put_journey(
            actor=actor,
            customer_id=customer_id,
            ref=ref,
            type_=body.type,
            step=body.step,
            status=body.status,
            data=body.data,
            at=at,
        )

    async def conflicts(self, *, status: str, after: int | None, limit: int) -> list[Conflict]:
        """Identity conflicts in ``status`` after the cursor ``after``."""
        return await self._store.customers.conflicts(status=status, after=after, limit=limit)
