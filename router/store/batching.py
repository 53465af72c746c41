"""Batching of concurrent database work: the items of concurrent requests go to
the database together (one statement, one transaction, one commit for many
contacts), while each request still waits for its own result.

No delay is added to form batches: an item that finds nothing in flight goes
at once. While a batch is in flight, new items queue up and go together when
it is done -- unless a whole batch (``max_batch`` items) is already waiting:
then it goes at once, beside the others, up to ``max_inflight`` batches. So a
batch grows with the load (one statement and one commit for more contacts:
less CPU per contact on both sides, measured in docs/operations.md), and
batches run side by side only when they are full.

``linger`` (seconds, 0 by default) is for work whose callers can wait: a
batch that is not whole goes only once its first item has waited that long
(and nothing is in flight), so that one statement carries many items even
when they come one at a time. Routing's batchers have none: they add no
delay. ``stop`` does not wait for it.

``flush`` is any async function from items to results: the service passes the
store's (which raise ``StoreUnavailable`` when the database is away), a test
can pass a plain function."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from router.errors import StoreUnavailable

log = structlog.get_logger("omniroute.store")

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Calls ``flush(items) -> results`` (one result per item, in order) for
    batches of the items submitted concurrently."""

    def __init__(
        self,
        name: str,
        flush: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = 128,
        max_inflight: int = 4,
        observe: Callable[[int], None] | None = None,
        linger: float = 0.0,
    ) -> None:
        self.name = name
        #: told the size of every batch sent (a metric)
        self._observe = observe
        self._flush_fn = flush
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.linger = linger
        #: when the first of the pending items came (with ``linger`` only)
        self._since: float | None = None
        #: the timer that sends a lingering batch, while it runs
        self._lingering: asyncio.TimerHandle | None = None
        self._stopping = False
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._inflight = 0
        #: the loop the batches run on while started (asked once: on Python
        #: 3.11 asking for the running loop is a system call, ``getpid``)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False  # a look at the pending items is due
        self._flushes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False

    async def stop(self) -> None:
        """Flush what is queued, wait for the batches in flight, then stop
        (items submitted after this go one by one, unbatched)."""
        self._stopping = True  # what comes meanwhile does not linger either
        self._unlinger()
        while self._pending or self._flushes:
            self._launch()
            await asyncio.sleep(0.01)
        self._loop = None

    async def submit(self, item: Item) -> Result:
        """The item's result, once the batch holding it is committed."""
        if self._loop is None:
            return (await self._flush_fn([item]))[0]
        # A cancelled request cancels its own future only, never the batch of
        # the others: a batch sets the result of the futures not done yet.
        # (No shield needed, and none made for every item.)
        return await self.put(item)

    def put(self, item: Item) -> asyncio.Future[Result]:
        """Submit ``item`` without waiting: the future of its result (for a
        caller that goes on meanwhile, with a done callback instead of a
        task). The batcher must be started."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"the {self.name} batcher is not started")
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self.linger and self._since is None:
            self._since = loop.time()
        if not self._scheduled:
            # after what runs in this turn of the loop: the items submitted
            # together go together
            self._scheduled = True
            loop.call_soon(self._look)
        return future

    def _look(self) -> None:
        self._scheduled = False
        self._launch()

    def _lingered(self) -> None:
        self._lingering = None
        self._launch()

    def _unlinger(self) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None

    def _launch(self) -> None:
        """Send what waits, as the policy allows: the next batch waits for the
        one in flight, and for its ``linger``, unless it is full."""
        loop = self._loop
        if loop is None:
            return
        while self._pending and self._inflight < self.max_inflight:
            if len(self._pending) < self.max_batch:
                if self._inflight:
                    return
                if self._since is not None and not self._stopping:
                    wait = self._since + self.linger - loop.time()
                    if wait > 0:
                        if self._lingering is None:
                            self._lingering = loop.call_later(wait, self._lingered)
                        return
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            if not self._pending:
                self._since = None
            self._inflight += 1
            if self._observe is not None:
                self._observe(len(batch))
            task = loop.create_task(self._flush_slot(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush_slot(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._flush_fn([item for item, _ in batch])
        except BaseException as exc:
            self._release()
            if not isinstance(exc, Exception):  # cancelled: the futures go with the requests
                raise
            await self._failed(batch, exc)
            return
        # The next batch goes before this one's requests go on: its task is
        # made (and its first step, which sends it, queued) before their
        # results are set, so the database works on it while the event loop
        # carries on with the requests of this one.
        self._release()
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _release(self) -> None:
        self._inflight -= 1
        self._launch()  # what queued meanwhile goes now

    async def _failed(
        self, batch: list[tuple[Item, asyncio.Future[Result]]], exc: Exception
    ) -> None:
        if isinstance(exc, StoreUnavailable):
            # Retrying the items one by one cannot help: all of them fail now.
            log.warning("batch_failed", batcher=self.name, items=len(batch), error=exc.message)
            _fail(batch, exc)
            return
        if len(batch) == 1:
            _fail(batch, exc)
            return
        # One bad item must not fail the others: retry them one by one.
        log.warning("batch_fallback", batcher=self.name, items=len(batch), error=str(exc))
        for item, future in batch:
            try:
                [result] = await self._flush_fn([item])
            except Exception as one:
                _fail([(item, future)], one)
            else:
                if not future.done():
                    future.set_result(result)


def _fail(batch: list[tuple[Item, asyncio.Future[Result]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
