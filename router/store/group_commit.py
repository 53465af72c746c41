"""Group commit: records of concurrent requests are written together, one
statement and one commit for many contacts, while each request still waits
for its own record to be committed before it answers.

No delay is added to form batches: while up to ``max_inflight`` writes are in
flight, new records queue up, and the next free writer takes all of them."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from router.errors import StoreUnavailable
from router.store import contacts
from router.store.db import UNAVAILABLE

log = structlog.get_logger("omniroute.store")

Pending = tuple[contacts.NewRecord, "asyncio.Future[contacts.Earlier | None]"]


class GroupCommit:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, max_inflight: int = 4) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._writers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Write what is queued, wait for writes in flight, then stop."""
        while self._pending or self._writers:
            self._wake.set()
            await asyncio.sleep(0.01)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def insert(self, record: contacts.NewRecord) -> contacts.Earlier | None:
        """Write the record (with others); the earlier delivery's answer if it is a duplicate."""
        if self._runner is None or self._runner.done():
            return await contacts.insert(self.pool, record)
        future: asyncio.Future[contacts.Earlier | None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        self._wake.set()
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._slots.acquire()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                task = asyncio.create_task(self._write(batch))
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            await self._flush(batch)
        finally:
            self._slots.release()

    async def _flush(self, batch: list[Pending]) -> None:
        try:
            results = await contacts.insert_many(self.pool, [r for r, _ in batch])
        except UNAVAILABLE as exc:
            error = StoreUnavailable(f"database unavailable: {type(exc).__name__}")
            _fail(batch, error)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # One bad record must not fail the others: write them one by one.
            log.warning("group_commit_fallback", records=len(batch), error=str(exc))
            for item in batch:
                await self._flush([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: list[Pending], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
