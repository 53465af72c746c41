"""The plans of the routing path's statements at scale.

    python bench/plans.py                     # 1M records, embedded PostgreSQL
    python bench/plans.py --records 10000000 --database-url postgresql://...

Seeds a scratch database on the server (records spread over 90 days, one
customer with an e-mail identity per 5 records, an idempotency key per record;
server-side, then the indexes built once and ANALYZE), then runs the routing
path's statements as the service runs them -- a batch of ``--batch`` contacts
(80 % of known customers): ``resolve_many`` (idempotency check, recognition and
context, with every statement nested in it), the record insert with keys,
outbox and open rows, the same batch again (the idempotency lookup of
duplicates) and a replay-nonce claim -- under ``auto_explain`` (ANALYZE,
BUFFERS, nested statements), once to warm up and once measured, first with
the pool's settings (``jit = off``) and then with ``jit = on``. Prints, per
statement: calls, time, shared buffers hit/read, the scans and indexes used,
the rows, and whether JIT compiled it (on a server with ``auto_explain``; the
embedded one has none). Then the statements' times without instrumentation;
with ``--weigh-indexes`` the record insert rate and CPU without each secondary
index of ``contacts`` (and the history page it serves, with and without it);
with ``--export`` one full CSV export with JIT off and on.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import postgres_server, scratch_database  # noqa: E402
from router.models import (  # noqa: E402
    Contact,
    Decision,
    Identifier,
    Nonce,
    OverflowStep,
    now_ms,
    uuid7,
)
from router.recognition.resolution import Lookup, key, recognized  # noqa: E402
from router.store import customers, deliveries, nonces, records  # noqa: E402
from router.store.db import SESSION_SETTINGS, _init_connection  # noqa: E402

CUSTOMER_ID = "('00000000-0000-4000-8000-' || lpad(to_hex({n}), 12, '0'))::uuid"
SEED_CUSTOMERS = f"""
INSERT INTO customers (customer_id, origin, tier)
SELECT {CUSTOMER_ID.format(n="n")}, 'contact', (ARRAY['basic', 'gold', 'vip'])[1 + n % 3]
  FROM generate_series(1, $1::bigint) n;
"""
SEED_IDENTITIES = f"""
INSERT INTO identities (kind, value, customer_id, verified)
SELECT 'email', 'c' || n || '@bench.example', {CUSTOMER_ID.format(n="n")}, false
  FROM generate_series(1, $1::bigint) n;
"""
SEED_CONTACTS = f"""
INSERT INTO contacts (contact_id, received_at, adapter, provider, channel, external_id,
                      customer_id, known_customer, queue, priority, skills, rule, ruleset,
                      contact, context, decision, timings, tier, routing_ms)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7000'
        || substr(md5(n::text), 1, 16))::uuid,
       t, ch, ch, ch, 'seed-' || n,
       {CUSTOMER_ID.format(n="1 + (hashint8(n) & 2147483647) % $1::bigint")},
       true, (ARRAY['general', 'billing', 'returns', 'vip'])[1 + n % 4], 50,
       ARRAY['general'], (ARRAY['billing', 'returns', NULL])[1 + n % 3], 'seed',
       '{{}}', '{{}}', '{{"queue": "general"}}', '{{"total_ms": 1.5}}',
       (ARRAY['basic', 'gold', 'vip'])[1 + n % 3], 1.5
  FROM (SELECT n, now() - (hashint8(n) & 2147483647) / 2147483647.0 * interval '90 days' AS t,
               (ARRAY['chat', 'email', 'voice', 'social'])[1 + n % 4] AS ch
          FROM generate_series($2::bigint, $3::bigint) n) s
