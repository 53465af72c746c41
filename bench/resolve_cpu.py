"""PostgreSQL CPU of the routing path's statements, per contact.

    python bench/resolve_cpu.py                   # embedded PostgreSQL
    python bench/resolve_cpu.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/resolve_cpu.py --batch 16 --rounds 40 --explain

Seeds a scratch database with history (``--records`` records over 90 days,
one customer per 5 records, an e-mail identity each, their idempotency keys),
then routes batches of ``--batch`` chat contacts, ``--returning`` of them from
customers seen before (the rest new), as the service does: the resolve
statement, the record insert (keys, record, open row, lifecycle log, one
outbox event each) and a replay-nonce claim. The resolve runs both as the
service runs it now (``resolve_batch``, set-based) and as the loop it was
(``resolve_many_loop``: ``resolve_contact`` once per contact, defined here
for the comparison), alternating batch by batch on the same connection, so
that drift on a shared machine hits both. Each statement's cost is the
server backend's CPU time (``/proc/<pid>/schedstat`` of
``pg_backend_pid()``: the server must run on this machine) around it.

Printed: the median over the rounds of CPU microseconds per contact for each
statement, and the share of returning contacts whose customer had no contact
in the last 30 days (they take the "last contact" fallback). With
``--explain`` (a server with ``auto_explain``), also the time of every
statement nested in one batch's resolve, old and new.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import random
import statistics
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import postgres_server, scratch_database  # noqa: E402
from bench.plans import _outbox, _record, explained, has_auto_explain, seed  # noqa: E402
from router.models import Contact, Identifier, Nonce, now_ms, uuid7  # noqa: E402
from router.recognition.resolution import Lookup, key  # noqa: E402
from router.store import customers, migrations, nonces, records  # noqa: E402
from router.store.db import SESSION_SETTINGS, _init_connection  # noqa: E402


def _loop() -> str:
    """resolve_many as it was: one resolve_contact call per contact, in a
    loop; its text as migration 0008 defined it, under another name."""
    sql = next(text for _, name, text in migrations.available() if name.startswith("0008_"))
    made = "CREATE FUNCTION resolve_many("
    return sql[sql.index(made) :].replace(made, "CREATE OR REPLACE FUNCTION resolve_many_loop(", 1)


LOOP = _loop()

VARIANTS = {"set": "resolve_batch", "loop": "resolve_many_loop"}


class Resolver:
    """``customers.resolve_many``, or the loop it replaced (which took the
    batch as JSON)."""

    def __init__(self, function: str) -> None:
        self.function = function

    async def __call__(self, con: asyncpg.Connection, lookups: list[Lookup]) -> list[Any]:
        keys = [key(x) for x in lookups]
        if self.function == "resolve_batch":
            return await customers.resolve_many(con, keys)
        batch = [
            {
                "a": x.adapter,
                "e": x.external_id,
                "k": [i.kind for i in x.identifiers],
                "v": [i.value for i in x.identifiers],
                "f": [i.verified for i in x.identifiers],
                "n": str(uuid7(x.at)),
                "c": str(x.contact_id),
                "t": x.at.isoformat(),
                "h": x.thread_id,
            }
            for x in keys
        ]
        rows = await con.fetch(
            f"SELECT * FROM {self.function}($1::text::jsonb)", orjson.dumps(batch).decode()
        )
        found = {r["idx"]: r for r in rows}
        return [customers._outcome(found.get(n)) for n in range(len(keys))]


def _cpu_ns(pid: int) -> int:
    """Nanoseconds the server process ``pid`` has run on a CPU so far."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


class Population:
    """Seeded customers (``c<n>@bench.example``), and those met since."""

    def __init__(self, people: int, returning: float, rng: random.Random) -> None:
        self.people, self.returning, self.rng = people, returning, rng

    def batch(self, size: int, run: str) -> list[Lookup]:
        at = now_ms()
        out = []
        for n in range(size):
            if self.rng.random() < self.returning:
                who = f"c{self.rng.randint(1, self.people)}"
            else:
                who = f"new-{uuid.uuid4().hex}"
            contact = Contact(
                channel="chat",
                provider="chat",
                external_id=f"{run}-{n}",
                identifiers=(Identifier(kind="email", value=f"{who}@bench.example"),),
                text="where is my parcel",
                language="en",
            )
            out.append(Lookup("chat", contact, uuid7(at), at))
        return out


