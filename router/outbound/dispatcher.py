"""The dispatcher every instance runs (a job of ``router.runtime``): it
claims due outbox rows, sends them, and records the outcome.

* **Claims** are per destination, a batch per statement: up to
  ``PREFETCH`` times the destination's ``concurrency``, and only once what
  this instance holds of it runs low. The claimed rows wait in a local queue
  and are sent ``concurrency`` at a time at most, so a slow or dead
  destination holds only its own slots, and routing none: dispatch is out of
  the request path and its database work holds a few pool connections at
  most (``Store.outbox``).
* **Attempts**: a task per slot in use, not per attempt: once it has an
  answer, it hands the outcome to the marks and goes on with the next
  claimed row of its destination while the slot is still allowed.
* **Marks**: the outcomes of finished attempts are written together, one
  statement per batch of them (a ``Batcher`` that lets a batch wait up to
  ``MARK_LINGER`` for more), fenced by the attempt number. An attempt frees
  its destination's slot once it has the answer: the mark holds none (what
  follows the mark, the lag metric and the retry's log line, is a callback
  of its future).
* **Leases**: a claim leases the rows (``leased_until``, in no index: a HOT
  update, ``router/store/deliveries.py``) for the time the batch can
  take (its waves of ``concurrency`` attempts, each within the timeout) plus
  a margin; the claims of an instance killed mid-attempt are claimed again
  once their lease runs out, and sent with the same ``webhook-id`` (at
  least once).
* **Wake-up**: a connection of its own listens for the outbox trigger's
  notification (one per committed transaction), so a committed event is
  claimed at once; a destination whose last claim found less than it asked
  for is not asked again until the next notification or look; without one
  (the database away, a notification lost) a look every ``poll_interval``
  seconds.
* **Retries**: exponential backoff with jitter from ``retry_base`` up to
  ``retry_max_delay``, until ``retry_horizon`` seconds after the event was
  written (or retried by hand); then the row is dead (``failed``), listed by
  the API and retried by hand from there. For the provider kinds a 4xx
  other than 429 is dead at once (``outgoing.final``).
* **Pauses**: a destination whose attempts keep failing is paused
  (``circuit``): its queued claims are given back, nothing is sent to it
  until the pause ends, then one probe decides.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import structlog

from router.errors import StoreUnavailable
from router.jobs import keep_listening
from router.metrics import Metrics
from router.outbound.circuit import Circuit, State
from router.outbound.client import Client, ClientError
from router.outbound.outgoing import build, final
from router.settings import DeliverySettings, DestinationSettings
from router.store import Store
from router.store.batching import Batcher
from router.store.deliveries import Claimed, Mark

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

log = structlog.get_logger("omniroute.deliveries")

#: A lease outlasts the time its batch can take by this much (the mark after it).
LEASE_MARGIN = 5.0
#: A claim takes up to this many times the destination's concurrency.
PREFETCH = 4
#: Outcomes written per statement at most.
MARK_BATCH = 256
#: Seconds a batch of outcomes waits for more before it is written (unless
#: whole): one statement for many events instead of a few each. Far within
#: the lease's margin; it delays the bookkeeping only, not the event.
MARK_LINGER = 0.05


def backoff(attempts: int, *, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones:
    ``base * 2**(attempts-1)`` up to ``cap``, of which a random half is jitter."""
    delay = min(cap, base * 2.0 ** min(attempts - 1, 62))
    jitter: float = (rand or random).uniform(0, delay / 2)
    return delay / 2 + jitter


def lease(dest: DestinationSettings, *, queued: int, claiming: int) -> float:
    """Seconds a claim of ``claiming`` rows behind ``queued`` ones holds them:
    the waves of ``concurrency`` attempts before the last one starts, the
    attempts in flight now, and its own, each within the timeout."""
    waves = math.ceil((queued + claiming) / dest.concurrency) + 1
    return waves * dest.timeout + LEASE_MARGIN


@dataclass(frozen=True, slots=True)
class Paused:
    """A destination's circuit as the API and metrics show it."""

    destination: str
    state: State
    failures: int
    paused_until: datetime | None


@dataclass(slots=True)
class _Lane:
    """One destination's work in this instance."""

    dest: DestinationSettings
    circuit: Circuit
    #: made once per destination, not per attempt: the destination's metrics
    delivered: Counter
    errors: Counter
    failed: Counter
    lag: Histogram
    queue: deque[Claimed] = field(default_factory=deque)
    inflight: int = 0
    #: something may be due that is not claimed yet (cleared by a short claim)
    fresh: bool = True
    #: notifications and looks so far: a short claim clears ``fresh`` only
    #: when none came while it ran (rows committed after its snapshot)
    news: int = 0

    def wanted(self, now: float) -> int:
        """Rows to claim now (0: none)."""
        slots = self.circuit.slots(now, self.dest.concurrency)
        if slots < self.dest.concurrency:  # paused, or one probe
            return 1 if slots and not self.queue and not self.inflight else 0
        if not self.fresh or len(self.queue) >= self.dest.concurrency:
            return 0
        return PREFETCH * self.dest.concurrency - len(self.queue) - self.inflight