"""
SEED_KEYS = """
INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
SELECT adapter, external_id, contact_id, received_at FROM contacts
"""


async def seed(url: str, n: int) -> float:
    t0 = time.perf_counter()
    con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS})
    try:
        await con.execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
        await con.execute("SELECT ensure_partitions(now() - interval '4 months', 6)")
        people = max(1, n // 5)
        await con.execute(SEED_CUSTOMERS, people)
        await con.execute(SEED_IDENTITIES, people)
        indexes = await con.fetch(
            """SELECT tablename, indexname, indexdef FROM pg_indexes
                WHERE schemaname = 'omniroute' AND tablename = 'contacts'
                  AND indexname <> 'contacts_pkey'"""
        )
        for ix in indexes:
            await con.execute(f'DROP INDEX "{ix["indexname"]}"')
        step = 1_000_000
        for start in range(1, n + 1, step):
            await con.execute(SEED_CONTACTS, people, start, min(start + step - 1, n))
            print(f"  {min(start + step - 1, n):,} records", file=sys.stderr, flush=True)
        await con.execute(SEED_KEYS)
        for ix in indexes:
            await con.execute(ix["indexdef"].replace(" ON ONLY ", " ON "))
        await con.execute("VACUUM ANALYZE")
    finally:
        await con.close()
    return time.perf_counter() - t0


# -- the statements -------------------------------------------------------------------


@dataclass
class Statement:
    text: str
    calls: int = 0
    ms: float = 0.0
    hit: int = 0
    read: int = 0
    dirtied: int = 0
    jit: bool = False
    nodes: collections.Counter[str] = field(default_factory=collections.Counter)


def _nodes(plan: dict[str, Any], out: collections.Counter[str]) -> None:
    kind = plan["Node Type"]
    where = plan.get("Index Name") or plan.get("Relation Name")
    if kind not in ("Result", "Function Scan", "ProjectSet", "Materialize", "Sort"):
        label = f"{kind}{' ' + where if where else ''}"
        loops = plan.get("Actual Loops", 1)
        if loops == 0:
            out[f"{label} (never run)"] += 1
        else:
            out[f"{label} (rows {plan.get('Actual Rows', 0) * loops:g})"] += 1
    for child in plan.get("Plans", []):
        _nodes(child, out)


class Collector:
    """auto_explain's plans, as the server sends them (client_min_messages = log)."""

    def __init__(self) -> None:
        self.statements: dict[str, Statement] = {}
        self.active = False

    def __call__(self, con: asyncpg.Connection, message: asyncpg.PostgresLogMessage) -> None:
        text = str(message)
        if not self.active or "{" not in text:
            return
        data = json.loads(text[text.index("{") :])
        query = " ".join(data["Query Text"].split())
        plan = data["Plan"]
        s = self.statements.setdefault(query, Statement(query))
        s.calls += 1
        s.ms += plan.get("Actual Total Time", 0.0)
        s.hit += plan.get("Shared Hit Blocks", 0)
        s.read += plan.get("Shared Read Blocks", 0)
        s.dirtied += plan.get("Shared Dirtied Blocks", 0)
        s.jit = s.jit or bool(data.get("JIT", {}).get("Functions"))
        _nodes(plan, s.nodes)


async def has_auto_explain(url: str) -> bool:
    con = await asyncpg.connect(url)
    try:
        await con.execute("LOAD 'auto_explain'")
        return True
    except asyncpg.PostgresError:
        print("(no auto_explain on this server: no plans)", file=sys.stderr)
        return False
    finally:
        await con.close()


async def explained(url: str) -> tuple[asyncpg.Connection, Collector]:
    con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS})
    await _init_connection(con)
    collector = Collector()
    con.add_log_listener(collector)
    await con.execute(
        """LOAD 'auto_explain';
           SET auto_explain.log_min_duration = 0;
           SET auto_explain.log_analyze = on;
           SET auto_explain.log_buffers = on;
           SET auto_explain.log_nested_statements = on;
           SET auto_explain.log_format = json;
           SET client_min_messages = log"""
    )
    return con, collector


def batch(size: int, people: int, rng: random.Random, run: str) -> list[Lookup]:
    at = now_ms()
    out = []
    for n in range(size):
        who = rng.randint(1, people) if rng.random() < 0.8 else people + 1 + rng.randrange(10**9)
        contact = Contact(
            channel="chat",
            provider="chat",
            external_id=f"{run}-{n}",
            identifiers=(Identifier(kind="email", value=f"c{who}@bench.example"),),
            text="where is my parcel",
            language="en",
        )
        out.append(Lookup("chat", contact, uuid7(at), at))
    return out


