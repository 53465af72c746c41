"""CPU of the service's Python routing path per contact, stage by stage,
without HTTP and without the database.

    python bench/pipeline_cpu.py                      # this tree
    python bench/pipeline_cpu.py --before main        # and main, side by side
    python bench/pipeline_cpu.py --before main --turns 9 --rounds 3
    python bench/pipeline_cpu.py --before main --instructions --contacts 200

Each stage runs over ``--contacts`` chat deliveries (as bench/load.py sends
them: one contact, an email identifier, half of them from returning
customers) and is timed with ``time.process_time``; a stage's figure is the
median over ``--rounds`` rounds of CPU microseconds per contact, and the
figure printed the median of ``--turns`` such processes. The stages:

- ``parse``: the adapter's verify and parse
- ``normalize``: identifier normalization and the contact's id (uuid7)
- ``resolve_in``: the resolve batch's keys and its JSON argument (``store/customers.py``;
  the recorded rows handed back are counted too, alike on both sides)
- ``context``: the store's rows into ``Recognized`` contexts (``build_context``),
  from recorded context JSON as the driver decodes it
- ``decide``: the rules (``rules/`` of the repository, ``explain=False``)
- ``record``: the ``NewRecord`` and the insert's columns (``store/records.py``)
- ``reply``: the ``Routed`` answer and the adapter's reply body
- ``deliver``: the whole ``Pipeline.deliver`` with the batchers' seams given
  the same store code over recorded rows (logging to a null stream, metrics on)
- ``request``: the whole HTTP request: the app of ``router.web`` (its
  middlewares, routes and webhook handler) served on a loopback socket as
  ``serve`` serves it (uvloop, the log lines of a loop turn written together,
  the collector settled), the same pipeline behind it with its batchers
  started, and a client in the same process keeping 64 keep-alive
  connections busy (as wrk in bench/load.py; its own work is counted too)

``--instructions`` counts instead of timing: each side's stages run in one
process under valgrind's callgrind, which counts the instructions of each
stage's one pass over the contacts (after a warm-up pass); instruction
counts do not move with the load of a shared machine, and two runs of the
same code agree within a few tenths of a per cent.

With ``--before REV`` the same script runs once more over the code of ``REV``
(``git archive`` of router/ and adapters/, as bench/load.py's ``--before``),
each side in processes of its own, the sides taking turns (so that the load
of a shared machine weighs on both alike), and both are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import callgrind
from sources import source_of

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
WORDS = ["refund for my order", "where is my parcel", "billing question", "product advice"]
STAGES = (
    "parse",
    "normalize",
    "resolve_in",
    "context",
    "decide",
    "record",
    "reply",
    "deliver",
    "request",
)
#: connections the ``request`` stage's client keeps busy (wrk's in bench/load.py)
CONNECTIONS = 64


def _context_json(n: int, at: datetime) -> str | None:
    """A context as resolve_many returns it (jsonb text): half the customers
    returning, with counts, a last contact and now and then a journey."""
    if n % 2:
        return None  # a new customer: the empty context of resolve_contact
    last = (at - timedelta(hours=3 + n % 40)).isoformat()
    journeys = []
    if n % 10 == 0:
        stamp = (at - timedelta(days=2)).isoformat()
        journeys.append(
            {
                "ref": f"order-{n}",
                "type": "order",
                "step": "shipped",
                "opened_at": stamp,
                "updated_at": stamp,
                "data": {"carrier": "dhl", "items": 2},
            }
        )
    return json.dumps(
        {
            "name": None,
            "tier": ("basic", "gold", "vip")[n % 3],
            "language": "en",
            "segment": None,
            "attributes": {"account_manager": "ag-7"} if n % 3 == 2 else {},
            "per_channel": {
                "chat": {"contacts_24h": 1 + n % 3, "contacts_7d": 3, "contacts_30d": 5},
                "email": {"contacts_24h": 0, "contacts_7d": 1, "contacts_30d": 2},
            },
            "last": {
                "at": last,
                "channel": "email" if n % 4 == 0 else "chat",
                "queue": "general",
                "agent": None,
                "rule": None,
            },
            "conversation": None,
            "journeys": journeys,
        }
    )


def _measure(rounds: int, count: int, run: Callable[[], Any]) -> float:
    """Median CPU microseconds per contact of ``run`` (which handles ``count``)."""
    run()  # warm up
    figures = []
    for _ in range(rounds):
        t0 = time.process_time()
        run()
        figures.append((time.process_time() - t0) * 1e6 / count)
    return statistics.median(figures)


def _http_requests(count: int, port: int) -> list[bytes]:
    """The deliveries of the ``request`` stage as a client writes them (the
    headers ``bench/load.lua`` has wrk send), signed now."""
    from adapters.generic import sign

    now = int(time.time())
    out = []
    for n in range(count):
        body = _body(n)
        head = (
            "POST /v1/webhooks/chat HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\n"
            f"X-Omniroute-Signature: {sign(body, SECRET, now)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def _body(n: int) -> bytes:
    """The JSON body of delivery ``n`` (one chat contact, as bench/load.py's)."""
    import orjson

    return orjson.dumps(
        {
            "id": f"bench-{n}",
            "customer": {"email": f"C{n}.Bench@Example.com"},
            "text": WORDS[n % len(WORDS)],
            "language": "en",
        }
    )


class _Pass:
    """One pass of the ``request`` stage's client: the requests left to
    write, the answers still due, those that were not 200."""

    def __init__(self, wire: list[bytes], done: asyncio.Future[None]) -> None:
        self.queue = list(reversed(wire))
        self.due = len(wire)
        self.failed = 0
        self.done = done


class _Client(asyncio.Protocol):
    """One keep-alive connection of the ``request`` stage's client (as one
    of wrk's): it writes a request, reads the whole answer, then writes the
    next one."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.run: _Pass | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, run: _Pass) -> None:
        self.run = run
        self.next()

    def next(self) -> None:
        assert self.run is not None and self.transport is not None
        if self.run.queue:
            self.transport.write(self.run.queue.pop())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run is not None and not self.run.done.done():
            self.run.done.set_exception(RuntimeError(f"the service closed a connection: {exc}"))

    def data_received(self, data: bytes) -> None:
        assert self.run is not None
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:") + 15
        length = int(head[at : head.find(b"\r\n", at)])
        if len(self.buffer) < end + 4 + length:
            return
        if not head.startswith(b"http/1.1 200"):
            self.run.failed += 1
        self.buffer = self.buffer[end + 4 + length :]
        self.run.due -= 1
        if self.run.due == 0:
            self.run.done.set_result(None)
        else:
            self.next()


def child(count: int, rounds: int, instructions: bool = False) -> dict[str, float]:
    """Run every stage on the code importable here; CPU µs per contact by
    stage (with ``instructions``: each stage once more, inside
    ``sys.call_tracing``, for an instruction counter to count that call)."""
    import orjson
    import structlog

    import adapters
    from adapters.base import AdapterSpec
    from adapters.generic import sign
    from router.logs import configure
    from router.metrics import Metrics
    from router.models import Contact, Routed, WebhookRequest, trusted, uuid7
    from router.pipeline import Pipeline, _assignment
    from router.recognition import resolution
    from router.recognition.identity import Normalizer
    from router.rules import load_ruleset
    from router.settings import LogSettings
    from router.store import customers, records
    from router.store.batching import Batcher

    configure(LogSettings(level="info", format="json"))
    null = open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = null  # the log lines (the service writes them to stderr)

    adapter = adapters.build(AdapterSpec(name="chat", kind="chat", secrets=(SECRET,)))
    ruleset = load_ruleset([ROOT / "rules"])
    normalizer = Normalizer()
    at0 = datetime.now(UTC).replace(microsecond=0)
    now = int(time.time())
    requests = []
    for n in range(count):
        body = _body(n)
        requests.append(
            WebhookRequest(
                method="POST",
                url="http://127.0.0.1/v1/webhooks/chat",
                headers={
                    "content-type": "application/json",
                    "x-omniroute-signature": sign(body, SECRET, now),
                },
                query={},
                body=body,
                received_at=at0 + timedelta(milliseconds=n),
            )
        )
    contexts = [_context_json(n, at0) for n in range(count)]
    customer_ids = [uuid.uuid4() for _ in range(count)]

    class Rows:
        """A connection whose ``fetch`` answers as the database would, from
        recorded rows (decoded by the driver's json codec, as in the service)."""

        def __init__(self) -> None:
            self.offset = 0

        async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
            if "resolve_" in sql:
                # resolve_batch: arrays, the external ids second; resolve_many
                # (earlier revisions): one JSON argument
                if "resolve_batch" in sql:
                    external_ids = args[1]
                else:
                    external_ids = [item["e"] for item in orjson.loads(args[0])]
                out = []
                for idx, external_id in enumerate(external_ids):
                    n = int(external_id.rsplit("-", 1)[1])
                    raw = contexts[n]
                    out.append(
                        {
                            "idx": idx,
                            "dup_contact_id": None,
                            "dup_customer_id": None,
                            "dup_decision": None,
                            "customer_id": customer_ids[n],
                            "known": raw is not None,
                            "context": orjson.loads(
                                raw or '{"attributes": {}, "per_channel": {}, "journeys": []}'
                            ),
                        }
                    )
                return out
            # every record written: the records' ids (one array of ids, or of
            # record_row tuples whose first field is the id)
            return [{"contact_id": c[0] if isinstance(c, tuple) else c} for c in args[0]]

    con = Rows()

    def run_sync(coro: Any) -> Any:
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        raise RuntimeError("the stage awaited something")

    # -- the stages, each over every contact, fed by the previous stage's output
    state: dict[str, Any] = {}

    def parse() -> None:
        out = []
        for r in requests:
            adapter.verify(r)
            parsed = adapter.parse(r)
            out.append((parsed, list(parsed.contacts)))
        state["parsed"] = out

    def normalize() -> None:
        out = []
        for (_, [contact]), r in zip(state["parsed"], requests, strict=True):
            identifiers = normalizer.all(contact.identifiers)
            if identifiers is not contact.identifiers:  # as Pipeline.route
                contact = trusted(Contact, {**contact.__dict__, "identifiers": identifiers})
            out.append(resolution.Lookup("chat", contact, uuid7(r.received_at), r.received_at))
        state["lookups"] = out

    def resolve_in() -> None:
        keys = [resolution.key(x) for x in state["lookups"]]
        state["found"] = run_sync(customers.resolve_many(con, keys))  # type: ignore[arg-type]

    def context() -> None:
        state["recognized"] = [
            resolution.recognized(x, f)
            for x, f in zip(state["lookups"], state["found"], strict=True)
        ]

    def decide() -> None:
        state["evaluations"] = [
            ruleset.decide(x.contact, f.context, x.at, explain=False)
            for x, f in zip(state["lookups"], state["recognized"], strict=True)
        ]

    def record() -> None:
        new = []
        steps = zip(state["lookups"], state["recognized"], state["evaluations"], strict=True)
        for x, f, e in steps:
            facts = _assignment(ruleset, e.decision, f.context, x.at)
            if isinstance(facts, dict):  # an older revision's: a dict of them
                facts = (
                    facts.get("assign", False),
                    facts.get("preferred_agent"),
                    facts.get("preferred_until"),
                )
            assign, preferred_agent, preferred_until = facts
            new.append(
                records.NewRecord(
                    contact_id=x.contact_id,
                    received_at=x.at,
                    adapter="chat",
                    contact=x.contact,
                    customer_id=None if f.anonymous else f.context.customer_id,
                    context=f.context,
                    decision=e.decision,
                    trace=e.trace,
                    timings={"parse_ms": 0.1, "context_ms": 0.2, "rules_ms": 0.1, "total_ms": 0.4},
                    context_degraded=f.context.degraded,
                    lifetime=3600.0,
                    assign=assign,
                    preferred_agent=preferred_agent,
                    preferred_until=preferred_until,
                    rollout=e.rollout,
                )
            )
        run_sync(records.insert_many(con, new))  # type: ignore[arg-type]
        state["records"] = new

    def reply() -> None:
        for (parsed, [contact]), rec in zip(state["parsed"], state["records"], strict=True):
            routed = Routed(
                contact_id=rec.contact_id,
                customer_id=rec.customer_id,
                duplicate=False,
                decision=rec.decision,
                external_id=contact.external_id,
            )
            adapter.reply([routed], parsed)

    async def claim(nonce: Any) -> bool:
        return True

    async def resolve_flush(lookups: Sequence[Any]) -> Any:
        async def resolve(keys: Any) -> Any:
            return await customers.resolve_many(con, keys)  # type: ignore[arg-type]

        return await resolution.resolve_many(resolve, lookups)

    async def write_flush(new: Sequence[Any]) -> Any:
        return await records.insert_many(con, new)  # type: ignore[arg-type]

    def made() -> Pipeline:
        """A pipeline over the recorded rows (its own batchers)."""
        return Pipeline(
            ruleset=lambda: ruleset,
            metrics=Metrics(),
            resolver=Batcher("resolve", resolve_flush),
            writer=Batcher("record", write_flush),
            claim=claim,
            normalizer=normalizer,
            lifetime=lambda adapter, channel: 3600.0,
        )

    pipeline = made()

    def deliver() -> None:
        for r in requests:
            run_sync(pipeline.deliver(adapter, r))

    # -- the whole request: the service's app (its middlewares, routes and
    # webhook handler) served on a loopback socket as ``serve`` serves it
    # (uvloop, the log lines written once per loop turn), its runtime the same
    # pipeline over recorded rows; a client in this process keeps
    # CONNECTIONS connections busy (its own work, alike on both sides, is
    # counted too: a few per cent of the whole)
    import types

    from aiohttp import web

    from router.settings import Settings
    from router.web import create_app
    from router.web.server import CONNECTIONS as WATCHED
    from router.web.state import RUNTIME

    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings = Settings.model_validate(
        {
            # the client's connections stay open from one stage's pass to the
            # next, which the instruction counter makes minutes apart
            "http": {
                "host": "127.0.0.1",
                "port": 0,
                "header_timeout": 3600,
                "keepalive_timeout": 3600,
            },
            "adapters": [{"name": "chat", "kind": "chat", "secrets": [SECRET]}],
            "log": {"level": "info", "format": "json"},
        }
    )
    served = made()  # the same, its batchers started on the loop as the service's
    app = create_app(settings)
    app.cleanup_ctx.clear()  # the runtime's: a stand-in with the pipeline above
    app[RUNTIME] = types.SimpleNamespace(  # type: ignore[misc]
        settings=settings,
        adapters={"chat": adapter},
        unknown_adapter=adapter,
        pipeline=served,
        rules=types.SimpleNamespace(active=types.SimpleNamespace(version=ruleset.version)),
        feed=types.SimpleNamespace(close=lambda: None),
    )
    runner = web.AppRunner(app, access_log=None)
    clients = [_Client() for _ in range(CONNECTIONS)]

    async def serve() -> int:
        await runner.setup()
        assert runner.server is not None
        server = await loop.create_server(app[WATCHED].factory(runner.server), "127.0.0.1", 0)
        served.resolver.start()
        served.writer.start()
        port: int = server.sockets[0].getsockname()[1]
        for client in clients:
            await loop.create_connection(lambda: client, "127.0.0.1", port)  # noqa: B023
        return port

    port = loop.run_until_complete(serve())
    wire = _http_requests(count, port)

    async def drive() -> None:
        run = _Pass(wire, loop.create_future())
        for client in clients:
            client.start(run)
        await run.done
        if run.failed:
            raise RuntimeError(f"{run.failed} answers were not 200")

    def request() -> None:
        if holding is None:
            loop.run_until_complete(drive())
            return
        with holding(loop):  # the lines of a loop turn written together, as ``serve``
            loop.run_until_complete(drive())

    from router import heap, logs

    holding = getattr(logs, "per_iteration", None)

    runs = (parse, normalize, resolve_in, context, decide, record, reply, deliver, request)
    figures = {}
    for name, fn in zip(STAGES, runs, strict=True):
        if name == "request":
            heap.settle()  # as ``serve`` does once it listens
        if instructions:
            fn()  # warm up, and the state of the stages after this one
            if name == "request":  # signed anew: the counter slows the process a lot
                wire[:] = _http_requests(count, port)
            sys.call_tracing(fn, ())
            figures[name] = 0.0
        else:
            figures[name] = _measure(rounds, count, fn)
    structlog.reset_defaults()
    return figures


def _child(source: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    """The command of a child process measuring the code in ``source``."""
    return [
        sys.executable,
        __file__,
        "--child",
        str(source),
        "--contacts",
        str(args.contacts),
        *extra,
    ]


def counted(source: Path, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Instructions per contact of each stage of the code in ``source``: one
    process under callgrind, counting only inside ``sys.call_tracing`` (the
    call the child makes each stage's counted run in) and writing a profile
    after each such call. Hash randomization is off, so that two runs of the
    same code count within a few tenths of a per cent."""
    out = workdir / f"callgrind-{source.name}.out"
    argv = _child(source, args, "--instructions")
    return callgrind.per_piece(argv, out, STAGES, args.contacts, args.keep, source.name)


def side(source: Path, args: argparse.Namespace) -> dict[str, float]:
    """One process on the code in ``source``: its figures for ``--rounds`` rounds."""
    out = subprocess.run(
        _child(source, args, "--rounds", str(args.rounds)),
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3, help="rounds in each process")
    p.add_argument(
        "--turns",
        type=int,
        default=5,
        help="processes per side, the sides taking turns (a shared machine's load "
        "then weighs on both alike); the figure is the median of the turns'",
    )
    p.add_argument("--before", metavar="REV", help="also the code at this git revision")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per contact (valgrind's callgrind, one process per"
        " side) instead of timing: immune to a shared machine's load",
    )
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="with --instructions: keep each stage's callgrind profile in DIR"
        " (callgrind_annotate reads them)",
    )
    p.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        print(json.dumps(child(args.contacts, args.rounds, args.instructions)))
        return
    sides = [("this tree", ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            sides.insert(0, (args.before, source_of(args.before, Path(tmp))))
        if args.instructions:
            results = [(name, counted(src, args, Path(tmp))) for name, src in sides]
        else:
            turns: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
            for turn in range(args.turns):
                for name, src in sides if turn % 2 == 0 else sides[::-1]:
                    turns[name].append(side(src, args))
            results = [
                (name, {s: statistics.median(t[s] for t in turns[name]) for s in STAGES})
                for name, _ in sides
            ]
    unit = "instr/contact" if args.instructions else "CPU us/contact"
    head = f"{unit:<14}" + "".join(f"{name:>14}" for name, _ in results)
    if len(results) == 2:
        head += f"{'new/old':>10}"
    print(head)
    for stage in STAGES:
        form = ">14,.0f" if args.instructions else ">14.1f"
        line = f"{stage:<14}" + "".join(f"{r[stage]:{form}}" for _, r in results)
        if len(results) == 2:
            line += f"{results[1][1][stage] / results[0][1][stage]:>10.2f}"
        print(line)
    if args.instructions:
        print(f"({args.contacts} contacts; instructions counted by callgrind, one pass a stage)")
    else:
        print(
            f"({args.contacts} contacts; median of {args.turns} processes per side taking"
            f" turns, each the median of {args.rounds} rounds; time.process_time)"
        )


if __name__ == "__main__":
    main()
