"""Delivery benchmark: what delivering decisions costs routing, how soon an
event arrives, and how fast the overflow timers drain (docs/deliveries.md,
"Figures").

    python bench/delivery.py                                   # embedded PostgreSQL
    python bench/delivery.py --database-url postgresql://...   # scratch database there
    python bench/delivery.py --parts steps --steps 100000
    python bench/delivery.py --parts lag --rate 500,200,100

Three parts, each on a scratch database of its own (dropped at the end):

- ``throughput``: two ``omniroute serve`` processes on one database, one
  with a ``webhook`` destination pointing at a local receiver (answers 204,
  verifies nothing), one without destinations. They are driven in turn by the
  load of ``bench/load.py`` (closed loop, ``--connections``), alternating
  which goes first in each round; after a round with deliveries the outbox is
  drained before the next one, and what was left pending is printed.
  Medians over the rounds of contacts/s and p99, and the on/off ratios.
- ``lag``: the server with the destination at fixed rates (open loop, each
  of ``--rate`` contacts/s for ``--lag-seconds``; "achieved" is what was
  answered per second until the last answer). The receiver notes the arrival
  of every event (first attempt); the lag is the arrival minus the outbox
  row's ``created_at`` (the start of the transaction that wrote the record
  and the event, so about its commit), and minus the record's ``received_at``
  (end to end: routing, commit and delivery). p50 / p99 / max.
- ``drain``: ``--drain`` events written to the outbox in one statement (a
  backlog, as after an outage) while one ``serve`` process with the
  destination runs: seconds until none is pending, events/s, and the
  server's CPU per event (the dispatcher's own cost, apart from routing: the
  figure that depends least on what else the machine runs) and its
  PostgreSQL backends'; with ``pg_stat_statements`` on the server, the
  claims' and marks' statements, rows, ms, buffers (read, dirtied) and
  WAL bytes per event, and the share of the outbox's updates that were HOT.
  ``--before REV``: that revision's drain too, after this tree's.
- ``steps``: ``--steps`` open contacts with a due overflow step, written by
  the store's own insert (``records.insert_many``, batches of 1,000, as
  routing writes them); then the overflow job's loop (``apply_due_steps``,
  ``--batch`` rows per statement until none is due), timed: steps/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import orjson
from common import (
    ROOT,
    Sent,
    Server,
    connect,
    percentile,
    postgres_server,
    quiet_logs,
    scratch_database,
    send_at_rate,
    serving,
    waiting_record,
)
from load import (
    _backends,
    cpu_seconds,
    drive,
    free_port,
    outbox_statements,
    spent,
    start,
    stop,
    tree_cpu_seconds,
    until_drained,
    wait_ready,
)
from sources import source_of

from router.models import OverflowStep
from router.store import DatabaseSettings, NewRecord, open_store
from router.store import records as stored_records

PARTS = ("throughput", "lag", "steps", "drain")


# -- the receiver (a subprocess: python bench/delivery.py --receiver PORT) ---------------


class _Receiver(asyncio.Protocol):
    """HTTP/1.1 over one connection, as little of it as the destinations' client
    needs: requests with a ``Content-Length`` body (or none), kept alive. An
    aiohttp server took about 0.1 ms of CPU a request here; this stand-in for
    the contact center's platform shares the benchmark's cores with the service,
    so it should cost as little as it can (about a tenth of that)."""

    def __init__(self, arrivals: list[tuple[str, float]]) -> None:
        self.arrivals = arrivals
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:])
            }
            length = int(fields.get("content-length", "0"))
            if "chunked" in fields.get("transfer-encoding", ""):
                self._answer(b"400 Bad Request", b"chunked bodies are not taken here", close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return  # the rest of the body is on its way
            self.buffer = self.buffer[end + 4 + length :]
            method, target = (head[0].split(" ") + ["", ""])[:2]
            close = fields.get("connection", "").lower() == "close"
            if method == "POST" and target == "/hook":
                self.arrivals.append((fields.get("webhook-id", ""), time.time()))
                self._answer(b"204 No Content", None, close=close)
            elif method == "GET" and target == "/arrivals":
                body = orjson.dumps(self.arrivals)
                self.arrivals.clear()
                self._answer(b"200 OK", body, b"application/json", close=close)
            elif method == "GET" and target == "/readyz":
                self._answer(b"200 OK", b"ok", close=close)
            else:
                self._answer(b"404 Not Found", b"not found", close=close)

    def _answer(
        self,
        status: bytes,
        body: bytes | None,
        kind: bytes = b"text/plain",
        *,
        close: bool = False,
    ) -> None:
        assert self.transport is not None
        if body is None:
            self.transport.write(b"HTTP/1.1 " + status + b"\r\n\r\n")
        else:
            self.transport.write(
                b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (status, kind, len(body), body)
            )
        if close:
            self.transport.close()


def run_receiver(port: int) -> None:
    """Answer 204 to every event and note (webhook-id, arrival); ``GET
    /arrivals`` hands the notes over and forgets them."""
    import uvloop

    async def serve() -> None:
        arrivals: list[tuple[str, float]] = []
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Receiver(arrivals), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


async def arrivals(url: str) -> list[tuple[str, float]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/arrivals") as r:
        return [(i, t) for i, t in orjson.loads(await r.read())]


# -- servers -----------------------------------------------------------------------------


def destination(url: str, concurrency: int) -> dict[str, Any]:
    """The settings of a ``webhook`` destination pointing at the receiver."""
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    hook = {"name": "bench", "kind": "webhook", "url": url, "secrets": [secret]}
    return {"destinations": [{**hook, "concurrency": concurrency}]}


@contextlib.asynccontextmanager
async def servers(
    database_url: str, receiver: str, concurrency: int
) -> AsyncIterator[dict[str, Server]]:
    """``on`` (a destination: the receiver) and ``off`` (none), both serving."""
    workdir = Path(tempfile.mkdtemp(prefix="omniroute-delivery-"))
    sides = {
        "on": (ROOT / "rules", destination(f"{receiver}/hook", concurrency)),
        "off": (ROOT / "rules", {}),
    }
    async with serving(database_url, sides, workdir) as started:
        yield started


async def pending(con: asyncpg.Connection) -> int:
    n: int = await con.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
    return n


async def drained(con: asyncpg.Connection, timeout: float = 120) -> float:
    """Seconds until the outbox has nothing pending."""
    return await until_drained(con, timeout=timeout, every=0.1)


# -- part 1: throughput with deliveries on and off ---------------------------------------


@dataclass
class Round:
    side: str
    round: int
    rate: float
    p50: float
    p99: float
    errors: int
    cpu_ms: float  # server CPU per contact
    left: int = 0  # events pending at the end of the round
    drain: float = 0.0  # seconds to deliver them


async def throughput(database_url: str, args: argparse.Namespace) -> None:
    receiver_port = free_port()
    receiver = start([sys.executable, __file__, "--receiver", str(receiver_port)])
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    con = await connect(database_url)
    rounds: list[Round] = []
    run = uuid.uuid4().hex[:6]
    try:
        await wait_ready(receiver_url, receiver)
        async with servers(database_url, receiver_url, args.concurrency) as srv:
            for n in range(1, args.rounds + 1):
                order = ("on", "off") if n % 2 else ("off", "on")
                for side in order:
                    s = srv[side]
                    tag = f"{run}{side}{n}"
                    await drive(s.url, args.warmup, args.connections, 0.2, tag + "w")
                    await drained(con)
                    cpu0 = tree_cpu_seconds(s.proc.pid)
                    t0 = time.perf_counter()
                    count, errors, lat = await drive(
                        s.url, args.duration, args.connections, 0.2, tag
                    )
                    seconds = time.perf_counter() - t0
                    cpu = (tree_cpu_seconds(s.proc.pid) - cpu0) * 1000 / max(count, 1)
                    r = Round(
                        side,
                        n,
                        count / seconds,
                        percentile(lat, 0.5) * 1000,
                        percentile(lat, 0.99) * 1000,
                        errors,
                        cpu,
                    )
                    if side == "on":
                        r.left = await pending(con)
                        r.drain = await drained(con)
                    rounds.append(r)
                    print(
                        f"  round {n} deliveries {side:<3}: {r.rate:6.0f} contacts/s, "
                        f"p50 {r.p50:6.2f} ms, p99 {r.p99:6.2f} ms, errors {r.errors}, "
                        f"server CPU {r.cpu_ms:.2f} ms/contact"
                        + (
                            f", {r.left} events pending at the end ({r.drain:.1f} s to deliver)"
                            if side == "on"
                            else ""
                        ),
                        flush=True,
                    )
            got = len(await arrivals(receiver_url))
    finally:
        await con.close()
        stop(receiver)
    med = statistics.median
    on = [r for r in rounds if r.side == "on"]
    off = [r for r in rounds if r.side == "off"]
    rate_on, rate_off = med(r.rate for r in on), med(r.rate for r in off)
    p99_on, p99_off = med(r.p99 for r in on), med(r.p99 for r in off)
    print(
        f"throughput, {args.rounds} rounds of {args.duration:g} s per side, "
        f"{args.connections} connections:\n"
        f"  deliveries off: median {rate_off:.0f} contacts/s, p99 {p99_off:.2f} ms\n"
        f"  deliveries on:  median {rate_on:.0f} contacts/s, p99 {p99_on:.2f} ms "
        f"({got} events received)\n"
        f"  on/off: throughput {rate_on / rate_off:.2f}, p99 {p99_on / p99_off:.2f}",
        flush=True,
    )


# -- part 2: commit to delivery lag at a fixed rate --------------------------------------


async def lag(database_url: str, args: argparse.Namespace) -> None:
    receiver_port = free_port()
    receiver = start([sys.executable, __file__, "--receiver", str(receiver_port)])
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    con = await connect(database_url)
    try:
        await wait_ready(receiver_url, receiver)
        async with servers(database_url, receiver_url, args.concurrency) as srv:
            on = srv["on"]
            for rate in args.rate:
                await send_at_rate(on.url, rate, 2, uuid.uuid4().hex[:6])
                await drained(con)
                await arrivals(receiver_url)
                sent = await send_at_rate(on.url, rate, args.lag_seconds, uuid.uuid4().hex[:6])
                await drained(con)
                await lag_report(con, rate, sent, await arrivals(receiver_url), args)
    finally:
        await con.close()
        stop(receiver)


async def lag_report(
    con: asyncpg.Connection,
    rate: float,
    sent: Sent,
    seen: list[tuple[str, float]],
    args: argparse.Namespace,
) -> None:
    ok, errors, achieved = sent.ok, sent.errors, sent.rate
    first: dict[str, float] = {}
    for delivery_id, at in seen:
        first.setdefault(delivery_id, at)
    rows = await con.fetch(
        """SELECT d.delivery_id::text AS id, d.created_at, c.received_at
             FROM deliveries d JOIN contacts c USING (contact_id)
            WHERE d.delivery_id = ANY($1::uuid[])""",
        list(first),
    )
    from_write = [(first[r["id"]] - r["created_at"].timestamp()) * 1000 for r in rows]
    from_received = [(first[r["id"]] - r["received_at"].timestamp()) * 1000 for r in rows]

    def spread(xs: list[float]) -> str:
        return (
            f"p50 {percentile(xs, 0.5):.1f} ms, p99 {percentile(xs, 0.99):.1f} ms, "
            f"max {max(xs, default=float('nan')):.1f} ms"
        )

    print(
        f"lag at {rate:g} contacts/s for {args.lag_seconds:g} s (achieved "
        f"{achieved:.0f}/s, {ok} routed, {errors} errors, {len(rows)} events received):\n"
        f"  write (commit) -> arrival: {spread(from_write)}\n"
        f"  received -> arrival:       {spread(from_received)}",
        flush=True,
    )


# -- part 3: due overflow steps per second -----------------------------------------------


def waiting(n: int, at: datetime) -> NewRecord:
    """A routed chat contact received at ``at`` whose first step is due now
    and second in an hour."""
    steps = (
        OverflowStep(after_seconds=60, queue="general", drop_skills=("vip",), priority=60),
        OverflowStep(after_seconds=3600, priority=80),
    )
    return waiting_record(
        f"steps-{n}",
        at,
        queue="chat-general",
        skills=("chat", "vip"),
        sla_seconds=60,
        overflow=steps,
    )


async def steps(database_url: str, args: argparse.Namespace) -> None:
    settings = DatabaseSettings(url=database_url, pool_max=4)
    async with open_store(settings) as store:
        await store.reporting.ensure_partitions()
        t0 = time.perf_counter()
        at = datetime.now(UTC) - timedelta(minutes=5)
        for first in range(0, args.steps, 1000):
            batch = [waiting(n, at) for n in range(first, min(first + 1000, args.steps))]
            async with store.pool.acquire() as con, con.transaction():
                await stored_records.insert_many(con, batch)
        written = time.perf_counter() - t0
        for table in ("open_contacts", "contacts"):  # as autovacuum would have by now
            await store.pool.execute(f"VACUUM ANALYZE {table}", timeout=600)
        applied = statements = 0
        t0 = time.perf_counter()
        while True:  # as the overflow_steps job runs (router/runtime.py)
            done = await store.lifecycle.apply_due_steps(limit=args.batch)
            applied += len(done)
            statements += 1
            if len({s.contact_id for s in done}) < args.batch:
                break
        seconds = time.perf_counter() - t0
        left = await store.pool.fetchval(
            "SELECT count(*) FROM open_contacts WHERE next_step_at <= now()"
        )
    print(
        f"steps: {args.steps} waiting contacts written in {written:.1f} s; "
        f"{applied} due steps applied in {seconds:.2f} s ({statements} batches of "
        f"{args.batch}): {applied / seconds:.0f} steps/s; {left} still due",
        flush=True,
    )


# -- part 4: an outbox backlog drained ---------------------------------------------------


async def drain(
    database_url: str, args: argparse.Namespace, source: Path = ROOT, label: str = "drain"
) -> None:
    settings = DatabaseSettings(url=database_url, pool_max=2)
    async with open_store(settings):  # the schema
        pass
    con = await connect(database_url)
    receiver_port = free_port()
    receiver = start([sys.executable, __file__, "--receiver", str(receiver_port)])
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    workdir = Path(tempfile.mkdtemp(prefix="omniroute-drain-"))
    try:
        await wait_ready(receiver_url, receiver)
        t0 = time.perf_counter()
        sides = {"on": (ROOT / "rules", destination(f"{receiver_url}/hook", args.concurrency))}
        async with serving(database_url, sides, workdir, source) as started:
            proc = started["on"].proc
            own = con.get_server_pid()  # the insert's and the polls' backend: not counted

            async def backends() -> dict[int, float]:
                pids = await _backends(database_url)
                return {p: cpu_seconds(p) for p in pids if p != own}

            pg0 = await backends()
            cpu0, t1 = tree_cpu_seconds(proc.pid), time.perf_counter()
            # an event as routing writes it (about 600 bytes of JSON)
            await con.execute(
                """INSERT INTO deliveries
                          (delivery_id, destination, event_type, contact_id, payload)
                   SELECT gen_random_uuid(), 'bench', 'contact.routed', gen_random_uuid(),
                          jsonb_build_object('type', 'contact.routed',
                              'timestamp', '2026-11-30T21:44:26.512Z',
                              'data', jsonb_build_object(
                                  'contact_id', gen_random_uuid(), 'customer_id', gen_random_uuid(),
                                  'adapter', 'chat', 'channel', 'chat', 'external_id', 'chat-' || n,
                                  'decision', jsonb_build_object('queue', 'orders', 'priority', 55,
                                      'skills', '[]'::jsonb, 'sla_seconds', 60, 'tags', '[]'::jsonb,
                                      'preferred_agent', null, 'overflow', '[]'::jsonb,
                                      'rule', 'chat-order-page', 'ruleset', 'ddd573d89191')))
                     FROM generate_series(1, $1) AS n""",
                args.drain,
            )
            await drained(con, timeout=600)
            seconds = time.perf_counter() - t1
            cpu = tree_cpu_seconds(proc.pid) - cpu0
            pg = spent(pg0, await backends())
            figures = await outbox_statements(con)
        got = len({i for i, _ in await arrivals(receiver_url)})
    finally:
        await con.close()
        stop(receiver)
    total = time.perf_counter() - t0
    print(
        f"{label}: {args.drain} events written to the outbox in one statement, delivered in "
        f"{seconds:.1f} s: {args.drain / seconds:.0f} events/s, server CPU "
        f"{cpu * 1000 / args.drain:.3f} ms/event, its PostgreSQL backends' "
        f"{pg * 1000 / args.drain:.3f} ms/event; {got} distinct ids received "
        f"(concurrency {args.concurrency}; the server started in {t1 - t0:.1f} s, "
        f"{total:.1f} s in all){figures}",
        flush=True,
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", help="a server to make scratch databases on")
    p.add_argument("--parts", default=",".join(PARTS), help="which of " + ", ".join(PARTS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="seconds per side and round")
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument(
        "--rate",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[500.0],
        help="contacts/s for the lag, e.g. 500,200",
    )
    p.add_argument(
        "--concurrency", type=int, default=8, help="the destination's concurrency (default 8)"
    )
    p.add_argument("--lag-seconds", type=float, default=10)
    p.add_argument("--steps", type=int, default=20_000, help="due steps to apply")
    p.add_argument("--batch", type=int, default=500, help="rows per statement (lifecycle.batch)")
    p.add_argument("--drain", type=int, default=20_000, help="outbox events to drain")
    p.add_argument("--before", metavar="REV", help="the drain of this git revision too")
    args = p.parse_args()
    quiet_logs(logging.WARNING)  # no migration lines
    parts = args.parts.split(",")
    async with postgres_server(args.database_url) as base:
        where = "embedded PostgreSQL" if not args.database_url else "PostgreSQL at the URL"
        print(f"{where}, {os.cpu_count()} CPUs", flush=True)
        every = (("throughput", throughput), ("lag", lag), ("steps", steps), ("drain", drain))
        for name, part in every:
            if name in parts:
                async with scratch_database(base) as url:
                    await part(url, args)
        if args.before and "drain" in parts:  # the drain of an older revision, after
            with tempfile.TemporaryDirectory(prefix="omniroute-before-") as workdir:
                source = source_of(args.before, Path(workdir))
                async with scratch_database(base) as url:
                    await drain(url, args, source, f"drain @{args.before}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receiver"]:
        run_receiver(int(sys.argv[2]))
    else:
        asyncio.run(main())
