"""PostgreSQL CPU of the record insert, by part, per contact.

    python bench/insert_cpu.py                    # embedded PostgreSQL
    python bench/insert_cpu.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/insert_cpu.py --batch 16 --batch 32 --batch 64 --rounds 30
    python bench/insert_cpu.py --text 3000        # e-mail contacts, rows over 2 kB
    python bench/insert_cpu.py --client           # and this process's CPU, row array vs arrays

Seeds a scratch database with history (``bench/plans.py``'s seed), then
writes batches of routed contacts (80 % new customers, each with an open row,
a lifecycle log row and one outbox event) with the routing path's statement
(``records.insert_many``) and with that statement cut short, part by part:

- ``unnest + parse``: the arguments unnested and the document parsed only;
- ``+ contact_keys``: and the idempotency keys written;
- ``+ contacts``: and the records;
- ``+ open_contacts``: and the open rows (and the assigners' NOTIFY);
- ``+ lifecycle_log``: and the log rows (and their trigger);
- ``whole``: and the outbox events, i.e. the statement as the service runs it;
- ``commit``: the COMMIT of the whole statement's transaction;

and, inside a transaction rolled back afterwards, the whole statement with
the secondary indexes of one table dropped (``no ... indexes``), or the JSON
columns put back to pglz (as before migration 0029); the same statement in a
transaction with nothing changed is ``whole, in a transaction``. ``column
arrays (before 0030)`` is the whole statement (and its commit) taking the
batch as one array a field of the row, as before migration 0030, rather than
one array of ``record_row``; with ``--client`` the CPU of this process
(``time.process_time``: the rows, the arguments, encoding them, reading the
answer) is printed for it and for ``whole``, per contact. ``--text``
gives each contact a text of that many bytes (an e-mail body: the row goes
over the TOAST threshold, about 2 kB, and its JSON values are compressed).
Variants alternate batch by batch on one connection, so that drift on a shared
machine hits all of them. CPU is the server backend's (``/proc/<pid>/schedstat``
of its pid: the server must run on this machine); WAL is what EXPLAIN (ANALYZE,
WAL) of the whole statement reports, per table written.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import postgres_server, scratch_database  # noqa: E402
from bench.plans import _outbox, _record, seed  # noqa: E402
from bench.resolve_cpu import Population, _cpu_ns  # noqa: E402
from router.recognition.resolution import key  # noqa: E402
from router.store import NewRecord, customers, deliveries, records  # noqa: E402
from router.store.db import SESSION_SETTINGS, _init_connection  # noqa: E402
from router.store.deliveries import Outgoing  # noqa: E402

#: the CTEs of the insert, in order, and what each one's variant keeps
PARTS = ["key", "rec", "opened", "woke", "logged", "o", "outbox"]
CUT = {
    "unnest + parse": [],
    "+ contact_keys": ["key"],
    "+ contacts": ["key", "rec"],
    "+ open_contacts": ["key", "rec", "opened", "woke"],
    "+ lifecycle_log": ["key", "rec", "opened", "woke", "logged"],
}
#: secondary indexes dropped (in a transaction rolled back) for a variant
DROPPED = {
    "no contacts secondary indexes": "contacts",
    "no open_contacts secondary indexes": "open_contacts",
    "no lifecycle_log index": "lifecycle_log",
    "no contact_keys secondary index": "contact_keys",
}


def cut(sql: str, keep: list[str]) -> str:
    """The insert statement with only the CTEs ``keep`` (and ``i``)."""
    head, *rest = re.split(r"\n\), (\w+) AS \(\n", sql)
    ctes = dict(zip(rest[::2], rest[1::2], strict=True))
    last = ctes["outbox"].split("\n)\n", 1)
    ctes["outbox"] = last[0]
    out = head
    for name in PARTS:
        if name in keep or name == "o":  # o types the outbox arguments; unread, not run
            out += f"\n), {name} AS (\n" + ctes[name]
    tail = "count(*) FROM rec" if "rec" in keep else "count(*) FROM i WHERE doc IS NOT NULL"
    return (
        out
        + f"\n)\nSELECT {tail}"
        + (", (SELECT count(*) FROM woke) AS w" if "woke" in keep else "")
    )


#: the whole statement as before migration 0030 (one array argument a field)
ARRAYS = "column arrays (before 0030)"


def arrays_statement() -> str:
    """The insert taking the batch as one array a field of ``record_row``
    (as before migration 0030), the outbox arrays numbered after them."""
    n = len(records.ROW_FIELDS)
    sql = records._INSERT_MANY.replace(
        records._OUTBOX_ARRAYS,
        ", ".join(f"${n + k}::{t}[]" for k, t in enumerate(deliveries.INSERT_TYPES, 1)),
    )
    arrays = ", ".join(f"${k}::{t}[]" for k, (_, t) in enumerate(records.ROW_FIELDS, 1))
    names = ", ".join(c for c, _ in records.ROW_FIELDS)
    row = "unnest($1::record_row[]) AS t"
    assert row in sql and "record_row" not in sql.replace(row, "")
    return sql.replace(row, f"unnest({arrays})\n           AS t({names})")


def arguments(new: list[NewRecord], events: list[Outgoing], *, arrays: bool = False) -> list[Any]:
    """The insert's arguments for ``new`` as ``records.insert_many`` passes
    them, or (``arrays``) as ``arrays_statement`` takes them."""
    rows = [records._row(r) for r in new]
    if arrays:
        return [list(col) for col in zip(*rows, strict=True)] + deliveries.columns(events)
    return [rows, *deliveries.columns(events)]


class Batches:
    def __init__(self, population: Population, size: int, text: int = 0) -> None:
        self.population, self.size, self.text = population, size, text

    async def columns(self, con: asyncpg.Connection, run: str) -> list[Any]:
        return arguments(*await self.batch(con, run))

    async def batch(
        self, con: asyncpg.Connection, run: str
    ) -> tuple[list[NewRecord], list[Outgoing]]:
        """A batch of new records (not written yet) and their outbox events."""
        lookups = self.population.batch(self.size, f"{run}-{uuid.uuid4().hex[:8]}")
        found = await customers.resolve_many(con, [key(x) for x in lookups])
        new = [_record(x, f) for x, f in zip(lookups, found, strict=True)]
        if self.text:  # an e-mail's body: its row goes over the TOAST threshold
            for r in new:
                r.contact = r.contact.model_copy(update={"text": _body(self.text)})
        return new, [e for r in new for e in _outbox(r)]


def _body(size: int) -> str:
    words = "where is my parcel order invoice refund please thanks delivery address".split()
    rng = random.Random()
    out = []
    while sum(len(w) + 1 for w in out) < size:
        out.append(rng.choice(words) if rng.random() < 0.8 else uuid.uuid4().hex[:8])
    return " ".join(out)


async def pglz(con: asyncpg.Connection) -> list[str]:
    """The statements that put the JSON columns back to pglz (as before 0029)."""
    parts = await con.fetch(
        """SELECT 'contacts'::regclass::text AS t UNION ALL
           SELECT inhrelid::regclass::text FROM pg_inherits
            WHERE inhparent = 'contacts'::regclass"""
    )
    cols = ("contact", "context", "decision", "trace", "timings", "steps")
    alter = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION pglz" for c in cols)
    return [f"ALTER TABLE {r['t']} {alter}" for r in parts] + [
        "ALTER TABLE deliveries ALTER COLUMN payload SET COMPRESSION pglz"
    ]


async def indexes(con: asyncpg.Connection, table: str) -> list[str]:
    rows = await con.fetch(
        """SELECT i.indexrelid::regclass::text AS name FROM pg_index i
            WHERE i.indrelid = $1::regclass AND NOT i.indisprimary AND NOT i.indisunique""",
        table,
    )
    return [r["name"] for r in rows]


async def rounds(
    con: asyncpg.Connection,
    batches: Batches,
    count: int,
    client: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Server CPU per contact by variant; the client's of the whole statement
    both ways into ``client``, when given."""
    pid = con.get_server_pid()
    size = batches.size
    out: dict[str, list[float]] = collections.defaultdict(list)
    client = client if client is not None else collections.defaultdict(list)
    whole = {"whole": records._INSERT_MANY, ARRAYS: arrays_statement()}
    statements = {name: cut(records._INSERT_MANY, keep) for name, keep in CUT.items()}
    drops = {
        name: [f"DROP INDEX {ix}" for ix in await indexes(con, table)]
        for name, table in DROPPED.items()
    }
    drops["JSON columns with pglz (before 0029)"] = await pglz(con)
    names = [*statements, *whole, "whole, in a transaction", *drops]
    for n in range(count):
        order = names if n % 2 else list(reversed(names))
        for name in order:
            if name in whole:
                new, events = await batches.batch(con, f"{n}")
                await con.execute("BEGIN")
                c0 = _cpu_ns(pid)
                t0 = time.process_time()  # the client's: inside the server's reading
                await con.fetch(whole[name], *arguments(new, events, arrays=name == ARRAYS))
                t1 = time.process_time()
                c1 = _cpu_ns(pid)
                await con.execute("COMMIT")
                c2 = _cpu_ns(pid)
                client[name].append((t1 - t0) * 1e6 / size)
                label = "" if name == "whole" else f"{name}: "
                out[name].append((c1 - c0) / 1000 / size)
                out[f"{label}commit"].append((c2 - c1) / 1000 / size)
                out[f"{label}whole + commit"].append((c2 - c0) / 1000 / size)
                continue
            columns = await batches.columns(con, f"{n}")
            if name in statements:
                c0 = _cpu_ns(pid)
                await con.fetch(statements[name], *columns)
                out[name].append((_cpu_ns(pid) - c0) / 1000 / size)
            else:
                await con.execute("BEGIN")
                try:
                    for ddl in drops.get(name, []):
                        await con.execute(ddl)
                    # the first run after the DDL plans again: measure the second
                    await con.fetch(records._INSERT_MANY, *columns)
                    columns = await batches.columns(con, f"{n}b")
                    c0 = _cpu_ns(pid)
                    await con.fetch(records._INSERT_MANY, *columns)
                    out[name].append((_cpu_ns(pid) - c0) / 1000 / size)
                finally:
                    await con.execute("ROLLBACK")
        await con.fetchval("SELECT 1")
        c0 = _cpu_ns(pid)
        await con.fetchval("SELECT 1")
        out["SELECT 1 (a round trip, for scale)"].append((_cpu_ns(pid) - c0) / 1000)
    return out


