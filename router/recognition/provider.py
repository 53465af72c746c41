"""The optional external context provider: an HTTP lookup to a CRM at routing
time, with a hard timeout, a TTL cache and a circuit breaker. When it is slow,
failing or open-circuited the contact is routed with the context we have and
marked degraded; a lookup never fails a contact."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from string import Formatter
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import structlog

from router.metrics import Metrics
from router.models import Contact, CustomerContext, scrub
from router.recognition.breaker import CircuitBreaker
from router.settings import ContextProviderSettings

log = structlog.get_logger("omniroute.context")

PROFILE = ("name", "tier", "language", "segment")


def lookup_url(template: str, contact: Contact, context: CustomerContext) -> str | None:
    """The URL for this contact, or ``None`` when a placeholder has no value."""
    values: dict[str, str] = {"customer_id": str(context.customer_id)}
    for ident in contact.identifiers:
        values.setdefault(ident.kind, ident.value)
    names = [name for _, name, _, _ in Formatter().parse(template) if name]
    if any(name not in values for name in names):
        return None
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


def merge(context: CustomerContext, found: dict[str, Any]) -> CustomerContext:
    """The context with the provider's profile fields and attributes laid over it."""
    updates: dict[str, Any] = {
        k: found[k] for k in PROFILE if isinstance(found.get(k), str) and found[k]
    }
    if isinstance(found.get("attributes"), dict):
        updates["attributes"] = {**context.attributes, **found["attributes"]}
    return context.model_copy(update=updates)


class ContextProvider:
    def __init__(self, settings: ContextProviderSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds)
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers=self.settings.resolved_headers(),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_ms / 1000),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _cached(self, url: str) -> dict[str, Any] | None:
        hit = self._cache.get(url)
        if hit is None or hit[0] < time.monotonic():
            return None
        self._cache.move_to_end(url)
        return hit[1]

    def _store(self, url: str, value: dict[str, Any]) -> None:
        self._cache[url] = (time.monotonic() + self.settings.cache_ttl_seconds, value)
        self._cache.move_to_end(url)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    async def enrich(self, contact: Contact, context: CustomerContext) -> CustomerContext:
        url = lookup_url(self.settings.url, contact, context)
        if url is None or self._session is None:
            return context
        cached = self._cached(url)
        if cached is not None:
            self.metrics.context_lookups.labels(result="cached").inc()
            return merge(context, cached)
        if not self.breaker.allow():
            self.metrics.context_lookups.labels(result="circuit_open").inc()
            return context.model_copy(update={"degraded": True})
        try:
            async with asyncio.timeout(self.settings.timeout_ms / 1000):
                async with self._session.get(url) as response:
                    if response.status == 404:
                        found: dict[str, Any] = {}
                    else:
                        response.raise_for_status()
                        body = orjson.loads(await response.read())
                        # what PostgreSQL cannot store must not fail the contact
                        found = scrub(body) if isinstance(body, dict) else {}
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, OSError) as exc:
            self.breaker.failure()
            result = "timeout" if isinstance(exc, TimeoutError) else "error"
            self.metrics.context_lookups.labels(result=result).inc()
            log.warning("context_lookup_failed", result=result, breaker=self.breaker.state)
            return context.model_copy(update={"degraded": True})
        self.breaker.success()
        self.metrics.context_lookups.labels(result="ok").inc()
        self._store(url, found)
        return merge(context, found)