DECISION = Decision(
    queue="general",
    priority=50,
    skills=("general",),
    sla_seconds=120,
    overflow=(OverflowStep(after_seconds=300, queue="backlog"),),
    rule="default",
    ruleset="bench",
)


def _record(lookup: Lookup, found: Any) -> records.NewRecord:
    r = recognized(lookup, found)
    assert not isinstance(r, records.EarlierDelivery)
    return records.NewRecord(
        contact_id=lookup.contact_id,
        received_at=lookup.at,
        adapter=lookup.adapter,
        contact=lookup.contact,
        customer_id=r.context.customer_id,
        context=r.context,
        decision=DECISION,
        trace=None,
        timings={"total_ms": 1.0},
        lifetime=3600.0,
    )


def _outbox(record: records.NewRecord) -> list[deliveries.Outgoing]:
    """One event a record, as with one destination whose filters match."""
    return [deliveries.Outgoing(uuid.uuid4(), "crm", "contact.routed", record.contact_id, {})]


async def route_path(con: asyncpg.Connection, lookups: list[Lookup], run: str) -> None:
    """The routing path's statements for one batch, as the service runs them."""
    found = await customers.resolve_many(con, [key(x) for x in lookups])
    new = [_record(x, f) for x, f in zip(lookups, found, strict=True)]
    outbox = _outbox
    written = await records.insert_many(con, new, outbox=outbox)
    assert all(w is None for w in written)
    # a retried batch: resolve finds the keys, the insert finds the earlier records
    again = await customers.resolve_many(con, [key(x) for x in lookups])
    assert all(isinstance(a, records.EarlierDelivery) for a in again)
    dup = await records.insert_many(con, new, outbox=outbox)
    assert all(d is not None for d in dup)
    nonce = Nonce(
        scope="mailgun",
        value=f"{run}-token",
        fingerprint=hashlib.sha256(run.encode()).digest(),
        expires_at=now_ms() + timedelta(minutes=10),
    )
    assert await nonces.claim(con, nonce)  # type: ignore[arg-type]


def short(text: str) -> str:
    for marker, name in (
        ("resolve_many(", "resolve_many (the call)"),
        (
            "INSERT INTO contact_keys (adapter, external_id, contact_id, received_at) SELECT",
            "records insert_many (keys, record, open row, log, outbox)",
        ),
        (
            "JOIN contact_keys k ON k.adapter = w.adapter",
            "earlier delivery (idempotency lookup of a retried record)",
        ),
        ("INSERT INTO replay_nonces", "replay nonce claim"),
    ):
        if marker in text:
            return name
    return text[:110]