def _wal(plan: dict[str, Any], out: collections.Counter[str]) -> None:
    if plan.get("Node Type") == "ModifyTable":
        out[plan["Relation Name"]] += plan.get("WAL Bytes", 0)
    for child in plan.get("Plans", []):
        _wal(child, out)


async def wal(con: asyncpg.Connection, batches: Batches) -> tuple[dict[str, float], float, str]:
    """WAL bytes per contact by table written (EXPLAIN ANALYZE, rolled back),
    and the whole transaction's (insert LSN before and after, committed)."""
    columns = await batches.columns(con, "wal")
    await con.execute("BEGIN")
    try:
        text = await con.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + records._INSERT_MANY, *columns
        )
    finally:
        await con.execute("ROLLBACK")
    plan = (json.loads(text) if isinstance(text, str) else text)[0]
    tables: collections.Counter[str] = collections.Counter()
    _wal(plan["Plan"], tables)
    size = batches.size
    times = f"planning {plan['Planning Time'] * 1000 / size:.0f} µs, execution " + (
        f"{plan['Execution Time'] * 1000 / size:.0f} µs a contact (EXPLAIN ANALYZE); triggers: "
        + ", ".join(
            f"{t['Trigger Name']} {t['Time'] * 1000 / size:.0f} µs" for t in plan["Triggers"]
        )
    )
    total = []
    for n in range(5):
        columns = await batches.columns(con, f"wal{n}")
        before = await con.fetchval("SELECT pg_current_wal_insert_lsn()")
        await con.fetch(records._INSERT_MANY, *columns)
        after = await con.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", before)
        total.append(float(after))
    return {t: b / size for t, b in tables.items()}, statistics.median(total) / size, times


