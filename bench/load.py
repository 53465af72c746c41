"""Load benchmark: omniroute's full path against a bare aiohttp baseline, in
the same run, with the same load.

    python bench/load.py                       # 64 connections, 20 s per side
    python bench/load.py --duration 60 --rounds 2
    DATABASE_URL=postgresql://... python bench/load.py

Starts both servers as subprocesses (omniroute on a fresh embedded PostgreSQL
unless DATABASE_URL is set, with the rules in rules/ unless --rules), drives
each with the same generator (mixed channels, a share of returning
customers, signed deliveries) and prints contacts/s, latency percentiles,
peak memory of the server process, and omniroute/baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.generic import sign  # noqa: E402

SECRET = "bench-secret"
CHANNELS = ("chat", "email", "voice", "social")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    words = rng.choice(
        [
            "refund for my order",
            "where is my parcel",
            "change my address",
            "cancel subscription",
            "billing question",
            "product advice",
        ]
    )
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


@dataclass
class Result:
    name: str
    count: int
    errors: int
    seconds: float
    latencies: list[float]
    peak_rss_mb: float
    first_mb: float = float("nan")
    last_mb: float = float("nan")
    round: int = 1
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms per contact

    def numbered(self, round_: int) -> Result:
        self.round = round_
        return self

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000 if data else float("nan")


async def drive(
    url: str, duration: float, connections: int, returning: float, run: str
) -> tuple[int, int, list[float]]:
    population = Population(returning)
    rng = random.Random(11)
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
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


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pgdata: Path | None) -> dict[str, float]:
    """CPU time used so far by the embedded PostgreSQL (its postmaster and
    backends; nan with an external server), and by this load generator."""
    postgres = float("nan")
    try:
        if pgdata is not None:
            postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
            postgres = tree_cpu_seconds(postmaster)
    except (OSError, ValueError, IndexError):
        pass
    return {"postgres": postgres, "generator": _cpu_seconds(os.getpid())}


def tree_cpu_seconds(pid: int) -> float:
    return _cpu_seconds(pid) + sum(_cpu_seconds(c) for c in _children(pid))


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.time() + timeout
    async with aiohttp.ClientSession() as session:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout} s")


def write_config(directory: Path, port: int, rules: Path, database_url: str | None) -> Path:
    adapters = "\n".join(f"  - {{name: {c}, kind: {c}, secrets: [{SECRET}]}}" for c in CHANNELS)
    db = f"  url: {database_url}\n" if database_url else f"  embedded_dir: {directory / 'pg'}\n"
    config = directory / "omniroute.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"database:\n{db}  pool_max: 20\n"
        f"rules: {{paths: [{rules}], watch: false}}\n"
        f"adapters:\n{adapters}\n"
        "log: {level: warning, format: json}\n"
    )
    return config


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def measure(
    name: str, url: str, proc: subprocess.Popen[bytes], args: argparse.Namespace, run: str
) -> Result:
    await drive(url, args.warmup, args.connections, args.returning, run + "w")
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(tree_rss_mb(proc.pid))
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample())
    cpu0, server0 = cpu_seconds(args.pgdata), tree_cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    count, errors, latencies = await drive(
        url, args.duration, args.connections, args.returning, run
    )
    seconds = time.perf_counter() - t0
    cpu1, server1 = cpu_seconds(args.pgdata), tree_cpu_seconds(proc.pid)
    sampler.cancel()
    samples.append(tree_rss_mb(proc.pid))
    per = 1000 / max(count, 1)
    cpu = {
        "server": (server1 - server0) * per,
        "postgres": (cpu1["postgres"] - cpu0["postgres"]) * per,
        "generator": (cpu1["generator"] - cpu0["generator"]) * per,
    }
    return Result(
        name, count, errors, seconds, latencies, max(samples), samples[0], samples[-1], cpu=cpu
    )


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\n{args.connections} connections, {args.duration:.0f} s per side and round, "
        f"{args.returning:.0%} returning customers, rules {args.rules}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'server':<14}{'round':>6}{'contacts/s':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p99.9 ms':>10}{'errors':>8}{'peak MB':>9}{'MB start':>9}{'MB end':>8}"
        f"  CPU ms/contact: server, postgres, generator"
    )
    for r in results:
        print(
            f"{r.name:<14}{r.round:>6}{r.rate:>12.0f}{r.pct(0.5):>9.2f}{r.pct(0.99):>9.2f}"
            f"{r.pct(0.999):>10.2f}{r.errors:>8}{r.peak_rss_mb:>9.0f}{r.first_mb:>9.0f}"
            f"{r.last_mb:>8.0f}  {r.cpu['server']:6.2f} {r.cpu['postgres']:6.2f}"
            f" {r.cpu['generator']:6.2f}"
        )
    med = statistics.median
    base = [r for r in results if r.name == "baseline"]
    base_rate = med(r.rate for r in base)
    print(
        f"\nbaseline: median {base_rate:.0f} contacts/s, p99 "
        f"{med(r.pct(0.99) for r in base):.2f} ms"
    )
    for workers in args.workers:
        omni = [r for r in results if r.name == f"omniroute x{workers}"]
        rate = med(r.rate for r in omni)
        print(
            f"omniroute with {workers} worker(s): median {rate:.0f} contacts/s "
            f"({rate / base_rate:.2f} of the baseline), p99 {med(r.pct(0.99) for r in omni):.2f}"
            f" ms, p99.9 {med(r.pct(0.999) for r in omni):.2f} ms, "
            f"peak {max(r.peak_rss_mb for r in omni):.0f} MB"
        )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--returning", type=float, default=0.2)
    p.add_argument("--rules", type=Path, default=ROOT / "rules")
    p.add_argument(
        "--generated-rules",
        type=int,
        default=0,
        metavar="N",
        help="route with N generated rules (as bench/rules_bench.py) instead",
    )
    p.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1],
        help="omniroute worker counts to measure, e.g. 1,2",
    )
    args = p.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
    args.pgdata = None if os.environ.get("DATABASE_URL") else workdir / "pg"
    if args.generated_rules:
        import random

        from bench.rules_bench import rules_file, specs

        args.rules = workdir / "rules"
        args.rules.mkdir()
        generated = rules_file(specs(args.generated_rules, random.Random(1)))
        (args.rules / "generated.yaml").write_text(generated)
    base_port = free_port()
    baseline = start(
        [sys.executable, str(ROOT / "bench" / "baseline.py"), "--port", str(base_port)]
    )
    results: list[Result] = []
    run = uuid.uuid4().hex[:6]
    try:
        await wait_ready(f"http://127.0.0.1:{base_port}", baseline)
        for round_ in range(1, args.rounds + 1):
            base = await measure(
                "baseline", f"http://127.0.0.1:{base_port}", baseline, args, f"{run}b{round_}"
            )
            results.append(base.numbered(round_))
            for workers in args.workers:
                port = free_port()
                config = write_config(workdir, port, args.rules, os.environ.get("DATABASE_URL"))
                omni = start(
                    [
                        sys.executable,
                        "-m",
                        "router.commands.cli",
                        "serve",
                        "--config",
                        str(config),
                        "--workers",
                        str(workers),
                    ],
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                try:
                    await wait_ready(f"http://127.0.0.1:{port}", omni)
                    result = await measure(
                        f"omniroute x{workers}",
                        f"http://127.0.0.1:{port}",
                        omni,
                        args,
                        f"{run}o{workers}r{round_}",
                    )
                    results.append(result.numbered(round_))
                finally:
                    stop(omni)
    finally:
        stop(baseline)
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