class _Signal(asyncio.Event):
    """What the listener sets at a notification: calls ``also`` instead
    (new rows: every lane may claim again, and the dispatcher wakes)."""

    def __init__(self, also: Callable[[], None]) -> None:
        super().__init__()
        self._also = also

    def set(self) -> None:
        self._also()


class Dispatcher:
    """Delivers the outbox's events to the configured destinations."""

    def __init__(
        self,
        store: Store,
        destinations: list[DestinationSettings],
        settings: DeliverySettings,
        metrics: Metrics,
        client: Client,
    ) -> None:
        self._store = store
        self._destinations = destinations
        self._settings = settings
        self._metrics = metrics
        self._client = client
        self._lanes = {d.name: self._lane(d) for d in destinations}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._marks: Batcher[Mark, bool] = Batcher(
            "deliveries",
            store.outbox.mark,
            max_batch=MARK_BATCH,
            max_inflight=2,
            linger=MARK_LINGER,
        )

    def _lane(self, dest: DestinationSettings) -> _Lane:
        s, m, name = self._settings, self._metrics, dest.name
        return _Lane(
            dest,
            Circuit(s.pause_after, s.pause_base, s.pause_max),
            m.delivery_attempts.labels(name, "delivered"),
            m.delivery_attempts.labels(name, "error"),
            m.deliveries_failed.labels(name),
            m.delivery_lag.labels(name),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set (a watching job of the runner).
        Attempts in flight when it stops are abandoned: their leases run out
        and any instance sends them again."""
        notified = _Signal(self._notified)
        listener = asyncio.create_task(self._listen(notified, stop), name="deliveries:listen")
        self._marks.start()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.tick()
                except StoreUnavailable as exc:
                    log.warning("dispatch_failed", error=str(exc))
                except Exception:  # the dispatcher must outlive any one failure
                    log.exception("dispatch_failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), self._next_look())
                except TimeoutError:
                    self._new_rows()  # a look: rows may have come due (retries, leases)
        finally:
            listener.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(listener, *self._tasks, return_exceptions=True)
            await self._marks.stop()

    def _next_look(self) -> float:
        """Seconds until the next look without a notification: the poll
        interval, or sooner when a pause ends before."""
        now, wait = time.time(), self._settings.poll_interval
        for lane in self._lanes.values():
            if lane.circuit.state(now) == "open":
                wait = min(wait, max(0.01, lane.circuit.paused_until - now))
        return wait

    def _new_rows(self) -> None:
        for lane in self._lanes.values():
            lane.fresh = True
            lane.news += 1

    def _notified(self) -> None:
        self._new_rows()
        self._wake.set()

    async def tick(self) -> int:
        """Claim what is due for every destination that wants more and start
        sending it; the number of rows claimed."""
        claimed = 0
        now = time.time()
        for lane in self._lanes.values():
            # rows claimed while a pause began wait in the queue: a pause
            # that ends starts them (the probe) without a new claim
            self._start(lane)
            limit = lane.wanted(now)
            if limit <= 0:
                continue
            dest, news = lane.dest, lane.news
            rows = await self._store.outbox.claim(
                dest.name, limit=limit, lease=lease(dest, queued=len(lane.queue), claiming=limit)
            )
            if len(rows) < limit and lane.news == news:
                lane.fresh = False  # drained: wait for a notification or a look
            lane.queue.extend(rows)
            self._start(lane)
            claimed += len(rows)
        return claimed

    def _start(self, lane: _Lane) -> None:
        """Start attempts from the lane's queue while it has free slots (a
        task per slot taken, which goes on with the queue, ``_attempts``)."""
        slots = lane.circuit.slots(time.time(), lane.dest.concurrency)
        while lane.queue and lane.inflight < slots:
            row = lane.queue.popleft()
            lane.inflight += 1
            task = asyncio.create_task(self._attempts(lane, row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _listen(self, notified: asyncio.Event, stop: asyncio.Event) -> None:
        await keep_listening(self._store.outbox.listening, notified, stop, name="deliveries")

    async def _attempts(self, lane: _Lane, row: Claimed) -> None:
        """Attempt ``row``, then the lane's next claimed rows one after the
        other while its circuit allows the slot this holds (as if the slot
        were freed and taken again, without a task per attempt)."""
        try:
            while True:
                error, dead = await self._send(lane, row)
                self._count(lane, error)
                # the outcome goes to the marks (which wait for others,
                # MARK_LINGER): the slot does not wait for it
                self._record(lane, row, error, dead=dead)
                concurrency = lane.dest.concurrency
                if len(lane.queue) < concurrency:
                    self._wake.set()  # room for more
                slots = lane.circuit.slots(time.time(), concurrency)
                if not lane.queue or lane.inflight > slots:
                    return
                row = lane.queue.popleft()
                if lane.queue and lane.inflight < slots:  # more allowed now (a probe succeeded)
                    self._start(lane)
        finally:
            lane.inflight -= 1
            self._start(lane)
            if len(lane.queue) < lane.dest.concurrency:
                self._wake.set()

    def _count(self, lane: _Lane, error: str | None) -> None:
        """Move the lane's circuit by an attempt's outcome."""
        name, circuit = lane.dest.name, lane.circuit
        if error is None:
            if circuit.opens:
                log.info("destination_resumed", destination=name)
                self._metrics.destination_paused.labels(name).set(0)
            circuit.succeeded()
            return
        now = time.time()
        pause = circuit.failed(now)
        if pause is None:
            return
        self._metrics.destination_paused.labels(name).set(1)
        log.warning(
            "destination_paused",
            destination=name,
            failures=circuit.failures,
            pause=round(pause, 1),
            error=error,
        )
        if lane.queue:  # not attempted: back to the outbox, due when the pause ends
            given = [(r.delivery_id, r.attempts) for r in lane.queue]
            lane.queue.clear()
            due = datetime.fromtimestamp(circuit.paused_until, UTC)
            task = asyncio.create_task(self._give_back(name, given, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _give_back(
        self, name: str, given: list[tuple[uuid.UUID, int]], due: datetime
    ) -> None:
        try:
            await self._store.outbox.release(given, due=due)
        except StoreUnavailable as exc:  # their leases run out instead
            log.warning("delivery_release_failed", destination=name, error=str(exc))

    def paused(self) -> list[Paused]:
        """Every destination's circuit in this instance."""
        now = time.time()
        return [
            Paused(
                name,
                lane.circuit.state(now),
                lane.circuit.failures,
                None
                if lane.circuit.opens == 0
                else datetime.fromtimestamp(lane.circuit.paused_until, UTC),
            )
            for name, lane in self._lanes.items()
        ]

    async def _send(self, lane: _Lane, row: Claimed) -> tuple[str | None, bool]:
        """Send one attempt: ``(None, _)`` on a 2xx answer (or nothing to
        send), else what went wrong and whether that is final (no retry)."""
        dest = lane.dest
        try:
            request = build(dest, str(row.delivery_id), row.body)
        except (KeyError, TypeError, ValueError) as exc:  # an event this kind cannot send
            return f"cannot make the request: {type(exc).__name__}: {exc}"[:300], True
        if request is None:
            log.info("delivery_skipped", destination=dest.name, delivery_id=str(row.delivery_id))
            return None, False
        try:
            status = await self._client.request(
                request.method, request.url, request.body, request.headers, dest.timeout
            )
        except TimeoutError:
            return f"no answer within {dest.timeout:g} s", False
        except ClientError as exc:
            return str(exc)[:300], False
        except ValueError as exc:  # a URL or header the client cannot send
            return f"cannot make the request: {exc}"[:300], True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", final(dest, status)

    def _record(self, lane: _Lane, row: Claimed, error: str | None, *, dead: bool = False) -> None:
        """Count an attempt and hand its outcome to the marks; what follows
        the mark is ``_marked``, a callback of its future."""
        if error is None:
            lane.delivered.inc()
            mark = Mark(row.delivery_id, row.attempts, at=row.at)
        else:
            lane.errors.inc()
            s = self._settings
            delay = backoff(row.attempts, base=s.retry_base, cap=s.retry_max_delay)
            horizon = row.horizon_from + timedelta(seconds=s.retry_horizon)
            in_time = datetime.now(UTC) + timedelta(seconds=delay) <= horizon
            retry_in = delay if in_time and not dead else None
            mark = Mark(row.delivery_id, row.attempts, error, retry_in, row.at)
        self._marks.put(mark).add_done_callback(partial(self._marked, lane, row, mark))

    def _marked(self, lane: _Lane, row: Claimed, mark: Mark, done: asyncio.Future[bool]) -> None:
        """After an outcome's mark: the lag of a delivered event, the log line
        of a retry or a dead event (only once written, as the API shows it)."""
        if done.cancelled():  # the dispatcher stopped: the lease runs out
            return
        exc = done.exception()
        name = lane.dest.name
        if exc is not None:
            # the row stays leased; once the lease runs out it is sent again
            if isinstance(exc, StoreUnavailable):
                log.warning("delivery_mark_failed", destination=name, error=str(exc))
            else:
                log.error("delivery_mark_failed", destination=name, exc_info=exc)
            return
        if mark.error is None:
            if done.result():  # not void: this attempt still held the row
                lane.lag.observe(max(0.0, time.time() - row.created_at.timestamp()))
            return
        if mark.retry_in is None:
            lane.failed.inc()
            log.warning(
                "delivery_dead",
                destination=name,
                delivery_id=str(row.delivery_id),
                attempts=row.attempts,
                error=mark.error,
            )
        else:
            log.info(
                "delivery_retry",
                destination=name,
                delivery_id=str(row.delivery_id),
                attempts=row.attempts,
                retry_in=round(mark.retry_in, 1),
                error=mark.error,
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
