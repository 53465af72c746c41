"""``omniroute serve --workers N``: N worker processes serving one port.

Each worker is an ordinary ``omniroute serve`` process that binds the port
with ``SO_REUSEPORT``, so the kernel spreads connections over them. The
supervisor starts the embedded PostgreSQL once (when no database URL is
configured) and hands its URL to the workers, restarts a worker that dies,
and on SIGTERM / SIGINT passes the signal on and waits for every worker to
finish its in-flight requests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from router.settings import Settings
from router.store.db import EmbeddedPostgres

log = structlog.get_logger("omniroute.workers")

RESTART_BACKOFF = (0.5, 1, 2, 5, 10)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "router.commands.cli", *argv], env=env)


def supervise(settings: Settings, count: int, worker_argv: list[str]) -> int:
    """Run ``count`` workers until a signal arrives; returns the exit code."""
    embedded = None
    env = dict(os.environ)
    if not settings.database.url:
        embedded = EmbeddedPostgres(Path(settings.database.embedded_dir))
        env["DATABASE_URL"] = asyncio.run(embedded.start())
    env["OMNIROUTE_HTTP__REUSE_PORT"] = "true"
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signum)

    workers = [_spawn(worker_argv, env) for _ in range(count)]
    restarts = [0] * count
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
                    workers[n] = _spawn(worker_argv, env)
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
