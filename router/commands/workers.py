"""``omniroute serve --workers N``: N worker processes serving one port.

Each worker is an ordinary ``omniroute serve`` process that binds the port
with ``SO_REUSEPORT``, so the kernel spreads connections over them. The
supervisor starts the embedded PostgreSQL once (when no database URL is
configured) and hands its URL to the workers, restarts a worker that dies,
and on SIGTERM / SIGINT passes the signal on and waits for every worker to
finish its in-flight requests.

With destinations configured, the HTTP workers do not dispatch the outbox
(``delivery.dispatch: false``): one more process, ``omniroute dispatch``
(``run_jobs``), does, so routing processes spend no CPU on deliveries. It
is supervised like a worker: restarted when it dies (its claims' leases run
out and it, or any other instance, sends them again)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from router import heap, logs
from router.settings import Settings
from router.store.db import EmbeddedPostgres

log = structlog.get_logger("omniroute.workers")

RESTART_BACKOFF = (0.5, 1, 2, 5, 10)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "router.commands.cli", *argv], env=env)


def run_jobs(settings: Settings) -> int:
    """``omniroute dispatch``: the runtime and its jobs (the dispatcher among
    them) without HTTP, until SIGTERM or SIGINT."""
    from router.runtime import open_runtime

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with open_runtime(settings):
            log.info("jobs_started", dispatch=settings.delivery.dispatch)
            heap.settle()
            with logs.per_iteration(loop):
                await stop.wait()

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        pass
    asyncio.run(run())
    return 0


def supervise(
    settings: Settings,
    count: int,
    worker_argv: list[str],
    dispatch_argv: list[str] | None = None,
) -> int:
    """Run ``count`` workers (and, with destinations, the dispatcher process
    ``dispatch_argv``) until a signal arrives; returns the exit code."""
    embedded = None
    env = dict(os.environ)
    if not settings.database.url:
        embedded = EmbeddedPostgres(Path(settings.database.embedded_dir))
        env["DATABASE_URL"] = asyncio.run(embedded.start())
    jobs_env = dict(env)
    env["OMNIROUTE_HTTP__REUSE_PORT"] = "true"
    slots = [(worker_argv, env)] * count
    d = settings.delivery
    if dispatch_argv is not None and settings.destinations and d.dispatch and d.own_process:
        env["OMNIROUTE_DELIVERY__DISPATCH"] = "false"
        slots.append((dispatch_argv, jobs_env))
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signum)

    workers = [_spawn(argv, slot_env) for argv, slot_env in slots]
    restarts = [0] * len(slots)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("workers_started", workers=count, pids=[p.pid for p in workers])
    try:
        while not stopping:
            time.sleep(0.5)
            for n, proc in enumerate(workers):
                if proc.poll() is not None and not stopping:
                    delay = RESTART_BACKOFF[min(restarts[n], len(RESTART_BACKOFF) - 1)]
                    log.error("worker_exited", pid=proc.pid, code=proc.returncode, restart_in=delay)
                    time.sleep(delay)
                    restarts[n] += 1
                    workers[n] = _spawn(*slots[n])
        deadline = time.monotonic() + settings.http.shutdown_timeout + 10
        for proc in workers:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        if embedded is not None:
            asyncio.run(embedded.stop())
    return 0
