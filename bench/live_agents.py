"""The agents' part of ``GET /v1/live/queues``: how long counting the agents
available and busy for every queue and channel takes.

    python bench/live_agents.py                       # 2,000 agents
    python bench/live_agents.py --agents 10000 --samples 100
    DATABASE_URL=postgresql://... python bench/live_agents.py

Creates a fresh database (on the server in DATABASE_URL, dropped at the end;
else an embedded PostgreSQL in a temporary directory), writes the agents
(three skills each from the shipped rules' queues, a random presence and
load, a chat maximum on two thirds), and times ``Store.live.staffing`` for
every declared queue on every channel: best, p50 and p95 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from router.models import CHANNELS
from router.rules import load_ruleset
from router.settings import AgentSettings
from router.store import DatabaseSettings, open_store
from router.store.live import Demand

ROOT = Path(__file__).resolve().parents[1]


async def measure(settings: DatabaseSettings, agents: int, samples: int) -> None:
    ruleset = load_ruleset([ROOT / "rules"])
    units = AgentSettings()
    skills = sorted({s for q in ruleset.queues.values() for s in q.skills})
    demands = [
        Demand(q.skills, channel, units.units_of(channel))
        for q in ruleset.queues.values()
        for channel in CHANNELS
    ]
    random.seed(7)
    async with open_store(settings) as store:
        rows = [
            (
                f"agent-{i:06d}",
                {s: random.randint(1, 5) for s in random.sample(skills, 3)},
                random.choice(["available", "busy", "away", "offline"]),
                random.choice([0, 34, 68]),
                {"chat": 2} if i % 3 else {},
            )
            for i in range(agents)
        ]
        await store.pool.executemany(
            """INSERT INTO agents (agent_id, skills, presence, load_units, channel_max)
               VALUES ($1, $2, $3, $4, $5)""",
            rows,
        )
        await store.pool.execute("ANALYZE agents")
        await store.live.staffing(demands)  # warm
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            await store.live.staffing(demands)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(
        f"{len(demands)} queue/channel rows, {agents:,} agents: "
        f"best {times[0]:.1f} ms, p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms "
        f"({samples} samples)"
    )


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--samples", type=int, default=50)
    args = p.parse_args()
    url = os.environ.get("DATABASE_URL")
    if url is None:
        with tempfile.TemporaryDirectory(prefix="omniroute-bench-") as directory:
            settings = DatabaseSettings(embedded_dir=Path(directory), pool_min=1, pool_max=2)
            await measure(settings, args.agents, args.samples)
        return
    name = f"omniroute_bench_agents_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    own = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    try:
        await measure(DatabaseSettings(url=own, pool_min=1, pool_max=2), args.agents, args.samples)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