async def rounds(
    con: asyncpg.Connection, population: Population, size: int, count: int
) -> dict[str, list[float]]:
    """CPU µs per contact of each statement, one figure per round."""
    pid = con.get_server_pid()
    out: dict[str, list[float]] = collections.defaultdict(list)
    for n in range(count):
        for name, function in VARIANTS.items() if n % 2 else reversed(VARIANTS.items()):
            resolve = Resolver(function)
            lookups = population.batch(size, f"{name}{n}-{uuid.uuid4().hex[:6]}")
            c0 = _cpu_ns(pid)
            found = await resolve(con, lookups)
            c1 = _cpu_ns(pid)
            new = [_record(x, f) for x, f in zip(lookups, found, strict=True)]
            c2 = _cpu_ns(pid)
            await records.insert_many(con, new, outbox=_outbox)
            c3 = _cpu_ns(pid)
            nonce = Nonce(
                scope="mailgun",
                value=f"{name}{n}-{uuid.uuid4().hex}",
                fingerprint=hashlib.sha256(str(n).encode()).digest(),
                expires_at=now_ms() + timedelta(minutes=10),
            )
            c4 = _cpu_ns(pid)
            await nonces.claim(con, nonce)  # type: ignore[arg-type]
            c5 = _cpu_ns(pid)
            out[f"resolve ({name})"].append((c1 - c0) / 1000 / size)
            out[f"insert (after {name})"].append((c3 - c2) / 1000 / size)
            await con.fetchval("SELECT 1")
            c6 = _cpu_ns(pid)
            out["nonce claim (a delivery)"].append((c5 - c4) / 1000)
            out["SELECT 1 (a round trip, for scale)"].append((c6 - c5) / 1000)
    return out


async def stale_share(con: asyncpg.Connection, people: int) -> float:
    """Share of the seeded customers with no contact in the last 30 days."""
    return float(
        await con.fetchval(
            """SELECT avg(CASE WHEN EXISTS (
                          SELECT 1 FROM contacts x
                           WHERE x.customer_id = i.customer_id
                             AND x.received_at >= now() - interval '30 days') THEN 0 ELSE 1 END)
                 FROM (SELECT customer_id FROM identities
                        WHERE value LIKE 'c%@bench.example' LIMIT 2000) i"""
        )
    )


async def explain(url: str, population: Population, size: int) -> None:
    """auto_explain's time of every statement nested in one batch's resolve."""
    for name, function in VARIANTS.items():
        con, collector = await explained(url)
        try:
            resolve = Resolver(function)
            for n in range(6):  # past the first five runs, plans may be generic
                await resolve(con, population.batch(size, f"xw{name}{n}-{uuid.uuid4().hex[:6]}"))
            collector.active = True
            await resolve(con, population.batch(size, f"x{name}-{uuid.uuid4().hex[:6]}"))
        finally:
            await con.close()
        print(f"\n{name}: statements of one batch of {size}, by total time (auto_explain)")
        print("| ms total | calls | statement |\n|---|---|---|")
        for s in sorted(collector.statements.values(), key=lambda s: -s.ms)[:14]:
            print(f"| {s.ms:.2f} | {s.calls} | `{s.text[:100]}` |")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url")
    p.add_argument("--records", type=int, default=500_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--returning", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--explain", action="store_true")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a session setting"
    )
    args = p.parse_args()
    async with postgres_server(args.database_url) as base, scratch_database(base) as url:
        seconds = await seed(url, args.records)
        print(f"seeded {args.records:,} records in {seconds:.0f} s", file=sys.stderr)
        people = max(1, args.records // 5)
        population = Population(people, args.returning, random.Random(5))
        settings = dict(x.split("=", 1) for x in args.set)
        con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS, **settings})
        await _init_connection(con)
        try:
            await con.execute(LOOP)
            await rounds(con, population, args.batch, 6)  # warm up, generic plans
            figures = await rounds(con, population, args.batch, args.rounds)
            stale = await stale_share(con, people)
        finally:
            await con.close()
        version = await _version(url)
        print(
            f"\n{version}; {args.records:,} records, batches of {args.batch}, "
            f"{args.returning:.0%} returning, median of {args.rounds} rounds"
        )
        print("| statement | server CPU µs per contact (median) | p25 – p75 |\n|---|---|---|")
        for name in sorted(figures):
            values = sorted(figures[name])
            q = statistics.quantiles(values, n=4)
            print(f"| {name} | {statistics.median(values):.1f} | {q[0]:.1f} – {q[2]:.1f} |")
        print(f"\nseeded customers with no contact in the last 30 days: {stale:.0%}")
        if args.explain and await has_auto_explain(url):
            await explain(url, population, args.batch)


async def _version(url: str) -> str:
    con = await asyncpg.connect(url)
    try:
        return str(await con.fetchval("SHOW server_version"))
    finally:
        await con.close()


if __name__ == "__main__":
    asyncio.run(main())
