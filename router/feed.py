"""The live feed of one instance: one LISTEN connection on the lifecycle log
(``store.live``), fanned out to the subscribers (the clients of
``GET /v1/live/stream``).

While anyone subscribes, the feed reads the log by id when notified (and
every ``poll`` seconds in case a notification was lost while reconnecting),
and hands the rows to every
subscriber **in id order without holes**: ids are taken when a transaction
writes, not when it commits, so a row may commit after a higher one. A row
after a missing id is held back until the missing one commits, or for
``gap_wait`` seconds (a transaction that rolled back leaves a hole forever).
Everything up to ``position`` has therefore been handed out, and a client
that resumes after an id it saw misses nothing.

Each subscriber has a bounded buffer; one that fills it (a slow client) is
ended and resumes with ``Last-Event-ID``. ``close`` ends them all (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

import structlog

from router.errors import StoreUnavailable
from router.jobs import keep_listening
from router.store import Store
from router.store.live import Change

log = structlog.get_logger("omniroute.live")

#: Seconds between attempts to listen again after the connection was lost.


class Subscription:
    """What one client receives: the changes after ``start``, in id order."""

    def __init__(self, start: int | None, limit: int) -> None:
        #: the feed's position when it subscribed (``None``: not known yet)
        self.start = start
        self._limit = limit
        self._items: deque[Change] = deque()
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        if start is not None:
            self._started.set()
        #: why it ended (``slow``, ``shutdown``); ``None`` while it runs
        self.ended: str | None = None

    def begin(self, start: int) -> None:
        """The feed's position became known: the live part starts after it."""
        self.start = start
        self._started.set()

    async def started(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) until ``start`` is known."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._started.wait()

    def push(self, change: Change) -> None:
        if self.ended is not None:
            return
        if len(self._items) >= self._limit:
            self.end("slow")
            return
        self._items.append(change)
        self._ready.set()

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
        self._ready.set()

    async def next(self, timeout: float) -> list[Change] | None:
        """The changes waiting (``None`` when none came within ``timeout``
        seconds); an empty list once it has ended."""
        if not self._items and self.ended is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        self._ready.clear()
        if self.ended is not None:
            return []
        if not self._items:
            return None
        items = list(self._items)
        self._items.clear()
        return items


class Feed:
    """The LISTEN connection of the instance and its subscribers."""

    def __init__(
        self,
        store: Store,
        *,
        buffer: int = 1000,
        batch: int = 1000,
        poll: float = 1.0,
        gap_wait: float = 2.0,
    ) -> None:
        self._store = store
        self._buffer = buffer
        self._batch = batch
        self._poll = poll
        self._gap_wait = gap_wait
        self._subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._gap_since: float | None = None
        self._closed = False
        #: every change with an id up to this one has been handed out
        self.position: int | None = None

    def subscribe(self) -> Subscription:
        sub = Subscription(self.position, self._buffer)
        if self._closed:
            sub.end("shutdown")
        else:
            self._subscribers.add(sub)
            if self.position is None:
                self._wake.set()  # start reading now
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        self._closed = True
        for sub in self._subscribers:
            sub.end("shutdown")
        self._subscribers.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Listen and hand out until ``stop`` is set (a watching job)."""
        listener = asyncio.create_task(self._listen(stop), name="live:listen")
        try:
            while not stop.is_set():
                self._wake.clear()
                wait = self._poll
                try:
                    wait = await self._read()
                except StoreUnavailable:
                    pass
                except Exception:
                    log.exception("live_read_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            self.close()

    async def _listen(self, stop: asyncio.Event) -> None:
        await keep_listening(self._store.live.listening, self._wake, stop, name="live")

    async def _read(self) -> float:
        """Hand out the new changes; the seconds until the next look."""
        if not self._subscribers:
            # nobody watches: nothing is read (it starts again at the end)
            self.position = None
            return self._poll
        if self.position is None:
            # the feed starts at the end: older changes are replayed by id
            self.position = await self._store.live.last_id()
            for sub in self._subscribers:
                if sub.start is None:
                    sub.begin(self.position)
        while True:
            rows = await self._store.live.changes(after=self.position, upto=None, limit=self._batch)
            for row in rows:
                if row.id != self.position + 1 and not self._gap_aged():
                    return min(self._poll, 0.05)  # look again soon: it may commit
                self._gap_since = None
                self.position = row.id
                for sub in list(self._subscribers):
                    sub.push(row)
                    if sub.ended is not None:
                        self._subscribers.discard(sub)
            if len(rows) < self._batch:
                return self._poll

    def _gap_aged(self) -> bool:
        now = time.monotonic()
        if self._gap_since is None:
            self._gap_since = now
        if now - self._gap_since < self._gap_wait:
            return False
        log.info("live_gap_skipped", after=self.position)
        return True
