"""Instructions per event of the events' path in the service, piece by piece
(docs/deliveries.md), without the database's own work:

    python bench/event_path.py                        # this tree
    python bench/event_path.py --before main          # and main, side by side
    python bench/event_path.py --before main --events 2000 --keep DIR

The pieces, each over ``--events`` events for one ``webhook`` destination:

- ``routed``: the ``contact.routed`` outbox rows of records about to be
  written (``Destinations.routed``) and their insert's columns
  (``deliveries.columns``, the events' JSON text)
- ``offered``: the ``contact.offered`` rows of offers just made
  (``Destinations.offered``) and their insert's columns
- ``dispatch``: the dispatcher's work from a claim's rows to their marks
  (``Dispatcher.tick`` over a store whose ``claim`` hands out recorded rows
  and whose ``mark`` takes every mark): the lanes, the attempts' requests
  (signed), the HTTP exchange with a receiver on a local socket in the same
  process (its own few hundred instructions an event, alike on both sides,
  are counted too), the marks' batches and what follows them (metrics, the
  lag)

Each side runs in one process under valgrind's callgrind, counting only
inside ``sys.call_tracing`` (each piece's one pass over the events, after a
warm-up pass); with ``PYTHONHASHSEED=0`` two runs of the same code agree to
a few tenths of a per cent. ``--before REV`` runs the same pieces over the
code of ``REV`` (``git archive`` of router/ and adapters/, as
bench/pipeline_cpu.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import types
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import callgrind
from sources import source_of

ROOT = Path(__file__).resolve().parent.parent
PIECES = ("routed", "offered", "dispatch")
SECRET = "whsec_" + base64.b64encode(b"bench-event-path-key-0123456789ab").decode()


def _records(count: int) -> list[Any]:
    """Records as the pipeline writes them (a decision with skills, tags and
    overflow steps; half of them from known customers)."""
    from router.models import (
        Contact,
        CustomerContext,
        Decision,
        Identifier,
        OverflowStep,
        uuid7,
    )
    from router.store import NewRecord

    at0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        at = at0 + timedelta(microseconds=1373 * n)
        contact = Contact(
            channel="chat",
            provider="chat",
            external_id=f"chat-{n}",
            thread_id=f"thread-{n}",
            identifiers=(Identifier(kind="email", value=f"c{n}@example.com"),),
            subject=None,
            text="where is my parcel",
            sent_at=at,
            attributes={},
        )
        known = n % 2 == 0
        context = CustomerContext(customer_id=uuid.UUID(int=n + 1), known=known)
        decision = Decision(
            queue="support",
            priority=50 + n % 7,
            skills=("en",),
            sla_seconds=300,
            tags=("chat",),
            overflow=(OverflowStep(after_seconds=120, queue="general"),),
            rule="default",
            ruleset="bench-v1",
        )
        out.append(
            NewRecord(
                contact_id=uuid7(at),
                received_at=at,
                adapter="chat",
                contact=contact,
                customer_id=context.customer_id if known else None,
                context=context,
                decision=decision,
                trace=None,
                timings={"total_ms": 0.5},
                lifetime=3600.0,
            )
        )
    return out


def _made(records: list[Any]) -> list[Any]:
    """An offer for each record, as ``offers.offer`` hands them to the outbox."""
    from router.store.offers import Made

    return [
        Made(
            offer_id=uuid.UUID(int=(1 << 100) + n),
            contact_id=r.contact_id,
            agent_id=f"agent-{n % 50}",
            queue=r.decision.queue,
            channel=r.contact.channel,
            units=1,
            offered_at=r.received_at + timedelta(milliseconds=3, microseconds=n),
            expires_at=r.received_at + timedelta(seconds=30, milliseconds=3, microseconds=n),
            adapter=r.adapter,
            offers=1,
            customer_id=r.customer_id,
            external_id=r.contact.external_id,
        )
        for n, r in enumerate(records)
    ]


def _stored(text: str) -> str:
    """An event's JSON text as a claim reads it back (``jsonb``'s output:
    keys by length, then bytes; ``", "`` and ``": "``)."""

    def ordered(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ordered(v[k]) for k in sorted(v, key=lambda k: (len(k), k))}
        if isinstance(v, list):
            return [ordered(x) for x in v]
        return v

    return json.dumps(ordered(json.loads(text)), ensure_ascii=False)


class _Receiver(asyncio.Protocol):
    """The destination: answers each request (head, then ``Content-Length``
    bytes of body) with a 204."""

    ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            at = buffer.find(b"Content-Length: ", 0, end) + 16
            length = int(buffer[at : buffer.find(b"\r\n", at)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            answers += 1
        self.buffer = buffer
        if answers:
            assert self.transport is not None
            self.transport.write(self.ANSWER * answers)


def child(count: int) -> None:
    """Every piece on the code importable here: a warm-up pass, then the
    counted one inside ``sys.call_tracing``."""
    import orjson

    from router.logs import configure
    from router.metrics import Metrics
    from router.outbound import Destinations
    from router.outbound.client import Client
    from router.outbound.dispatcher import Dispatcher
    from router.settings import DeliverySettings, LogSettings, WebhookDestination
    from router.store import deliveries
    from router.store.deliveries import Claimed

    configure(LogSettings(level="info", format="json"))
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the log lines)

    records = _records(count)
    made = _made(records)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def listen() -> int:
        server = await loop.create_server(_Receiver, "127.0.0.1", 0)
        port: int = server.sockets[0].getsockname()[1]
        return port

    port = loop.run_until_complete(listen())
    dest = WebhookDestination.model_validate(
        {"name": "bench", "url": f"http://127.0.0.1:{port}/hook", "secrets": [SECRET]}
    )
    destinations = Destinations([dest])

    def routed() -> None:
        for r in records:
            deliveries.columns(destinations.routed(r))

    def offered() -> None:
        deliveries.columns(destinations.offered(made))

    # the rows a claim reads back: half routed, half offered events
    events = [e for r in records for e in destinations.routed(r)]
    events += destinations.offered(made)
    texts = [_stored(t) for t in deliveries.columns(events)[4]]
    created = datetime.now(UTC)

    def claimed() -> list[Any]:
        return [
            Claimed(
                e.delivery_id,
                e.destination,
                e.event_type,
                text,
                1,
                created,
                created,
                (n // 40, n % 40 + 1),
            )
            for n, (e, text) in enumerate(zip(events, texts, strict=True))
        ][: 2 * count : 2]  # ``count`` events, routed and offered alike

    state: dict[str, Any] = {}

    class Outbox:
        async def claim(self, destination: str, *, limit: int, lease: float) -> list[Any]:
            rows: list[Any] = state["rows"]
            taken, state["rows"] = rows[:limit], rows[limit:]
            return taken

        async def mark(self, marks: Any) -> list[bool]:
            state["marked"] += len(marks)
            if state["marked"] >= count:
                state["done"].set()
            return [True] * len(marks)

    metrics = Metrics()

    async def run() -> None:
        client = Client()
        store = types.SimpleNamespace(outbox=Outbox())
        d = Dispatcher(store, [dest], DeliverySettings(), metrics, client)  # type: ignore[arg-type]
        state.update(rows=claimed(), marked=0, done=asyncio.Event())
        d._marks.start()
        try:
            while not state["done"].is_set():
                d._wake.clear()
                await d.tick()
                waits = [asyncio.ensure_future(e.wait()) for e in (d._wake, state["done"])]
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in pending:
                    w.cancel()
        finally:
            await d._marks.stop()
            await client.close()

    def dispatch() -> None:
        loop.run_until_complete(run())

    del orjson
    for fn in (routed, offered, dispatch):
        fn()  # warm up
        sys.call_tracing(fn, ())


def counted(source: Path, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Instructions per event of each piece of the code in ``source``."""
    argv = [sys.executable, __file__, "--child", str(source), "--events", str(args.events)]
    out = workdir / f"callgrind-{source.name}.out"
    return callgrind.per_piece(argv, out, PIECES, args.events, args.keep, source.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--before", metavar="REV", help="also the code at this git revision")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep each piece's callgrind profile in DIR (callgrind_annotate reads them)",
    )
    p.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        child(args.events)
        return
    sides = [("this tree", ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            sides.insert(0, (args.before, source_of(args.before, Path(tmp))))
        results = [(name, counted(src, args, Path(tmp))) for name, src in sides]
    head = f"{'instr/event':<14}" + "".join(f"{name:>14}" for name, _ in results)
    if len(results) == 2:
        head += f"{'new/old':>10}"
    print(head)
    for piece in PIECES:
        line = f"{piece:<14}" + "".join(f"{r[piece]:>14,.0f}" for _, r in results)
        if len(results) == 2:
            line += f"{results[1][1][piece] / results[0][1][piece]:>10.2f}"
        print(line)
    print(f"({args.events} events a piece; instructions counted by callgrind, one pass a piece)")


if __name__ == "__main__":
    main()