def report(title: str, collector: Collector, size: int) -> None:
    print(f"\n### {title}\n")
    print(
        "| statement | calls | ms total | ms/call | buffers hit / read / dirtied | JIT "
        "| scans (rows) |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in collector.statements.values():
        ran = [(k, v) for k, v in s.nodes.most_common() if not k.endswith("(never run)")]
        idle = sum(v for k, v in s.nodes.items() if k.endswith("(never run)"))
        nodes = "; ".join(f"{k}{f' ×{v}' if v > 1 else ''}" for k, v in ran[:6])
        if idle:
            nodes += f"; {idle} scans never run (partitions pruned at run time)"
        print(
            f"| `{short(s.text)}` | {s.calls} | {s.ms:.2f} | {s.ms / s.calls:.3f} | "
            f"{s.hit} / {s.read} / {s.dirtied} | {'yes' if s.jit else 'no'} | {nodes} |"
        )
    print(f"\n(a batch of {size} contacts)")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--database-url")
    p.add_argument(
        "--weigh-indexes",
        action="store_true",
        help="measure the record insert rate without each secondary index of contacts",
    )
    p.add_argument("--weigh-batches", type=int, default=100)
    p.add_argument("--no-plans", action="store_true", help="skip the plans and the timings")
    p.add_argument("--export", action="store_true", help="time one export with jit off and on")
    args = p.parse_args()
    async with postgres_server(args.database_url) as base, scratch_database(base) as url:
        seconds = await seed(url, args.records)
        print(f"seeded {args.records:,} records in {seconds:.0f} s", file=sys.stderr)
        rng = random.Random(5)
        people = max(1, args.records // 5)
        plans = not args.no_plans and await has_auto_explain(url)
        for jit in ("off", "on") if plans else ():
            con, collector = await explained(url)
            try:
                await con.execute(f"SET jit = {jit}")
                # as on a pool connection: past the first five runs, plans may be generic
                for n in range(6):
                    await route_path(
                        con, batch(args.batch, people, rng, f"w{n}-{jit}"), f"w{n}{jit}"
                    )
                collector.active = True
                await route_path(con, batch(args.batch, people, rng, f"run-{jit}"), "r" + jit)
                collector.active = False
            finally:
                await con.close()
            report(f"{args.records:,} records, jit = {jit}", collector, args.batch)
        if not args.no_plans:
            await timed(url, args.batch, people, rng)
        if args.weigh_indexes:
            await weigh_indexes(url, args.batch, people, rng, args.weigh_batches)
        if args.export:
            await export_jit(url)


def _backend_cpu(con: asyncpg.Connection) -> float:
    """CPU seconds used so far by the connection's server process (a local server)."""
    fields = Path(f"/proc/{con.get_server_pid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _resolved(
    con: asyncpg.Connection, size: int, people: int, rng: random.Random, batches: int
) -> list[list[records.NewRecord]]:
    """``batches`` batches of records, resolved (while every index is there:
    the resolve reads the customer's history by ``contacts_customer``)."""
    ready = []
    for n in range(batches):
        lookups = batch(size, people, rng, f"ix{uuid.uuid4().hex[:6]}{n}")
        found = await customers.resolve_many(con, [key(x) for x in lookups])
        ready.append([_record(x, f) for x, f in zip(lookups, found, strict=True)])
    return ready


async def _insert_rate(
    con: asyncpg.Connection, ready: list[list[records.NewRecord]]
) -> tuple[float, float]:
    """Records written per second by the batches ``ready``, inserted in a row,
    and the server's CPU ms per record for them."""
    cpu0, t0 = _backend_cpu(con), time.perf_counter()
    for new in ready:
        await records.insert_many(con, new, outbox=_outbox)
    seconds, cpu = time.perf_counter() - t0, _backend_cpu(con) - cpu0
    count = sum(len(new) for new in ready)
    return count / seconds, cpu * 1000 / count


#: the history filter each index serves, and a value the seeded records have
_READS: dict[str, tuple[str, Any]] = {
    "contacts_adapter_keyset": ("adapter", "voice"),
    "contacts_channel_keyset": ("channel", "voice"),
    "contacts_queue_keyset": ("queue", "vip"),
    "contacts_rule_keyset": ("rule", "returns"),
    "contacts_ruleset_keyset": ("ruleset", "seed"),
    "contacts_outcome_keyset": ("outcome", "answered"),
    "contacts_customer": ("customer_id", uuid.UUID("00000000-0000-4000-8000-000000000007")),
}


def _read_for(group: list[asyncpg.Record]) -> tuple[str, Any] | None:
    return _READS.get(group[0]["indexname"]) if len(group) == 1 else None


async def _page_ms(con: asyncpg.Connection, read: tuple[str, Any]) -> tuple[float, float]:
    """ms of a history page of 50 filtered on ``read``: the first page, and a
    deep one (from 45 days back), median of 5 each."""
    from router.store.records import Selection, fetch_page

    deep = now_ms() - timedelta(days=45)
    out = []
    for after in (None, (deep, uuid.UUID(int=0))):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            await fetch_page(con, Selection({read[0]: read[1]}, after=after), limit=50)
            times.append((time.perf_counter() - t0) * 1000)
        out.append(statistics.median(times))
    return out[0], out[1]


async def weigh_indexes(url: str, size: int, people: int, rng: random.Random, batches: int) -> None:
    """What each secondary index of ``contacts`` costs the record insert: the
    insert rate with all of them, and with each one dropped (then put back),
    alternating so that drift on a shared machine hits both sides."""
    con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS})
    await _init_connection(con)
    try:
        await con.execute("SET maintenance_work_mem = '256MB'")
        indexes = await con.fetch(
            """SELECT indexname, indexdef FROM pg_indexes
                WHERE schemaname = 'omniroute' AND tablename = 'contacts'
                  AND indexname <> 'contacts_pkey' ORDER BY indexname"""
        )
        await _insert_rate(con, await _resolved(con, size, people, rng, 4))  # warm up
        print(
            f"\nrecord inserts (batches of {size}) with every index and without one: "
            "records/s (wall) and the server's CPU ms per record"
        )
        print(
            "| index | with all: /s, CPU ms | without it: /s, CPU ms | CPU saved "
            "| history page it serves, ms first / deep: with → without |"
        )
        print("|---|---|---|---|---|")
        for group in [[ix] for ix in indexes] + [list(indexes)]:
            first = await _resolved(con, size, people, rng, batches)
            then = await _resolved(con, size, people, rng, batches)
            rate, cpu = await _insert_rate(con, first)
            read = _read_for(group)
            page = await _page_ms(con, read) if read else None
            for ix in group:
                await con.execute(f'DROP INDEX "{ix["indexname"]}"')
            try:
                rate_without, cpu_without = await _insert_rate(con, then)
                page_without = await _page_ms(con, read) if read else None
            finally:
                for ix in group:
                    await con.execute(ix["indexdef"].replace(" ON ONLY ", " ON "))
            name = f"`{group[0]['indexname']}`" if len(group) == 1 else "all of them"
            reads = (
                f"{read[0]}: {page[0]:.1f} / {page[1]:.1f} → {page_without[0]:.1f} / "
                f"{page_without[1]:.1f}"
                if read and page and page_without
                else "–"
            )
            saved = 100 * (1 - cpu_without / cpu) if cpu else float("nan")
            print(
                f"| {name} | {rate:.0f}, {cpu:.3f} | {rate_without:.0f}, "
                f"{cpu_without:.3f} | {saved:+.0f} % | {reads} |",
                flush=True,
            )
    finally:
        await con.close()


