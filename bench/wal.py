"""WAL and storage per routed contact: what a replica has to replay and what
the primary keeps, per contact, for the sizing arithmetic in
docs/operations.md.

Routes ``--contacts`` signed chat deliveries (``--returning`` of them from
customers seen before) through the app, served in this process on a scratch
database (the server in DATABASE_URL, else an embedded one), after a warm-up
of ``--warmup`` contacts. It reads ``pg_current_wal_lsn()`` and the size of
omniroute's tables and indexes before and after, and prints bytes per
contact. ``--checkpoint`` takes a CHECKPOINT first: every page then changed
writes a full page image once (the worst case; how often that happens depends
on ``checkpoint_timeout`` / ``max_wal_size``). The app's background jobs
(heartbeat, rollups, timers) write a little WAL during the run too; it is
counted, as it would be in production.

    python bench/wal.py --contacts 5000
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/wal.py
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.generic import sign  # noqa: E402
from bench.common import scratch_database  # noqa: E402
from router import logs  # noqa: E402
from router.settings import load_settings  # noqa: E402
from router.web import create_app  # noqa: E402

SECRET = "wal-bench-secret-0123456789abcdef"

SIZES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'omniroute' AND c.relkind IN ('r', 'm')
"""


async def route(port: int, n: int, returning: float, concurrency: int, run: str) -> int:
    """Deliver ``n`` contacts; the number answered 200."""
    rng = random.Random(n)
    seen: list[int] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for _ in range(n):
        if seen and rng.random() < returning:
            who = rng.choice(seen)
        else:
            who = len(seen) + 1
            seen.append(who)
        body = {
            "id": f"{run}-{uuid.uuid4().hex}",
            "customer": {"email": f"c{who}.{run}@example.com"},
            "text": rng.choice(["refund for my order", "where is my parcel", "billing question"]),
            "language": "en",
        }
        queue.put_nowait(orjson.dumps(body))
    ok = 0
    url = f"http://127.0.0.1:{port}/v1/webhooks/chat"

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while not queue.empty():
            data = queue.get_nowait()
            headers = {
                "Content-Type": "application/json",
                "X-Omniroute-Signature": sign(data, SECRET, int(time.time())),
            }
            async with session.post(url, data=data, headers=headers) as r:
                ok += r.status == 200

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--returning", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--checkpoint", action="store_true")
    args = parser.parse_args()
    async with scratch_database() as url:
        settings = load_settings(
            ROOT / "tests" / "empty.yaml",
            overrides={
                "http": {"host": "127.0.0.1", "port": 0},
                "database": {"url": url, "pool_max": 10},
                "rules": {"paths": [str(ROOT / "rules")], "watch": False},
                "adapters": [{"name": "chat", "kind": "chat", "secrets": [SECRET]}],
                "log": {"level": "warning"},
            },
        )
        logs.configure(settings.log)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        con = await asyncpg.connect(url)
        try:
            run = uuid.uuid4().hex[:8]
            await route(port, args.warmup, args.returning, args.concurrency, run)
            if args.checkpoint:
                await con.execute("CHECKPOINT")
            lsn0 = await con.fetchval("SELECT pg_current_wal_lsn()")
            size0 = await con.fetchval(SIZES)
            started = time.monotonic()
            ok = await route(port, args.contacts, args.returning, args.concurrency, run)
            seconds = time.monotonic() - started
            wal = await con.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn0)
            size = await con.fetchval(SIZES) - size0
            version = await con.fetchval("SHOW server_version")
            settings_row = await con.fetchrow(
                "SELECT current_setting('full_page_writes') AS fpw,"
                " current_setting('wal_level') AS level"
            )
        finally:
            await con.close()
            await runner.cleanup()
    report: dict[str, Any] = {
        "postgresql": version,
        "wal_level": settings_row["level"],
        "full_page_writes": settings_row["fpw"],
        "checkpoint_first": args.checkpoint,
        "contacts": ok,
        "seconds": round(seconds, 1),
        "wal_bytes": int(wal),
        "wal_bytes_per_contact": round(float(wal) / max(ok, 1)),
        "stored_bytes_per_contact": round(size / max(ok, 1)),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