async def row_sizes(con: asyncpg.Connection) -> str:
    row = await con.fetchrow(
        """SELECT avg(pg_column_size(c.*))::int AS row, max(pg_column_size(c.*)) AS max_row,
                  avg(pg_column_size(contact))::int AS contact,
                  avg(pg_column_size(context))::int AS context,
                  avg(pg_column_size(decision))::int AS decision
             FROM contacts c WHERE received_at > now() - interval '1 hour'"""
    )
    return ", ".join(f"{k} {v} B" for k, v in row.items())


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url")
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--batch", type=int, action="append")
    p.add_argument("--returning", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument(
        "--text", type=int, default=0, metavar="BYTES", help="each contact's text (an e-mail body)"
    )
    p.add_argument(
        "--client",
        action="store_true",
        help="print this process's CPU of the whole statement, row array and column arrays",
    )
    args = p.parse_args()
    sizes = args.batch or [16, 32, 64]
    async with postgres_server(args.database_url) as base, scratch_database(base) as url:
        seconds = await seed(url, args.records)
        print(f"seeded {args.records:,} records in {seconds:.0f} s", file=sys.stderr)
        people = max(1, args.records // 5)
        con = await asyncpg.connect(url, server_settings={**SESSION_SETTINGS})
        await _init_connection(con)
        try:
            version = await con.fetchval("SHOW server_version")
            for size in sizes:
                batches = Batches(
                    Population(people, args.returning, random.Random(5)), size, args.text
                )
                await rounds(con, batches, 3)  # warm up, generic plans
                client: dict[str, list[float]] = collections.defaultdict(list)
                figures = await rounds(con, batches, args.rounds, client)
                tables, total, times = await wal(con, batches)
                print(
                    f"\n{version}; {args.records:,} records, batches of {size}, "
                    f"median of {args.rounds} rounds"
                )
                print("| variant | server CPU µs per contact (median) | p25 – p75 |")
                print("|---|---|---|")
                for name, values in figures.items():
                    q = statistics.quantiles(sorted(values), n=4)
                    print(f"| {name} | {statistics.median(values):.1f} | {q[0]:.1f} – {q[2]:.1f} |")
                if args.client:
                    print("| the client's CPU µs per contact (median) | p25 – p75 |")
                    print("|---|---|")
                    for name, values in client.items():
                        q = statistics.quantiles(sorted(values), n=4)
                        print(
                            f"| {name} | {statistics.median(values):.1f} "
                            f"| {q[0]:.1f} – {q[2]:.1f} |"
                        )
                walt = ", ".join(f"{t} {b:.0f}" for t, b in sorted(tables.items()))
                print(f"WAL bytes per contact: {walt}; whole transaction {total:.0f}")
                print(times)
            print(f"rows written: {await row_sizes(con)}")
        finally:
            await con.close()


if __name__ == "__main__":
    asyncio.run(main())
