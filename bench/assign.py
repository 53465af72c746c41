"""Assignment benchmark (docs/agents.md, "Figures"): how fast offers are
made, how soon a freed agent gets its next offer, that nothing is ever
over-assigned, and what assignment costs routing.

    python bench/assign.py                                   # embedded PostgreSQL
    python bench/assign.py --database-url postgresql://...   # scratch database there
    python bench/assign.py --agents 2000 --waiting 20000 --rate 200 --seconds 30

On a scratch database (dropped at the end), with the rules in rules/, every
queue declared with ``assign:`` (most_available, offer timeout 120 s) for the
``assign`` server and as shipped for the ``plain`` one; a third, ``desk``
(assigning too), serves the simulated agent desktops. All three ``omniroute
serve`` processes run on the same database.

- ``fill``: ``--waiting`` contacts wait (written by the store's own insert,
  as routing writes them), ``--agents`` agents (every skill, capacity 100)
  come available at once; offers/s until every agent is full or nothing
  is left to offer.
- ``steady``: ``--rate`` contacts/s arrive (signed webhooks, open loop) on
  the ``assign`` server while a simulated desk accepts every offer and
  finishes each accepted contact after ``--hold`` seconds (an outcome event:
  the agent's units are freed and the assigners woken). Printed: from an
  agent being freed (the outcome event's transaction) to its next offer, p50
  / p99 / max; offers/s; routing answers p50 / p99.
- ``throughput``: routing throughput of the ``assign`` and ``plain`` servers
  side by side (closed loop, ``bench/load.py``'s generator, ``--connections``),
  alternating which goes first; while the ``assign`` server is driven the
  desk keeps accepting and finishing. Medians and the ratio.

- ``--cost``: the fill alone, then what it cost the database per offer made:
  the statements (pg_stat_statements, when the server loads it: calls,
  rows, buffers and WAL bytes per offer, top ones by buffers), and the
  rows the tables got (inserts, updates, how many of them HOT); then the
  same per acceptance for 1,000 of the offers accepted one by one in the
  bench's process, and per resolution of each of those contacts (a
  ``resolved`` outcome event; the agents away meanwhile, so that the rounds
  the resolutions wake find no agent). Counts, not timings: noise from other work on the
  machine does not change them. Before the acceptances, ``--freed`` agents are
  freed one by one with the backlog still waiting (a piece of each one's work
  ends, as an outcome ends it: its units freed and the assigners woken for
  it, ``agent:<id>``), each after the one before got its next offer: what
  one wake-up costs, the rounds of both assigning servers and their sweeps
  included. ``--before REV``: the same again with the servers running the
  code of git revision REV, on a scratch database of its own.
- ``direct`` (``--direct`` times): the servers stopped, one assigner in
  the bench's own process; a random piece of held work ends (as an outcome
  ends it: the agent's units freed and the assigners notified, in one
  transaction of another connection), and the time from that commit until
  the freed agent's next offer is committed is measured: the assignment path
  without HTTP, with the 2,000 agents and the contacts still waiting.

All along a sampler reads every agent in one snapshot, as often as it can:
over-assignments (load over capacity, a channel over its maximum, a load
different from the work held) are counted; there must be none. The machine
may be shared: compare the ratios, and run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import yaml
from common import (
    ROOT,
    connect,
    percentile,
    postgres_server,
    quiet_logs,
    scratch_database,
    send_at_rate,
    serving,
    waiting_record,
)
from load import CHANNELS, assigned_rules, drive
from sources import source_of

from router.settings import SCOPES
from router.store import DatabaseSettings, open_store
from router.store import records as stored_records

TOKEN = "bench-token-" + uuid.uuid4().hex
HEADERS = {"Authorization": f"Bearer {TOKEN}"}

BROKEN = """
SELECT count(*) FROM agents a
  LEFT JOIN (SELECT agent_id, sum(units) AS units FROM agent_work GROUP BY agent_id) w
         USING (agent_id)
 WHERE a.load_units > a.capacity
    OR a.load_units <> coalesce(w.units, 0)
    OR EXISTS (SELECT 1 FROM jsonb_each_text(a.channel_max) m
                WHERE coalesce((a.load_by_channel ->> m.key)::int, 0) > m.value::int)
