"""The job runner: the background work every instance does, each job by name.

A periodic job runs every ``every`` seconds; its first run is awaited before
``start`` returns (``first="awaited"``: start-up waits for it), starts at once
in the background (``"now"``) or waits one interval (``"later"``). A watching
job runs until the runner stops. A failed run is logged and the job runs again
at its next tick: ``StoreUnavailable`` and timeouts (the database is away, the
next run will do) as a warning, anything else with its traceback. ``stop``
ends every job, then runs their ``at_stop`` steps.

Jobs keep no state in memory: what one has done is in the database, so any
instance can run it next (jobs that must run once at a time take a database
lock themselves). Adding one is a line where the runtime lists them
(``router.runtime``)::

    jobs.every("rollup", 60, rollups_job, first="now")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal

import structlog

from router.errors import StoreUnavailable

log = structlog.get_logger("omniroute.jobs")

First = Literal["awaited", "now", "later"]
#: ``listening(wake)``: a block in which ``wake`` is called at every
#: notification; it yields an event set when the listening connection is lost.
Listening = Callable[[Callable[[], None]], AbstractAsyncContextManager[asyncio.Event]]
#: seconds before a lost listening connection is opened again
LISTEN_RETRY = 2.0
Work = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Job:
    """Periodic work: ``run`` every ``every`` seconds."""

    name: str
    run: Work
    every: float
    first: First = "later"
    #: a run that takes longer is abandoned (the next tick tries again)
    timeout: float | None = None
    #: run once when the runner stops (e.g. leave the instances table)
    at_stop: Work | None = None


@dataclass(frozen=True, slots=True)
class Watch:
    """Work that runs until the runner stops (``run(stop)`` returns when the
    event is set), e.g. watching the rules files."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


class Jobs:
    def __init__(self) -> None:
        self._jobs: list[Job | Watch] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def every(
        self,
        name: str,
        seconds: float,
        run: Work,
        *,
        first: First = "later",
        timeout: float | None = None,
        at_stop: Work | None = None,
    ) -> None:
        """Add a periodic job (before ``start``)."""
        self._add(Job(name, run, seconds, first, timeout, at_stop))

    def watch(self, name: str, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Add a job that runs until the runner stops (before ``start``)."""
        self._add(Watch(name, run))

    def _add(self, job: Job | Watch) -> None:
        if any(j.name == job.name for j in self._jobs):
            raise ValueError(f"a job named {job.name!r} exists already")
        self._jobs.append(job)

    @property
    def names(self) -> list[str]:
        return [j.name for j in self._jobs]

    async def start(self) -> None:
        """Run the awaited first runs, then start every job in the background."""
        for job in self._jobs:
            if isinstance(job, Job) and job.first == "awaited":
                await self._once(job.name, job.run, job.timeout)
        for job in self._jobs:
            work = self._watch(job) if isinstance(job, Watch) else self._periodic(job)
            self._tasks.append(asyncio.create_task(work, name=f"job:{job.name}"))

    async def run_now(self, name: str) -> None:
        """One run of periodic job ``name`` out of turn (its schedule stays)."""
        job = next(j for j in self._jobs if j.name == name)
        assert isinstance(job, Job), f"{name} is not a periodic job"
        await self._once(job.name, job.run, job.timeout)

    async def stop(self) -> None:
        """Stop every job (a run in progress is cancelled), then run the
        ``at_stop`` steps."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for job in self._jobs:
            if isinstance(job, Job) and job.at_stop is not None:
                await self._once(f"{job.name}:stop", job.at_stop, job.timeout)

    async def _periodic(self, job: Job) -> None:
        if job.first == "now":
            await self._once(job.name, job.run, job.timeout)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), job.every)
                return
            await self._once(job.name, job.run, job.timeout)

    async def _watch(self, job: Watch) -> None:
        try:
            await job.run(self._stop)
        except Exception:
            log.exception("job_failed", job=job.name)

    async def _once(self, name: str, run: Work, timeout: float | None) -> None:
        """One run of a job; a failure is logged, never raised."""
        try:
            async with asyncio.timeout(timeout):
                await run()
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("job_failed", job=name, error=str(exc) or type(exc).__name__)
        except Exception:  # a job must outlive any one failure
            log.exception("job_failed", job=name)


async def keep_listening(
    listening: Listening, wake: asyncio.Event, stop: asyncio.Event, *, name: str
) -> None:
    """Set ``wake`` at every notification until ``stop``, listening again
    after a lost connection (and waking once then, for whatever was committed
    while nobody listened). A database away is retried quietly; anything else
    is logged as ``<name>_listen_failed``."""
    while not stop.is_set():
        try:
            async with listening(wake.set) as lost:
                wake.set()
                await lost.wait()
        except StoreUnavailable:
            pass
        except Exception:
            log.exception(f"{name}_listen_failed")
        await asyncio.sleep(LISTEN_RETRY)
