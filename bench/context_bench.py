"""Customer resolution and context assembly at scale.

    python bench/context_bench.py                 # 1M customers, 10M past contacts
    python bench/context_bench.py --scale 0.1     # a tenth of that

Seeds a scratch database (DATABASE_URL's server, or an embedded PostgreSQL),
then resolves contacts (80 % of known customers, 20 % new) through the same
function the service calls, at a fixed concurrency, and in the same run as many
trivial queries through the same pool as a baseline. Prints contexts/s and
latency percentiles for both.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import timedelta
from functools import partial

import asyncpg
from common import percentile, scratch_database

from router.models import Contact, Identifier, now_ms
from router.recognition import resolution
from router.store import customers
from router.store.db import SCHEMA

SEED = """
INSERT INTO customers (customer_id, origin, tier)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'contact',
       (ARRAY['basic', 'gold', 'vip'])[1 + n % 3]
  FROM generate_series(1, $1) n;
INSERT INTO identities (kind, value, customer_id, verified)
SELECT 'email', 'c' || n || '@bench.example',
       ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, true
  FROM generate_series(1, $1) n;
"""

SEED_CONTACTS = """
INSERT INTO contacts (contact_id, received_at, adapter, provider, channel, external_id,
                      customer_id, known_customer, queue, priority, ruleset, contact, context,
                      decision, timings)
SELECT gen_random_uuid(), now() - random() * interval '90 days', 'bench', 'bench',
       (ARRAY['chat', 'email', 'voice', 'social'])[1 + (n % 4)], 'seed-' || n,
       ('00000000-0000-4000-8000-'
        || lpad(to_hex(1 + (hashint8(n) & 2147483647) % $1::bigint), 12, '0'))::uuid,
       true, (ARRAY['general', 'billing', 'returns'])[1 + (n % 3)], 50, 'seed',
       '{}', '{}', '{}', '{}'
  FROM generate_series($2::bigint, $3::bigint) n
"""


async def seed(url: str, customers_n: int, contacts_n: int) -> None:
    con = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    t0 = time.perf_counter()
    await con.execute("SELECT ensure_partitions(now() - interval '4 months', 6)")
    await con.execute(SEED.replace("$1", str(customers_n)))
    # Bulk load without the secondary indexes, then build them once (much faster
    # than maintaining five random-order indexes row by row).
    indexes = await con.fetch(
        """SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = $1 AND tablename = 'contacts' AND indexname <> 'contacts_pkey'""",
        SCHEMA,
    )
    for ix in indexes:
        await con.execute(f'DROP INDEX "{ix["indexname"]}"')
    step = 1_000_000
    for start in range(1, contacts_n + 1, step):
        await con.execute(SEED_CONTACTS, customers_n, start, min(start + step - 1, contacts_n))
        print(f"  seeded {min(start + step - 1, contacts_n):,} contacts", flush=True)
    await con.execute("SET maintenance_work_mem = '512MB'")
    for ix in indexes:
        await con.execute(ix["indexdef"].replace(" ON ONLY ", " ON "))
    await con.execute("ANALYZE")
    await con.close()
    print(
        f"seeded {customers_n:,} customers, {contacts_n:,} contacts in "
        f"{time.perf_counter() - t0:.0f} s"
    )


async def measure(
    pool: asyncpg.Pool, n: int, concurrency: int, customers_n: int, real: bool
) -> tuple[float, list[float]]:
    rng = random.Random(5)
    latencies: list[float] = []
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            queue.pop()
            if rng.random() < 0.8:
                email = f"c{rng.randint(1, customers_n)}@bench.example"
            else:
                email = f"new-{uuid.uuid4().hex}@bench.example"
            contact = Contact(
                channel="chat",
                provider="bench",
                external_id=uuid.uuid4().hex,
                identifiers=(Identifier(kind="email", value=email),),
            )
            at = now_ms()
            t0 = time.perf_counter()
            if real:
                lookup = resolution.Lookup("bench", contact, uuid.uuid4(), at + timedelta(0))
                await resolution.resolve_many(partial(customers.resolve_many, pool), [lookup])
            else:
                await pool.fetchval("SELECT $1::text", email)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--lookups", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    customers_n, contacts_n = int(1_000_000 * args.scale), int(10_000_000 * args.scale)
    async with scratch_database() as url:
        await seed(url, customers_n, contacts_n)
        pool = await asyncpg.create_pool(
            url,
            min_size=args.concurrency,
            max_size=args.concurrency,
            server_settings={"search_path": SCHEMA},
            init=_codecs,
        )
        rows = []
        for name, real in (
            ("trivial query", False),
            ("resolve+context", True),
            ("trivial query", False),
            ("resolve+context", True),
        ):
            seconds, lat = await measure(pool, args.lookups, args.concurrency, customers_n, real)
            rows.append(
                (
                    name,
                    args.lookups / seconds,
                    percentile(lat, 0.5) * 1000,
                    percentile(lat, 0.99) * 1000,
                )
            )
        await pool.close()
    print(
        f"\n{customers_n:,} customers, {contacts_n:,} past contacts, "
        f"{args.lookups:,} lookups per run, concurrency {args.concurrency}"
    )
    print(f"{'':<18}{'per s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, rate, p50, p99 in rows:
        print(f"{name:<18}{rate:>10.0f}{p50:>9.2f}{p99:>9.2f}")
    real_rows = [r for r in rows if r[0] == "resolve+context"]
    base_rows = [r for r in rows if r[0] == "trivial query"]
    best = max(r[1] for r in real_rows) / max(r[1] for r in base_rows)
    print(f"resolve+context / trivial query throughput: {best:.2f}")


async def _codecs(con: asyncpg.Connection) -> None:
    from router.store.db import _init_connection

    await _init_connection(con)


if __name__ == "__main__":
    asyncio.run(main())