"""


def rules(workdir: Path, assign: bool) -> Path:
    """rules/ as shipped; with ``assign``, every queue assigned by omniroute."""
    folder = workdir / ("rules-assign" if assign else "rules-plain")
    return assigned_rules(ROOT / "rules", folder, 120 if assign else None)


def queues_and_skills() -> dict[str, list[str]]:
    data = yaml.safe_load((ROOT / "rules" / "00-queues.yaml").read_text())
    return {name: list((spec or {}).get("skills", [])) for name, spec in data["queues"].items()}


@asynccontextmanager
async def servers(
    database_url: str, workdir: Path, source: Path = ROOT
) -> AsyncIterator[dict[str, str]]:
    """``assign`` and ``desk`` with every queue assigned, ``plain`` as shipped."""
    api = {"tokens": [{"name": "bench", "token": TOKEN, "scopes": list(SCOPES)}]}
    folders = {True: rules(workdir, True), False: rules(workdir, False)}
    sides = {side: (folders[side != "plain"], {"api": api}) for side in ("assign", "plain", "desk")}
    async with serving(database_url, sides, workdir, source) as started:
        yield {name: server.url for name, server in started.items()}


class Sampler:
    def __init__(self, url: str) -> None:
        self.url = url
        self.samples = 0
        self.over = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        con = await connect(self.url)
        try:
            while not self.done.is_set():
                self.over += await con.fetchval(BROKEN)
                self.samples += 1
                await asyncio.sleep(0.005)
        finally:
            await con.close()


async def seed(database_url: str, args: argparse.Namespace) -> None:
    """``--waiting`` contacts waiting in the assigned queues, ``--agents``
    agents offline with every skill."""
    queues = queues_and_skills()
    names = list(queues)
    settings = DatabaseSettings(url=database_url, pool_max=4)
    at = datetime.now(UTC) - timedelta(minutes=10)
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as a uuid7 carries it
    async with open_store(settings) as store:
        await store.reporting.ensure_partitions()
        for first in range(0, args.waiting, 1000):
            batch = []
            for n in range(first, min(first + 1000, args.waiting)):
                queue = names[n % len(names)]
                batch.append(
                    waiting_record(
                        f"w{n}",
                        at + timedelta(milliseconds=n),
                        queue=queue,
                        channel=CHANNELS[n % len(CHANNELS)],
                        skills=queues[queue],
                        priority=n % 100,
                        assign=True,
                    )
                )
            async with store.pool.acquire() as con, con.transaction():
                await stored_records.insert_many(con, batch)
        skills = orjson.dumps(
            {s: 3 for spec in queues.values() for s in spec} | {"basic": 3}
        ).decode()
        await store.pool.execute(
            """INSERT INTO agents (agent_id, skills, capacity, presence)
               SELECT 'a' || n, $2::text::jsonb, 100, 'offline' FROM generate_series(1, $1) n""",
            args.agents,
            skills,
        )
        await store.pool.execute("VACUUM ANALYZE open_contacts", timeout=600)


class Desk:
    """Accepts every offer; finishes each accepted contact after ``hold`` s."""

    def __init__(self, url: str, hold: float) -> None:
        self.url = url
        self.hold = hold
        self.accepted = 0
        self.finished = 0
        self.stop = asyncio.Event()
        self.seen: set[str] = set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        finishing: set[asyncio.Task[None]] = set()
        while not self.stop.is_set():
            params = {"status": "offered", "limit": "1000"}
            try:
                async with session.get(
                    f"{self.url}/v1/offers", params=params, headers=HEADERS
                ) as r:
                    offers = (await r.json())["offers"] if r.status == 200 else []
            except aiohttp.ClientError:
                offers = []
            fresh = [o for o in offers if o["offer_id"] not in self.seen]
            self.seen.update(o["offer_id"] for o in fresh)

            async def take(offer: dict[str, Any]) -> None:
                url = f"{self.url}/v1/offers/{offer['offer_id']}/accept"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(url, headers=HEADERS) as r:
                        await r.read()
                        if r.status != 200:
                            return
                    self.accepted += 1
                    task = asyncio.create_task(self.finish(session, offer["contact_id"]))
                    finishing.add(task)
                    task.add_done_callback(finishing.discard)

            for chunk in range(0, len(fresh), 64):
                await asyncio.gather(*(take(o) for o in fresh[chunk : chunk + 64]))
            await asyncio.sleep(0.05)
        for task in list(finishing):
            task.cancel()
        await asyncio.gather(*finishing, return_exceptions=True)

    async def finish(self, session: aiohttp.ClientSession, contact_id: str) -> None:
        await asyncio.sleep(self.hold * random.uniform(0.5, 1.5))
        url = f"{self.url}/v1/contacts/{contact_id}/events"
        try:
            async with session.post(url, json={"type": "resolved"}, headers=HEADERS) as r:
                await r.read()
                if r.status in (200, 201):
                    self.finished += 1
        except (aiohttp.ClientError, RuntimeError):
            pass  # the run is ending


async def fill(con: asyncpg.Connection, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    await con.execute("UPDATE agents SET presence = 'available', presence_at = now()")
    await con.execute("SELECT pg_notify('omniroute_assign', 'agents')")
    last, still = 0, 0.0
    while True:
        await asyncio.sleep(0.25)
        n = await con.fetchval("SELECT count(*) FROM offers")
        if n == last:
            still += 0.25
            if still >= 2.0:
                break
        else:
            last, still = n, 0.0
    seconds = await con.fetchval(
        "SELECT extract(epoch FROM max(offered_at) - min(offered_at)) FROM offers"
    )
    print(
        f"fill: {last} offers to {args.agents} agents over {args.waiting} waiting contacts in "
        f"{seconds:.2f} s: {last / max(seconds, 1e-9):.0f} offers/s "
        f"(wall {time.perf_counter() - t0 - still:.1f} s)",
        flush=True,
    )


STATEMENTS = """
SELECT calls, rows, shared_blks_hit + shared_blks_read AS buffers, wal_bytes, query, toplevel
  FROM public.pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND query NOT LIKE '%sum(units) AS units FROM agent_work GROUP BY agent_id%'  -- the sampler
   AND query NOT LIKE 'SELECT count(*) FROM offers%'  -- the fill's progress
   AND query NOT LIKE '%bench: not counted%'
 ORDER BY buffers DESC