async def export_jit(url: str) -> None:
    """One CSV export of every record, as the export endpoint runs it, with
    the pool's ``jit = off`` and with ``jit = on``, alternating, 3 times."""
    from router.store import export
    from router.store.records import Selection

    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(3):
        for jit in ("off", "on"):
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=1,
                init=_init_connection,
                server_settings={**SESSION_SETTINGS, "jit": jit},
            )
            size = 0

            async def sink(chunk: bytes) -> None:
                nonlocal size
                size += len(chunk)

            try:
                t0 = time.perf_counter()
                await export.export(pool, Selection({}), fmt="csv", sink=sink, timeout=3600)
                times[jit].append(time.perf_counter() - t0)
            finally:
                await pool.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nexport of every record as CSV ({size / 1e6:.0f} MB), median of 3: jit off "
        f"{med['off']:.2f} s, jit on {med['on']:.2f} s"
    )


async def timed(url: str, size: int, people: int, rng: random.Random) -> None:
    """The path's statements without instrumentation, as the client sees them."""
    con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS})
    await _init_connection(con)
    try:
        times: dict[str, list[float]] = collections.defaultdict(list)
        for n in range(12):
            lookups = batch(size, people, rng, f"t{n}")
            t0 = time.perf_counter()
            found = await customers.resolve_many(con, [key(x) for x in lookups])
            t1 = time.perf_counter()
            new = [_record(x, f) for x, f in zip(lookups, found, strict=True)]
            t2 = time.perf_counter()
            await records.insert_many(con, new, outbox=_outbox)
            t3 = time.perf_counter()
            if n >= 2:
                times["resolve_many"].append((t1 - t0) * 1000)
                times["insert_many"].append((t3 - t2) * 1000)
        print(f"\nuninstrumented, jit = off, median of 10 batches of {size}:")
        for name, values in times.items():
            m = statistics.median(values)
            print(f"  {name}: {m:.2f} ms a batch, {m / size:.3f} ms a contact")
    finally:
        await con.close()


if __name__ == "__main__":
    asyncio.run(main())
