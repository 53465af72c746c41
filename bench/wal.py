"""WAL and storage per routed contact: what a replica has to replay and what
the primary keeps, per contact, for the sizing arithmetic in
docs/operations.md.

Routes ``--contacts`` signed chat deliveries (``--returning`` of them from
customers seen before) through the app, served in this process on a scratch
database (the server in DATABASE_URL, else an embedded one), after a warm-up
of ``--warmup`` contacts. It reads ``pg_current_wal_lsn()`` and the size of
omniroute's tables and indexes before and after, and prints bytes per
contact. ``--destination`` adds a webhook destination (a local receiver
answering 204): every contact's ``contact.routed`` event goes through the
outbox, and the run waits for it to drain. ``--events`` posts
``assigned``, ``answered`` and ``resolved`` for every contact, as a
platform reports outcomes. ``--checkpoint`` takes a CHECKPOINT first: every page then changed
writes a full page image once (the worst case; how often that happens depends
on ``checkpoint_timeout`` / ``max_wal_size``). The app's background jobs
(heartbeat, rollups, timers) write a little WAL during the run too; it is
counted, as it would be in production.

    python bench/wal.py --contacts 5000
    python bench/wal.py --contacts 5000 --destination --events
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/wal.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
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
TOKEN = "wal-bench-token-0123456789abcdef0123"
OUTCOMES = ("assigned", "answered", "resolved")

SIZES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'omniroute' AND c.relkind IN ('r', 'm')
"""


async def route(
    port: int, n: int, returning: float, concurrency: int, run: str, events: bool
) -> int:
    """Deliver ``n`` contacts (with ``events``, then their outcomes); the
    number answered 200."""
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
                answer = await r.json()
            if not events:
                continue
            contact = answer["contacts"][0]["contact_id"]
            for kind in OUTCOMES:
                event = {"event_id": f"{contact}-{kind}", "type": kind, "agent": "agent-1"}
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/contacts/{contact}/events",
                    data=orjson.dumps(event),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as r:
                    assert r.status in (200, 201), await r.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


async def accepted(request: web.Request) -> web.Response:
    """The destination: takes every event."""
    await request.read()
    return web.Response(status=204)


async def drained(con: asyncpg.Connection, timeout: float = 300) -> None:
    """Wait until the outbox has nothing pending."""
    deadline = time.monotonic() + timeout
    while await con.fetchval("SELECT count(*) FROM omniroute.deliveries WHERE status = 'pending'"):
        if time.monotonic() > deadline:
            raise SystemExit("the outbox did not drain")
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--returning", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--destination", action="store_true")
    parser.add_argument("--events", action="store_true")
    args = parser.parse_args()
    receiver = web.AppRunner(web.Application())
    receiver.app.router.add_post("/hook", accepted)
    await receiver.setup()
    hook = web.TCPSite(receiver, "127.0.0.1", 0)
    await hook.start()
    hook_port: int = hook._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with scratch_database() as url:
        overrides: dict[str, Any] = {
            "http": {"host": "127.0.0.1", "port": 0},
            "database": {"url": url, "pool_max": 10},
            "rules": {"paths": [str(ROOT / "rules")], "watch": False},
            "adapters": [{"name": "chat", "kind": "chat", "secrets": [SECRET]}],
            "api": {"tokens": [{"name": "bench", "token": TOKEN, "scopes": ["events:write"]}]},
            "log": {"level": "warning"},
        }
        if args.destination:
            overrides["destinations"] = [
                {
                    "name": "bench",
                    "url": f"http://127.0.0.1:{hook_port}/hook",
                    "secrets": ["whsec_" + base64.b64encode(os.urandom(32)).decode()],
                }
            ]
        settings = load_settings(ROOT / "tests" / "empty.yaml", overrides=overrides)
        logs.configure(settings.log)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port: int = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        con = await asyncpg.connect(url)
        try:
            run = uuid.uuid4().hex[:8]
            await route(port, args.warmup, args.returning, args.concurrency, run, args.events)
            await drained(con)
            if args.checkpoint:
                await con.execute("CHECKPOINT")
            lsn0 = await con.fetchval("SELECT pg_current_wal_lsn()")
            size0 = await con.fetchval(SIZES)
            started = time.monotonic()
            ok = await route(
                port, args.contacts, args.returning, args.concurrency, run, args.events
            )
            await drained(con)
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
            await receiver.cleanup()
    report: dict[str, Any] = {
        "postgresql": version,
        "wal_level": settings_row["level"],
        "full_page_writes": settings_row["fpw"],
        "checkpoint_first": args.checkpoint,
        "destination": args.destination,
        "outcome_events": len(OUTCOMES) if args.events else 0,
        "contacts": ok,
        "seconds": round(seconds, 1),
        "wal_bytes": int(wal),
        "wal_bytes_per_contact": round(float(wal) / max(ok, 1)),
        "stored_bytes_per_contact": round(size / max(ok, 1)),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