"""

TABLES = """
SELECT CASE WHEN relname LIKE 'contacts%' THEN 'contacts' ELSE relname END AS t,
       sum(n_tup_ins)::int8 AS ins, sum(n_tup_upd)::int8 AS upd, sum(n_tup_hot_upd)::int8 AS hot
  FROM pg_stat_user_tables
 WHERE relname LIKE 'contacts%' OR relname IN ('offers', 'open_contacts', 'agents', 'agent_work',
                                               'lifecycle_log')
 GROUP BY 1 ORDER BY 1
"""


async def counting(con: asyncpg.Connection) -> bool:
    """Start counting statements in this database (pg_stat_statements);
    false when the server does not load it."""
    try:
        await con.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
        await con.execute(
            "SELECT public.pg_stat_statements_reset(0,"
            " (SELECT oid FROM pg_database WHERE datname = current_database()), 0)"
        )
        await con.fetchval("SELECT count(*) FROM public.pg_stat_statements")
    except asyncpg.PostgresError as e:
        print(f"cost: no statement figures ({e})", flush=True)
        return False
    return True


Tables = dict[str, tuple[int, int, int]]


async def tables(con: asyncpg.Connection) -> Tables:
    """Inserts, updates and HOT updates so far, per table (``TABLES``)."""
    await asyncio.sleep(1.5)  # the servers' backends report their table counts when idle
    return {r["t"]: (r["ins"], r["upd"], r["hot"]) for r in await con.fetch(TABLES)}


async def cost(
    con: asyncpg.Connection, statements: bool, what: str, n: int, since: Tables, top: int = 6
) -> None:
    """What was done since the statements were counted from and the tables
    were at ``since`` cost, per ``what`` (``n`` of them; see ``--cost``): the
    ``top`` statements by buffers."""
    now = await tables(con)
    print(f"cost per {what} ({n}):", flush=True)
    if statements:
        rows = await con.fetch(STATEMENTS)
        total = sum(r["buffers"] for r in rows), sum(r["wal_bytes"] for r in rows)
        calls = sum(r["calls"] for r in rows if r["toplevel"])
        print(
            f"  every statement: {total[0] / n:.1f} buffers, {total[1] / n:.0f} WAL bytes;"
            f" {calls / n:.2f} statements sent",
            flush=True,
        )
        for r in rows[:top]:
            query = " ".join(r["query"].split())[:90]
            print(
                f"  {r['buffers'] / n:7.1f} buffers {r['wal_bytes'] / n:7.0f} WAL bytes"
                f" {r['calls']:6d} calls {r['rows']:7d} rows  {query}",
                flush=True,
            )
    for name, (ins, upd, hot) in now.items():
        ins0, upd0, hot0 = since.get(name, (0, 0, 0))
        print(
            f"  {name:<14} inserts {(ins - ins0) / n:5.2f} updates {(upd - upd0) / n:5.2f}"
            f" (HOT {(hot - hot0) / n:5.2f})",
            flush=True,
        )


async def accepting(con: asyncpg.Connection, url: str, statements: bool, n: int) -> None:
    """``n`` open offers accepted one by one in this process (as a desk's
    accepts are), counted apart from the fill."""
    ids = [
        r["offer_id"]
        for r in await con.fetch(
            "SELECT offer_id FROM offers WHERE status = 'offered' ORDER BY offered_at LIMIT $1", n
        )
    ]
    before = await tables(con)
    if statements:
        await counting(con)
    async with open_store(DatabaseSettings(url=url, pool_max=2), migrate=False) as store:
        accepted = []
        for offer_id in ids:
            decided = await store.offers.decide(offer_id, accept=True)
            assert decided is not None
            accepted.append(decided.offer.contact_id)
        await cost(con, statements, "acceptance", len(ids), before)
        # then each of them resolved: the agent freed, the open row gone; the
        # agents away first, so that the rounds each resolution wakes find no
        # agent and what is counted is the resolutions' own statements
        await con.execute("UPDATE agents SET presence = 'away'")
        await con.execute("VACUUM agents")  # (the index of the available ones, emptied)
        await con.execute("SELECT pg_stat_force_next_flush()")  # counted before, not after
        before = await tables(con)
        if statements:
            await counting(con)
        for contact_id in accepted:
            await store.events.record(
                contact_id,
                event_id=f"bench:{contact_id}",
                type_="resolved",
                at=datetime.now(UTC),
                agent=None,
                data={},
            )
        await cost(con, statements, "resolution", len(accepted), before)


async def freeing(con: asyncpg.Connection, url: str, statements: bool, n: int) -> None:
    """``n`` agents freed one by one, the backlog waiting (see ``--cost``)."""
    from router.store import agent_work

    held = await con.fetch(
        "SELECT DISTINCT ON (agent_id) contact_id, agent_id FROM agent_work"
        " ORDER BY agent_id, contact_id  -- bench: not counted"
    )
    picked = random.Random(17).sample(list(held), min(n, len(held)))
    # the fill's last rounds over (a sweep may still find an agent with room)
    last, still = -1, 0.0
    while still < 3 * SWEEP:
        n_offers = await con.fetchval("SELECT count(*) FROM offers  -- bench: not counted")
        still = still + 0.5 if n_offers == last else 0.0
        last = n_offers
        await asyncio.sleep(0.5)
    before = await tables(con)
    if statements:
        await counting(con)
    gaps = []
    async with open_store(DatabaseSettings(url=url, pool_max=2), migrate=False) as store:
        for row in picked:
            seen = await con.fetchval(
                "SELECT count(*) FROM offers WHERE agent_id = $1  -- bench: not counted",
                row["agent_id"],
            )
            ended = row["contact_id"]
            async with store.pool.acquire() as c, c.transaction():
                await agent_work.close_offers(c, [ended])
                await c.execute("DELETE FROM open_contacts WHERE contact_id = $1", ended)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 5:
                now = await con.fetchval(
                    "SELECT count(*) FROM offers WHERE agent_id = $1  -- bench: not counted",
                    row["agent_id"],
                )
                if now > seen:
                    gaps.append((time.perf_counter() - t0) * 1000)
                    break
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.05)
    print(
        f"freed one by one: {len(gaps)} of {len(picked)} agents offered again within 5 s "
        f"(p50 {percentile(gaps, 0.5):.1f} ms; {await con.fetchval(WAITING)} contacts waiting)",
        flush=True,
    )
    await cost(con, statements, "freed agent", len(picked), before, top=10)
    print(f"  (the fill had left {last} offers)", flush=True)


#: the assigners' sweep (router/assigner.py)
SWEEP = 2.0

WAITING = "SELECT count(*) FROM open_contacts WHERE state = 'waiting'  -- bench: not counted"

FREED_TO_OFFER = """
SELECT extract(epoch FROM (SELECT min(o.offered_at) FROM offers o
                            WHERE o.agent_id = c.agent AND o.offered_at >= l.at) - l.at)
       * 1000 AS ms
  FROM lifecycle_log l JOIN contacts c ON c.contact_id = l.contact_id
 WHERE l.kind = 'resolved' AND l.at >= $1
