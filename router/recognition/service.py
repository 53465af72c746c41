"""``Recognition``: the service the pipeline and the customer endpoints use,
built once per process on the store."""

from __future__ import annotations

from collections.abc import Sequence

from router.recognition import resolution
from router.recognition.identity import Normalizer
from router.recognition.profiles import Profiles
from router.recognition.provider import ContextProvider
from router.recognition.resolution import Lookup, Recognized
from router.store import EarlierDelivery, Store


class Recognition:
    """Who a contact is: identifier normalization (``normalizer``), resolution
    to a customer with the context the rules see (``resolve_many``), the
    optional external context provider (``provider``), and the profiles a CRM
    keeps (``profiles``)."""

    def __init__(
        self, store: Store, *, normalizer: Normalizer, provider: ContextProvider | None = None
    ) -> None:
        self._store = store
        self.normalizer = normalizer
        self.provider = provider
        self.profiles = Profiles(store, normalizer)

    async def resolve_many(self, lookups: Sequence[Lookup]) -> list[EarlierDelivery | Recognized]:
        """The earlier delivery of each contact, or its customer and context, in
        one round trip (the resolve batcher's flush)."""
        return await resolution.resolve_many(self._store.customers.resolve_many, lookups)
