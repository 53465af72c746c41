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

``flush`` is any async function from items to results: the service passes the
store's (which raise ``StoreUnavailable`` when the database is away), a test
can pass a plain function."""

from __future__ import annotations

import asyncio
import contextlib
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
    ) -> None:
        self.name = name
        #: told the size of every batch sent (a metric)
        self._observe = observe
        self._flush_fn = flush
        self.max_batch = max_batch
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._wake = asyncio.Event()
        self._inflight = 0
        self._runner: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Flush what is queued, wait for the batches in flight, then stop."""
        while self._pending or self._flushes:
            self._wake.set()
            await asyncio.sleep(0.01)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def submit(self, item: Item) -> Result:
        """The item's result, once the batch holding it is committed."""
        if self._runner is None or self._runner.done():
            return (await self._flush_fn([item]))[0]
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wake.set()
        # A cancelled request cancels its own future only, never the batch of
        # the others: a batch sets the result of the futures not done yet.
        # (No shield needed, and none made for every item.)
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # the next batch waits for the one in flight unless it is full
            while self._pending and (self._inflight == 0 or len(self._pending) >= self.max_batch):
                await self._slots.acquire()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._inflight += 1
                if self._observe is not None:
                    self._observe(len(batch))
                task = asyncio.create_task(self._flush_slot(batch))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)

    async def _flush_slot(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            await self._flush(batch)
        finally:
            self._inflight -= 1
            self._slots.release()
            self._wake.set()  # what queued meanwhile goes now

    async def _flush(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._flush_fn([item for item, _ in batch])
        except StoreUnavailable as exc:
            # Retrying the items one by one cannot help: all of them fail now.
            log.warning("batch_failed", batcher=self.name, items=len(batch), error=exc.message)
            _fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # One bad item must not fail the others: retry them one by one.
            log.warning("batch_fallback", batcher=self.name, items=len(batch), error=str(exc))
            for entry in batch:
                await self._flush([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: list[tuple[Item, asyncio.Future[Result]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