"""


async def steady(con: asyncpg.Connection, urls: dict[str, str], args: argparse.Namespace) -> None:
    since = await con.fetchval("SELECT now()")
    offers0 = await con.fetchval("SELECT count(*) FROM offers")
    t0 = time.perf_counter()
    sent = await send_at_rate(urls["assign"], args.rate, args.seconds, uuid.uuid4().hex[:6])
    latencies = sent.latencies
    seconds = time.perf_counter() - t0
    offers = await con.fetchval("SELECT count(*) FROM offers") - offers0
    rows = await con.fetch(FREED_TO_OFFER, since)
    gaps = [r["ms"] for r in rows if r["ms"] is not None]
    print(
        f"steady: {args.rate:g} contacts/s for {args.seconds:g} s "
        f"({len(latencies)} routed, answer p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms); {offers} offers "
        f"({offers / seconds:.0f}/s)\n"
        f"  agent freed -> its next offer ({len(gaps)} of {len(rows)} freed agents offered "
        f"again): p50 {percentile(gaps, 0.5):.1f} ms, p99 {percentile(gaps, 0.99):.1f} ms, "
        f"max {max(gaps, default=float('nan')):.1f} ms",
        flush=True,
    )


async def throughput(urls: dict[str, str], args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"assign": [], "plain": []}
    p99s: dict[str, list[float]] = {"assign": [], "plain": []}
    for n in range(1, args.rounds + 1):
        order = ("assign", "plain") if n % 2 else ("plain", "assign")
        for side in order:
            tag = f"{uuid.uuid4().hex[:6]}{side}{n}"
            t0 = time.perf_counter()
            count, errors, lat = await drive(urls[side], args.duration, args.connections, 0.2, tag)
            rate = count / (time.perf_counter() - t0)
            rates[side].append(rate)
            p99s[side].append(percentile(lat, 0.99) * 1000)
            print(
                f"  round {n} {side:<6}: {rate:6.0f} contacts/s, "
                f"p99 {p99s[side][-1]:6.2f} ms, errors {errors}",
                flush=True,
            )
    med = statistics.median
    print(
        f"throughput, {args.rounds} rounds of {args.duration:g} s per side, "
        f"{args.connections} connections: assign {med(rates['assign']):.0f} contacts/s "
        f"(p99 {med(p99s['assign']):.1f} ms), plain {med(rates['plain']):.0f} contacts/s "
        f"(p99 {med(p99s['plain']):.1f} ms); assign/plain "
        f"{med(rates['assign']) / med(rates['plain']):.2f}",
        flush=True,
    )


async def desk_parts(
    con: asyncpg.Connection, urls: dict[str, str], args: argparse.Namespace
) -> None:
    """``steady`` and ``throughput``, a desk accepting and finishing offers."""
    desk = Desk(urls["desk"], args.hold)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as session:
        desking = asyncio.create_task(desk.run(session))
        await steady(con, urls, args)
        if args.rounds:
            await throughput(urls, args)
        desk.stop.set()
        await desking
    print(f"desk: {desk.accepted} accepted, {desk.finished} finished", flush=True)


async def run(database_url: str, args: argparse.Namespace, source: Path = ROOT) -> None:
    await seed(database_url, args)
    workdir = Path(tempfile.mkdtemp(prefix="omniroute-assign-"))
    print(f"server logs in {workdir}", flush=True)
    con = await connect(database_url)
    sampler = Sampler(database_url)
    sampling = asyncio.create_task(sampler.run())
    try:
        async with servers(database_url, workdir, source) as urls:
            statements = args.cost and await counting(con)
            before = await tables(con) if args.cost else {}
            await fill(con, args)
            if args.cost:
                made = await con.fetchval("SELECT count(*) FROM offers")
                await cost(con, statements, "offer", made, before)
                if args.freed:
                    await freeing(con, database_url, statements, args.freed)
                await accepting(con, database_url, statements, 1000)
            else:
                await desk_parts(con, urls, args)
    finally:
        sampler.done.set()
        await sampling
        await con.close()
    print(
        f"over-assignments: {sampler.over} in {sampler.samples} snapshots of every agent",
        flush=True,
    )
    if args.direct and not args.cost:
        await direct(database_url, workdir, args.direct)


async def direct(database_url: str, workdir: Path, n: int) -> None:
    """The assignment path alone, no HTTP: one assigner in this process, the
    servers stopped; ``n`` times a random piece of held work ends (as an
    outcome event ends it, committed by another connection) and the time
    until the freed agent's next offer is committed is measured."""
    from router.assigner import Assigner
    from router.rules import load_ruleset
    from router.settings import AgentSettings
    from router.store import agent_work

    ruleset = load_ruleset([workdir / "rules-assign"])
    settings = DatabaseSettings(url=database_url, pool_max=6)
    async with open_store(settings, migrate=False) as store:
        assigner = Assigner(store, lambda: ruleset, AgentSettings())
        stop_ = asyncio.Event()
        job = asyncio.create_task(assigner.run(stop_))
        await asyncio.sleep(3)  # the expiries and rounds left from the run
        gaps = []
        for _ in range(n):
            row = await store.pool.fetchrow(
                "SELECT contact_id, agent_id FROM agent_work ORDER BY random() LIMIT 1"
            )
            seen = await store.pool.fetchval(
                "SELECT count(*) FROM offers WHERE agent_id = $1", row["agent_id"]
            )
            async with store.pool.acquire() as con, con.transaction():
                await agent_work.close_offers(con, [row["contact_id"]])
                await con.execute(
                    "DELETE FROM open_contacts WHERE contact_id = $1", row["contact_id"]
                )
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 5:
                now = await store.pool.fetchval(
                    "SELECT count(*) FROM offers WHERE agent_id = $1", row["agent_id"]
                )
                if now > seen:
                    gaps.append((time.perf_counter() - t0) * 1000)
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)
        stop_.set()
        await job
    print(
        f"direct: agent freed (commit) -> its next offer committed, {len(gaps)} of {n} "
        f"offered within 5 s: p50 {percentile(gaps, 0.5):.1f} ms, "
        f"p99 {percentile(gaps, 0.99):.1f} ms, max {max(gaps, default=float('nan')):.1f} ms",
        flush=True,
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", help="a server to make a scratch database on")
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--waiting", type=int, default=20000)
    p.add_argument("--rate", type=float, default=200, help="contacts/s in the steady part")
    p.add_argument("--seconds", type=float, default=30, help="length of the steady part")
    p.add_argument("--hold", type=float, default=2.0, help="seconds an agent works a contact")
    p.add_argument("--rounds", type=int, default=4, help="throughput rounds per side (0: none)")
    p.add_argument("--duration", type=float, default=10, help="seconds per throughput round")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--cost", action="store_true", help="the fill alone, and its cost per offer made"
    )
    p.add_argument(
        "--direct", type=int, default=200, help="freed agents timed without HTTP (0: none)"
    )
    p.add_argument(
        "--freed", type=int, default=200, help="with --cost: agents freed one by one (0: none)"
    )
    p.add_argument(
        "--before", metavar="REV", help="with --cost: also the servers at git revision REV"
    )
    args = p.parse_args()
    quiet_logs()
    sources = [("this tree", ROOT)]
    if args.before and args.cost:
        workdir = Path(tempfile.mkdtemp(prefix="omniroute-assign-src-"))
        sources.append((f"@{args.before}", source_of(args.before, workdir)))
    for name, source in sources:
        if len(sources) > 1:
            print(f"== {name}", flush=True)
        async with postgres_server(args.database_url) as base, scratch_database(base) as url:
            await run(url, args, source)


if __name__ == "__main__":
    asyncio.run(main())
