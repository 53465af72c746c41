"""Reporting benchmark: history pages, the summary and the export at 1 M and
at 5 M records, side by side in one run.

    python bench/reporting_bench.py                 # 1 M and 5 M records
    python bench/reporting_bench.py --scale 0.1     # 100 k and 500 k
    python bench/reporting_bench.py --samples 100   # requests per history query
    DATABASE_URL=postgresql://... python bench/reporting_bench.py

Creates two fresh databases (on the server in DATABASE_URL, dropped at the
end unless --keep; else in an embedded PostgreSQL in a temporary directory):
the first gets 1 M records spread over the last 90 days with COPY, the second
is a copy of it with 4 M more over the same days. Rollups are brought up to
date in both, one ``omniroute serve`` subprocess serves each, and the two are
measured over HTTP side by side -- each history and summary request goes to
one server, then the same request to the other, alternating which goes first
-- so a noisy moment on the machine hits both figures alike:

- history: first page and a deep page (cursor in the middle of the result)
  of filtered queries, ``limit=50``, p50 / p95;
- summary: 30 days, daily, grouped by channel and queue, p50 / p95;
- export: every record as CSV and as NDJSON (the default order, oldest
  first), rows/s, and the server's peak memory (VmHWM) before and after.

Prints both and the 5 M / 1 M ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.store import (  # noqa: E402
    DatabaseSettings,  # noqa: E402
    db,
    migrations,
    rollups,
)
from router.web.query import encode_cursor  # noqa: E402

TOKEN = "bench-reporting-token"
SPAN = timedelta(days=90)
CUSTOMERS = 1_500_000

# channel -> adapters, and (rule, queue, tags, weight) choices
CHANNELS: dict[str, tuple[tuple[str, ...], float, list[tuple[str | None, str, str, float]]]] = {
    "chat": (
        ("web-chat", "web-chat", "app-chat"),
        0.40,
        [
            ("refund-requests", "returns", "refund", 0.2),
            ("billing-chat", "billing", "billing", 0.2),
            ("vip-chat", "vip", "vip", 0.1),
            (None, "chat-general", "", 0.5),
        ],
    ),
    "email": (
        ("support-email",),
        0.25,
        [
            ("refund-email", "returns", "refund", 0.3),
            ("billing-email", "billing", "billing", 0.2),
            (None, "email-general", "", 0.5),
        ],
    ),
    "voice": (
        ("ivr",),
        0.25,
        [
            ("ivr-billing", "billing", "billing", 0.3),
            ("ivr-orders", "orders", "orders", 0.3),
            ("vip-voice", "vip", "vip", 0.1),
            (None, "voice-general", "", 0.3),
        ],
    ),
    "social": (
        ("x", "meta"),
        0.10,
        [
            ("public-complaint", "social-escalations", "public,complaint", 0.3),
            (None, "social-care", "", 0.7),
        ],
    ),
}
TIERS = [("gold", 0.1), ("silver", 0.2), ("standard", 0.5), (None, 0.2)]
TEXTS = [
    "refund for my order please",
    "where is my parcel, it is late",
    "change my delivery address",
    "cancel my subscription",
    "question about my last invoice",
    "which model should I buy",
]
COLUMNS = (
    "contact_id received_at adapter provider channel external_id thread_id customer_id "
    "known_customer queue priority skills sla_seconds tags preferred_agent rule ruleset "
    "contact context decision trace timings tier repeat_24h repeat_7d previous_channel "
    "channel_switch context_degraded routing_ms outcome agent assigned_at answered_at "
    "abandoned_at resolved_at closed_at sla_met"
).split()


def _ts(epoch: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}+00"
    )


def _uuid7(epoch: float, rng: random.Random) -> str:
    v = int(epoch * 1000) << 80 | rng.getrandbits(80)
    v = v & ~(0xF << 76) | 0x7 << 76
    v = v & ~(0x3 << 62) | 0x2 << 62
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Generator:
    """Contacts in time order over [start, start + SPAN), realistic shapes."""

    seed: int
    start: float
    rng: random.Random = field(init=False)
    choices: list[tuple[str, tuple[str, ...], list[tuple[str | None, str, str, float]]]] = field(
        init=False
    )

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.choices = [(c, a, rules) for c, (a, _, rules) in CHANNELS.items()]
        self.weights = [w for _, w, _ in CHANNELS.values()]
        self.decisions: dict[tuple[str | None, str], str] = {}
        for _, _, rules in CHANNELS.values():
            for rule, queue, tags, _ in rules:
                tag_list = ",".join(f'"{t}"' for t in tags.split(",") if t)
                self.decisions[(rule, queue)] = (
                    f'{{"queue":"{queue}","priority":50,"skills":["{queue}"],'
                    f'"sla_seconds":120,"tags":[{tag_list}],"preferred_agent":null,'
                    f'"overflow":[{{"after_seconds":300,"queue":"general","drop_skills":[],'
                    f'"priority":null}}],"rule":{f"{chr(34)}{rule}{chr(34)}" if rule else "null"},'
                    f'"ruleset":"3f9c2a1b7d4e"}}'
                )

    def lines(self, n: int) -> Iterator[str]:
        rng = self.rng
        step = SPAN.total_seconds() / n
        rand, choice = rng.random, rng.choice
        for i in range(n):
            at = self.start + (i + rand()) * step
            channel, adapters, rules = rng.choices(self.choices, self.weights)[0]
            adapter = choice(adapters)
            rule, queue, tags, _ = rng.choices(rules, [r[3] for r in rules])[0]
            tier = rng.choices(TIERS, [t[1] for t in TIERS])[0][0]
            identified = rand() < 0.85
            customer = (
                f"01900000-0000-7000-8000-{rng.randrange(CUSTOMERS):012x}" if identified else None
            )
            r = rand()
            repeat_24h = identified and r < 0.12
            repeat_7d = identified and r < 0.25
            switch = repeat_7d and rand() < 0.4
            previous = (
                (choice(("chat", "email", "voice", "social")) if not switch else "email")
                if repeat_7d
                else None
            )
            routing = rng.lognormvariate(1.0, 0.5)
            o = rand()
            wait = rng.expovariate(1 / 90)
            outcome = answered = abandoned = resolved = sla = agent = None
            if o < 0.6:
                outcome, answered, sla, agent = (
                    "answered",
                    _ts(at + wait),
                    "t" if wait <= 120 else "f",
                    f"agent-{rng.randrange(200)}",
                )
            elif o < 0.7:
                outcome, abandoned, sla = "abandoned", _ts(at + wait), "f"
            elif o < 0.8:
                outcome, answered, sla, agent = (
                    "resolved",
                    _ts(at + wait),
                    "t" if wait <= 120 else "f",
                    f"agent-{rng.randrange(200)}",
                )
                resolved = _ts(at + wait + 600)
            ext = f"{i:x}-{self.seed}"
            cid = _uuid7(at, rng)
            text = choice(TEXTS)
            who = f'"{customer}"' if customer else "null"
            email = f"c{customer[-8:] if customer else 'x'}@example.com"
            contact = (
                f'{{"channel":"{channel}","provider":"{adapter}","external_id":"{ext}",'
                f'"identifiers":[{{"kind":"email","value":"{email}","verified":false}}],'
                f'"subject":null,"text":"{text}","language":"en",'
                f'"attributes":{{"order_id":"A{rng.randrange(10**6)}"}}}}'
            )
            context = (
                f'{{"customer_id":{who},"known":{"true" if identified else "false"},'
                f'"tier":{f"{chr(34)}{tier}{chr(34)}" if tier else "null"},'
                f'"contacts_24h":{int(repeat_24h)},"contacts_7d":{int(repeat_7d)},'
                '"open_conversations":[]}'
            )
            timings = (
                f'{{"parse_ms":0.2,"resolve_ms":{routing * 0.7:.3f},"rules_ms":0.02,'
                f'"total_ms":{routing:.3f}}}'
            )
            n_ = "\\N"
            yield "\t".join(
                (
                    cid, _ts(at), adapter, adapter, channel, ext, n_, customer or n_,
                    "t" if identified else "f", queue, "50", f"{{{queue}}}", "120",
                    f"{{{tags}}}", n_, rule or n_, "3f9c2a1b7d4e", contact, context,
                    self.decisions[(rule, queue)], n_, timings, tier or n_,
                    "t" if repeat_24h else "f", "t" if repeat_7d else "f", previous or n_,
                    "t" if switch else "f", "f", f"{routing:.3f}", outcome or n_, agent or n_,
                    answered or abandoned or n_, answered or n_, abandoned or n_, resolved or n_,
                    resolved or n_, sla or n_,
                )
            ) + "\n"  # fmt: skip


async def copy_lines(
    con: asyncpg.Connection, table: str, columns: list[str], lines: Iterator[str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        buf: list[str] = []
        size = 0
        for line in lines:
            buf.append(line)
            size += len(line)
            if size > 1 << 20:
                yield "".join(buf).encode()
                buf, size = [], 0
        if buf:
            yield "".join(buf).encode()

    await con.copy_to_table(table, source=chunks(), columns=columns, format="text")


async def seed(url: str, n: int, seed_: int, start: float, jobs: int) -> float:
    """Seed ``n`` records with COPY over ``jobs`` connections at once (each
    spreads its share over the whole 90 days); returns seconds. Idempotency
    keys are not seeded: no measured query reads them."""

    async def one(share: int, job: int) -> None:
        con = await asyncpg.connect(
            url, server_settings={"search_path": "omniroute,public", "synchronous_commit": "off"}
        )
        try:
            lines = Generator(seed_ * 100 + job, start).lines(share)
            await copy_lines(con, "contacts", COLUMNS, lines)
        finally:
            await con.close()

    t0 = time.perf_counter()
    shares = [n // jobs + (1 if j < n % jobs else 0) for j in range(jobs)]
    await asyncio.gather(*(one(share, j) for j, share in enumerate(shares)))
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "omniroute.yaml"
        config.write_text(
            f"http: {{host: 127.0.0.1, port: {self.port}}}\n"
            f"database: {{url: '{url}', pool_max: 10}}\n"
            f"rules: {{paths: ['{ROOT / 'rules'}'], watch: false}}\n"
            f"api: {{tokens: [{{name: bench, token: {TOKEN}, scopes: [reports:read]}}]}}\n"
            "reporting: {rollup_interval: 3600}\n"
            "log: {level: warning, format: json}\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router.commands.cli", "serve", "--config", str(config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(300):
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                async with session.get(f"{self.base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise SystemExit("server not ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def timed_side_by_side(
    session: aiohttp.ClientSession, requests: list[tuple[str, dict[str, str]]], n: int
) -> list[list[float]]:
    """Milliseconds of ``n`` rounds of ``requests``, one list per request: each
    round sends every request once, in turn, starting with a different one each
    round. Warm-up rounds are discarded."""
    out: list[list[float]] = [[] for _ in requests]
    warm = max(3, n // 10)
    for i in range(n + warm):
        for turn in range(len(requests)):
            k = (turn + i) % len(requests)
            url, params = requests[k]
            t0 = time.perf_counter()
            async with session.get(url, params=params, headers=HEADERS) as r:
                body = await r.read()
                if r.status != 200:
                    raise SystemExit(f"{url} {params}: {r.status} {body[:300]!r}")
            if i >= warm:
                out[k].append((time.perf_counter() - t0) * 1000)
    return out


async def deep_cursor(url: str, filters: dict[str, str], middle: datetime) -> tuple[str, int]:
    """A cursor just after the newest matching row older than ``middle``, and
    how many matching rows precede it (the depth)."""
    con = await asyncpg.connect(url, server_settings={"search_path": "omniroute,public"})
    try:
        where = " AND ".join(
            f"tags @> ARRAY[${i}]::text[]" if k == "tag" else f"{k} = ${i}"
            for i, k in enumerate(filters, 2)
        )
        row = await con.fetchrow(
            f"""SELECT received_at, contact_id FROM contacts WHERE received_at < $1 AND {where}
                 ORDER BY received_at DESC, contact_id DESC LIMIT 1""",
            middle,
            *filters.values(),
        )
        depth = await con.fetchval(
            f"SELECT count(*) FROM contacts WHERE received_at > $1 AND {where}",
            row["received_at"],
            *filters.values(),
        )
    finally:
        await con.close()
    return encode_cursor(row["received_at"], row["contact_id"]), int(depth)


HISTORY = {
    "channel+queue": {"channel": "chat", "queue": "returns"},
    "queue": {"queue": "vip"},
    "tag": {"tag": "complaint"},
    "outcome": {"outcome": "abandoned"},
    "rule+adapter": {"rule": "ivr-orders", "adapter": "ivr"},
}


@dataclass
class Stage:
    """One database, its server and what was measured on it."""

    label: str
    url: str
    server: Server | None = None
    out: dict[str, Any] = field(default_factory=dict)


async def measure(stages: list[Stage], now: datetime, samples: int, export_rounds: int) -> None:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        servers = [s.server for s in stages if s.server is not None]
        for server in servers:
            await server.ready(session)
        for s in stages:
            s.out.update(label=s.label, history={}, export={})
        for name, filters in HISTORY.items():
            page = {**filters, "limit": "50"}
            firsts = await timed_side_by_side(
                session, [(f"{sv.base}/v1/contacts", page) for sv in servers], samples
            )
            cursors = [await deep_cursor(s.url, filters, now - SPAN / 2) for s in stages]
            deeps = await timed_side_by_side(
                session,
                [
                    (f"{sv.base}/v1/contacts", {**page, "cursor": cursor})
                    for sv, (cursor, _) in zip(servers, cursors, strict=True)
                ],
                samples,
            )
            for s, first, deep, (_, depth) in zip(stages, firsts, deeps, cursors, strict=True):
                s.out["history"][name] = (first, deep, depth)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        params = {
            "since": (today - timedelta(days=30)).isoformat(),
            "until": now.isoformat(),
            "interval": "day",
            "group_by": "channel,queue",
        }
        summaries = await timed_side_by_side(
            session,
            [(f"{sv.base}/v1/reports/summary", params) for sv in servers],
            max(10, samples // 5),
        )
        for s, sv, timings in zip(stages, servers, summaries, strict=True):
            s.out["summary"] = timings
            async with session.get(
                f"{sv.base}/v1/reports/summary", params=params, headers=HEADERS
            ) as r:
                body = await r.json()
                s.out["summary_rows"] = len(body["rows"])
                s.out["summary_contacts"] = body["totals"]["contacts"]
        # Each database's exports one after the other (a 5 M export pushes
        # the 1 M database out of the page cache), in rounds.
        for _ in range(export_rounds):
            for s, sv in zip(stages, servers, strict=True):
                for fmt in ("csv", "ndjson"):
                    before = peak_rss_mb(sv.proc.pid)
                    t0 = time.perf_counter()
                    lines = size = 0
                    async with session.get(
                        f"{sv.base}/v1/contacts", params={"format": fmt}, headers=HEADERS
                    ) as r:
                        assert r.status == 200, await r.text()
                        async for chunk in r.content.iter_chunked(1 << 16):
                            lines += chunk.count(b"\n")
                            size += len(chunk)
                    seconds = time.perf_counter() - t0
                    rows = lines - 1 if fmt == "csv" else lines
                    s.out["export"].setdefault(fmt, []).append(
                        (rows, seconds, size, before, peak_rss_mb(sv.proc.pid))
                    )


def _pair(values: list[float]) -> str:
    return f"{pct(values, 0.5):>7.1f} / {pct(values, 0.95):<6.1f}"


def _ratio(before: list[float], after: list[float]) -> str:
    return f"{pct(after, 0.95) / pct(before, 0.95):>9.2f}x"


def report(results: list[dict[str, Any]], timings: list[tuple[str, float]]) -> None:
    print(f"\n{os.cpu_count()} CPUs; p50 / p95 in ms over HTTP (limit=50)\n")
    a, b = results[0], results[-1]
    print(
        f"{'query':<28}{a['label']:>16}{b['label']:>16}{'p95 ratio':>11}   depth of the deep page"
    )
    for name in HISTORY:
        for i, kind in ((0, "first page"), (1, "deep page")):
            va, vb = a["history"][name][i], b["history"][name][i]
            depth = f"   {a['history'][name][2]:,} / {b['history'][name][2]:,} rows" if i else ""
            print(f"{name + ' ' + kind:<28}{_pair(va)}{_pair(vb)}{_ratio(va, vb)}{depth}")
    sa, sb = a["summary"], b["summary"]
    print(
        f"{'summary 30 d daily ch×queue':<28}{_pair(sa)}{_pair(sb)}{_ratio(sa, sb)}"
        f"   {a['summary_rows']} / {b['summary_rows']} rows, "
        f"{a['summary_contacts']:,} / {b['summary_contacts']:,} contacts"
    )
    print(
        f"\n{'export':<10}{'records':>12}{'rows/s (median)':>17}{'rounds':>24}{'MB':>7}"
        f"{'server peak MB first → last':>30}"
    )
    for r in results:
        for fmt, runs in r["export"].items():
            rates = [rows / seconds for rows, seconds, *_ in runs]
            rows, _, size, before, _ = runs[0]
            after = runs[-1][4]
            print(
                f"{fmt:<10}{rows:>12,}{statistics.median(rates):>17,.0f}"
                f"{' '.join(f'{x:,.0f}' for x in rates):>24}{size / 2**20:>7.0f}"
                f"{before[0]:>18.0f} → {after[0]:.0f} (RSS now {after[1]:.0f})"
            )
    print()
    for what, seconds in timings:
        print(f"{what:<44}{seconds:>8.1f} s")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def prepare(
    stage: Stage, n: int, seed_: int, start: float, now: datetime, jobs: int
) -> list[tuple[str, float]]:
    """Seed ``n`` records into the stage's database and bring its rollups and
    statistics up to date, as the running service would have them."""
    timings = []
    pool = await db.connect_pool(
        stage.url, DatabaseSettings(url=stage.url, pool_min=1, pool_max=4, command_timeout=3600)
    )
    try:
        seconds = await seed(stage.url, n, seed_, start, jobs)
        timings.append((f"seed {n:,} records (COPY)", seconds))
        t0 = time.perf_counter()
        if seed_ == 1:  # a new database: roll up every closed hour
            await rollups.refresh(pool)
            timings.append((f"rollups: first refresh ({stage.label})", time.perf_counter() - t0))
        else:  # records added to hours rolled up already
            await rollups.rebuild(pool, now - SPAN - timedelta(hours=1), now)
            timings.append(
                (f"rollups: rebuild of 90 days ({stage.label})", time.perf_counter() - t0)
            )
        t0 = time.perf_counter()
        # What autovacuum does in steady state (the rebuild above just
        # replaced every rollup row).
        await pool.execute("VACUUM ANALYZE contact_rollup")
        await pool.execute("ANALYZE contacts")
        timings.append(("vacuum analyze", time.perf_counter() - t0))
        hour = rollups.hour_floor(now) - timedelta(hours=2)
        t0 = time.perf_counter()
        await rollups.rebuild(pool, hour, hour + timedelta(hours=1))
        timings.append(("rollups: one hour (the job's steady state)", time.perf_counter() - t0))
    finally:
        await pool.close()
    return timings


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="1.0: 1 M and 5 M records")
    p.add_argument("--samples", type=int, default=200, help="requests per history query")
    p.add_argument("--keep", action="store_true", help="keep the bench databases")
    p.add_argument("--jobs", type=int, default=2, help="COPY streams at once while seeding")
    p.add_argument("--export-rounds", type=int, default=2, help="exports of each kind")
    args = p.parse_args()
    first, total = int(1_000_000 * args.scale), int(5_000_000 * args.scale)
    workdir = Path(tempfile.mkdtemp(prefix="omniroute-reporting-bench-"))
    embedded = None
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        embedded = db.EmbeddedPostgres(workdir / "pg")
        server_url = await embedded.start()
    name = f"omniroute_bench_{secrets.token_hex(3)}"
    stages = [
        Stage(f"{first:,}", _with_database(server_url, f"{name}_small")),
        Stage(f"{total:,}", _with_database(server_url, f"{name}_large")),
    ]
    admin = await asyncpg.connect(server_url)
    timings: list[tuple[str, float]] = []
    try:
        small, large = stages
        await admin.execute(f'CREATE DATABASE "{name}_small"')
        con = await asyncpg.connect(small.url, server_settings={"search_path": "omniroute,public"})
        try:
            await migrations.migrate(con)
            await con.execute("SELECT ensure_partitions(now() - interval '4 months', 6)")
        finally:
            await con.close()
        now = datetime.now(UTC)
        start = (now - SPAN - timedelta(minutes=10)).timestamp()
        timings += await prepare(small, first, 1, start, now, args.jobs)
        t0 = time.perf_counter()
        await admin.execute(f'CREATE DATABASE "{name}_large" TEMPLATE "{name}_small"')
        timings.append(("copy of the first database", time.perf_counter() - t0))
        timings += await prepare(large, total - first, 2, start, now, args.jobs)
        for i, stage in enumerate(stages):
            stage.server = Server(workdir / str(i), stage.url)
        try:
            t0 = time.perf_counter()
            await measure(stages, now, args.samples, args.export_rounds)
            timings.append(("measure both, side by side", time.perf_counter() - t0))
        finally:
            for stage in stages:
                if stage.server is not None:
                    stage.server.stop()
        for stage in stages:
            size = await admin.fetchval(
                "SELECT pg_size_pretty(pg_database_size($1))", urlsplit(stage.url).path[1:]
            )
            timings.append((f"database size at {stage.label}: {size}", 0.0))
    finally:
        if embedded is None and not args.keep:
            for suffix in ("small", "large"):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}_{suffix}" WITH (FORCE)')
        await admin.close()
        if embedded is not None:
            await embedded.stop()
    report([s.out for s in stages], timings)


if __name__ == "__main__":
    asyncio.run(main())
