"""Background jobs, run by every instance: the rollup job (every
``reporting.rollup_interval`` seconds) and retention (every six hours, when
``reporting.retention_months`` is set), each taking a database lock so one
instance at a time does the work; and the purge of expired replay nonces
(every five minutes; concurrent deletes by several instances are harmless)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web

from router.errors import StoreUnavailable
from router.store import retention
from router.web.runtime import RUNTIME, Runtime

log = structlog.get_logger("omniroute.jobs")

RETENTION_SECONDS = 6 * 3600
#: Expired replay nonces are deleted this often (they live minutes).
NONCE_PURGE_SECONDS = 300


async def _every(
    seconds: float, job: Callable[[], Awaitable[None]], stop: asyncio.Event, name: str
) -> None:
    """Run ``job`` now and then every ``seconds`` until ``stop``; a failed run
    is logged and retried at the next tick."""
    while not stop.is_set():
        try:
            await job()
        except StoreUnavailable as exc:
            log.warning("job_failed", job=name, error=str(exc) or type(exc).__name__)
        except Exception:
            log.exception("job_failed", job=name)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def roll_up(rt: Runtime) -> None:
    done = await rt.store.reporting.refresh_rollups()
    if done is not None and done.hours:
        log.info("rollups_refreshed", hours=done.hours, rolled_until=str(done.rolled_until))


async def expire(rt: Runtime) -> None:
    months = rt.settings.reporting.retention_months
    if months is None:
        return
    cutoff = retention.months_before(datetime.now(UTC), months)
    report = await rt.store.reporting.apply_retention(cutoff)
    if report is not None and (report.dropped or report.default_rows):
        log.info(
            "retention_applied",
            cutoff=report.cutoff.isoformat(),
            dropped=[p.name for p in report.dropped],
            default_rows=report.default_rows,
            keys=report.keys,
            events=report.events,
        )


async def purge_nonces(rt: Runtime) -> None:
    deleted = await rt.store.nonces.purge()
    if deleted:
        log.info("replay_nonces_purged", deleted=deleted)


async def reporting_jobs(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: start the jobs once the pool is open, stop them at exit."""
    rt = app[RUNTIME]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            _every(rt.settings.reporting.rollup_interval, lambda: roll_up(rt), stop, "rollup")
        ),
        asyncio.create_task(_every(RETENTION_SECONDS, lambda: expire(rt), stop, "retention")),
        asyncio.create_task(
            _every(NONCE_PURGE_SECONDS, lambda: purge_nonces(rt), stop, "nonce_purge")
        ),
    ]
    yield
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
