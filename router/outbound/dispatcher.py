"""The dispatcher every instance runs (a job of ``router.runtime``): it
claims due outbox rows, sends them, and records the outcome.

* **Claims** are per destination and never more than the destination's free
  slots (``concurrency`` minus the attempts in flight), so a slow or dead
  destination holds only its own slots, and routing none: dispatch is out of
  the request path and its database work holds a few pool connections at
  most (``Store.outbox``).
* **Leases**: a claim moves the row's due time past the attempt's timeout;
  the claims of an instance killed mid-attempt are claimed again once their
  lease runs out, and sent with the same ``webhook-id`` (at least once).
* **Wake-up**: a connection of its own listens for the outbox trigger's
  notification, so a committed event is claimed at once; without one (the
  database away, a notification lost) a look every ``poll_interval`` seconds.
* **Retries**: exponential backoff with jitter from ``retry_base`` up to
  ``retry_max_delay``, until ``retry_horizon`` seconds after the event was
  written (or retried by hand); then the row is dead (``failed``), listed by
  the API and retried by hand from there. For the provider kinds a 4xx
  other than 429 is dead at once (``outgoing.final``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from router.errors import StoreUnavailable
from router.jobs import keep_listening
from router.metrics import Metrics
from router.outbound.outgoing import build, final
from router.settings import DeliverySettings, DestinationSettings
from router.store import Store
from router.store.deliveries import Claimed

log = structlog.get_logger("omniroute.deliveries")

#: A lease outlasts the attempt's timeout by this much (the mark after it).
LEASE_MARGIN = 5.0
#: Seconds between attempts to listen again after the listening connection was lost.


def backoff(attempts: int, *, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones:
    ``base * 2**(attempts-1)`` up to ``cap``, of which a random half is jitter."""
    delay = min(cap, base * 2.0 ** min(attempts - 1, 62))
    jitter: float = (rand or random).uniform(0, delay / 2)
    return delay / 2 + jitter


class Dispatcher:
    """Delivers the outbox's events to the configured destinations."""

    def __init__(
        self,
        store: Store,
        destinations: list[DestinationSettings],
        settings: DeliverySettings,
        metrics: Metrics,
        session: aiohttp.ClientSession,
    ) -> None:
        self._store = store
        self._destinations = destinations
        self._settings = settings
        self._metrics = metrics
        self._session = session
        self._inflight = {d.name: 0 for d in destinations}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set (a watching job of the runner).
        Attempts in flight when it stops are abandoned: their leases run out
        and any instance sends them again."""
        listener = asyncio.create_task(self._listen(stop), name="deliveries:listen")
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.tick()
                except StoreUnavailable as exc:
                    log.warning("dispatch_failed", error=str(exc))
                except Exception:  # the dispatcher must outlive any one failure
                    log.exception("dispatch_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
        finally:
            listener.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(listener, *self._tasks, return_exceptions=True)

    async def tick(self) -> int:
        """Claim what is due for every destination with free slots and start
        sending it; the number of rows claimed."""
        claimed = 0
        for dest in self._destinations:
            free = dest.concurrency - self._inflight[dest.name]
            if free <= 0:
                continue
            rows = await self._store.outbox.claim(
                dest.name, limit=free, lease=dest.timeout + LEASE_MARGIN
            )
            for row in rows:
                self._inflight[dest.name] += 1
                task = asyncio.create_task(self._attempt(dest, row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            claimed += len(rows)
        return claimed

    async def _listen(self, stop: asyncio.Event) -> None:
        await keep_listening(self._store.outbox.listening, self._wake, stop, name="deliveries")

    async def _attempt(self, dest: DestinationSettings, row: Claimed) -> None:
        try:
            error, dead = await self._send(dest, row)
            await self._record(dest, row, error, dead=dead)
        except StoreUnavailable as exc:
            # the row stays leased; once the lease runs out it is sent again
            log.warning("delivery_mark_failed", destination=dest.name, error=str(exc))
        finally:
            self._inflight[dest.name] -= 1
            self._wake.set()  # a slot is free

    async def _send(self, dest: DestinationSettings, row: Claimed) -> tuple[str | None, bool]:
        """Send one attempt: ``(None, _)`` on a 2xx answer (or nothing to
        send), else what went wrong and whether that is final (no retry)."""
        try:
            request = build(dest, str(row.delivery_id), row.payload)
        except (KeyError, TypeError, ValueError) as exc:  # an event this kind cannot send
            return f"cannot make the request: {type(exc).__name__}: {exc}"[:300], True
        if request is None:
            log.info("delivery_skipped", destination=dest.name, delivery_id=str(row.delivery_id))
            return None, False
        try:
            async with self._session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=dest.timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None, False
                return f"HTTP {response.status}", final(dest, response.status)
        except TimeoutError:
            return f"no answer within {dest.timeout:g} s", False
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"[:300], False

    async def _record(
        self, dest: DestinationSettings, row: Claimed, error: str | None, *, dead: bool = False
    ) -> None:
        m, name = self._metrics, dest.name
        if error is None:
            m.delivery_attempts.labels(name, "delivered").inc()
            if await self._store.outbox.delivered(row.delivery_id, row.attempts):
                lag = (datetime.now(UTC) - row.created_at).total_seconds()
                m.delivery_lag.labels(name).observe(max(0.0, lag))
            return
        m.delivery_attempts.labels(name, "error").inc()
        s = self._settings
        delay = backoff(row.attempts, base=s.retry_base, cap=s.retry_max_delay)
        horizon = row.horizon_from + timedelta(seconds=s.retry_horizon)
        in_time = datetime.now(UTC) + timedelta(seconds=delay) <= horizon
        retry_in = delay if in_time and not dead else None
        await self._store.outbox.failed(
            row.delivery_id, row.attempts, error=error, retry_in=retry_in
        )
        if retry_in is None:
            m.deliveries_failed.labels(name).inc()
            log.warning(
                "delivery_dead",
                destination=name,
                delivery_id=str(row.delivery_id),
                attempts=row.attempts,
                error=error,
            )
        else:
            log.info(
                "delivery_retry",
                destination=name,
                delivery_id=str(row.delivery_id),
                attempts=row.attempts,
                retry_in=round(retry_in, 1),
                error=error,
            )

    async def purge(self) -> None:
        """Delete the delivered events past ``keep_delivered_days`` (a periodic job)."""
        deleted = await self._store.outbox.purge(
            older_than=self._settings.keep_delivered_days * 86400
        )
        if deleted:
            log.info("deliveries_purged", deleted=deleted)

    async def refresh_pending(self) -> None:
        """Set the pending gauge per destination (a periodic job)."""
        counts = await self._store.outbox.pending()
        for dest in self._destinations:
            self._metrics.deliveries_pending.labels(dest.name).set(counts.get(dest.name, 0))
