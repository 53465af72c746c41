"""Instructions of one assignment round's Python per offer made, without
the database's work: the agents' and waiting contacts' rows into ``Agent``
and ``Waiting``, the choice (``router.assignment.choose``, as the assigner
calls it), the pairs, and the offer statement's arguments
(``router.store.offers.assign_round`` and what it calls).

    python bench/round_cpu.py                  # this tree
    python bench/round_cpu.py --before main    # and main, in the same run

The round runs on a connection that answers each statement with rows made
beforehand: the agents' and contacts' rows are real driver records (read
from PostgreSQL once, before counting: ``--database-url``, else
DATABASE_URL, else the local server), the other answers as the database
would give them. The round runs once to warm up (its answers recorded),
then once more inside ``sys.call_tracing``, which valgrind's callgrind
counts alone (as ``bench/pipeline_cpu.py --instructions``), the heap
settled before as ``serve`` settles it (``router.heap``); hash
randomization is off, so that two runs of the same code agree closely.

The shapes:

- ``full``: ``bench/load.py --full``'s: 200 agents available with every
  skill at level 3 and room for every contact (a contact takes one unit),
  each holding some open offers already, every queue of rules/ assigned
  (most_available), 128 contacts arrived since the last round.
- ``backlog``: 2,000 contacts waiting in 4 queues (one mode each, one of
  them most_available again) on the 4 channels, with skills at levels,
  some passed over by an agent or waiting for a preferred one; 50 agents
  with capacity 100 (voice 100 units, chat 34, social 25, email 20), some
  skills each, some with channel maximums, some partly loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import callgrind
from sources import source_of

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("full", "backlog")
CHANNELS = ("voice", "chat", "email", "social")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

_AGENT_ROWS = """
SELECT * FROM unnest($1::text[], $2::jsonb[], $3::int[], $4::int[], $5::text[],
                     $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::jsonb[])
    AS t(agent_id, skills, capacity, load_units, presence, idle_since, last_offer_at,
         load_by_channel, channel_max)
"""

_WAITING_ROWS = """
SELECT contact_id, queue, channel, priority, string_to_array(skills, ',') AS skills,
       received_at, preferred_agent, preferred_until,
       string_to_array(passed_over, ',') AS passed_over
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[],
              $7::text[], $8::timestamptz[], $9::text[])
    AS t(contact_id, queue, channel, priority, skills, received_at, preferred_agent,
         preferred_until, passed_over)
"""


# -- the shapes ---------------------------------------------------------------------


def _queues_of_rules() -> dict[str, list[str]]:
    import yaml

    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        for name, spec in (yaml.safe_load(path.read_text()).get("queues") or {}).items():
            out[name] = list((spec or {}).get("skills", []))
    return out


def shape(name: str) -> dict[str, Any]:
    """Agents and waiting contacts (as column lists), queues with their
    assign blocks and the units per channel, the same every run."""
    rnd = random.Random(7)
    agents: list[tuple[Any, ...]] = []
    waiting: list[tuple[Any, ...]] = []
    if name == "full":
        queues = _queues_of_rules()
        skills = {s: 3 for q in queues.values() for s in q}
        for n in range(200):
            load = rnd.randrange(300, 340)
            by_channel = {c: load // 4 + (i < load % 4) for i, c in enumerate(CHANNELS)}
            agents.append(
                (
                    f"bench-{n + 1}",
                    skills,
                    100_000,
                    load,
                    "available",
                    NOW - timedelta(minutes=10),
                    NOW - timedelta(milliseconds=rnd.randrange(1, 900)),
                    by_channel,
                    {},
                )
            )
        names = list(queues)
        for _ in range(128):
            queue = rnd.choice(names)
            waiting.append(
                (
                    uuid.UUID(int=rnd.getrandbits(128)),
                    queue,
                    rnd.choice(CHANNELS),
                    rnd.choice((30, 50, 60)),
                    ",".join(queues[queue]),
                    NOW - timedelta(milliseconds=rnd.randrange(1, 900)),
                    None,
                    None,
                    "",
                )
            )
        assign = {q: {"mode": "most_available", "offer_timeout": 3600} for q in names}
        units = {c: 1 for c in CHANNELS}
    else:
        modes = ["most_available", "longest_idle", "round_robin", "most_available"]
        names = ["sales", "support", "billing", "vip"]
        skill_names = ["de", "fr", "billing", "returns", "vip"]
        assign = {q: {"mode": m, "offer_timeout": 60} for q, m in zip(names, modes, strict=True)}
        units = {"voice": 100, "chat": 34, "social": 25, "email": 20}
        for n in range(50):
            skills = {s: rnd.randint(1, 5) for s in rnd.sample(skill_names, rnd.randint(1, 4))}
            held = rnd.choice((0, 0, 20, 34, 50))
            most = {"chat": 2} if n % 5 == 0 else {}
            agents.append(
                (
                    f"agent-{n:03d}",
                    skills,
                    100,
                    held,
                    "available" if n % 10 else "busy",
                    NOW - timedelta(seconds=rnd.randrange(1, 3600)),
                    None if n % 7 == 0 else NOW - timedelta(seconds=rnd.randrange(1, 3600)),
                    {"chat": 1} if held == 34 else {"email": 1} if held == 20 else {},
                    most,
                )
            )
        for n in range(2000):
            need = rnd.sample(skill_names, rnd.choice((0, 1, 1, 2)))
            skills = ",".join(f"{s}:{rnd.randint(1, 3)}" if rnd.random() < 0.5 else s for s in need)
            preferred = f"agent-{rnd.randrange(50):03d}" if n % 50 == 0 else None
            waiting.append(
                (
                    uuid.UUID(int=rnd.getrandbits(128)),
                    rnd.choice(names),
                    rnd.choice(CHANNELS),
                    rnd.choice((10, 50, 50, 90)),
                    skills,
                    # equal times now and then: the ties the order breaks
                    NOW - timedelta(seconds=rnd.randrange(1, 600)),
                    preferred,
                    None if preferred is None else NOW + timedelta(seconds=20),
                    ",".join(f"agent-{rnd.randrange(50):03d}" for _ in range(n % 3 == 0)),
                )
            )
    return {"agents": agents, "waiting": waiting, "assign": assign, "units": units}


# -- the child: one round, on the code importable here ------------------------------


class Answers:
    """A connection answering each statement as the database would, from the
    shape's rows (``record``), or replaying what it answered (``replay``)."""

    def __init__(self, agents: list[Any], waiting: list[Any], now: datetime) -> None:
        self.agents = agents
        self.waiting = waiting
        self.now = now
        self.recorded: list[tuple[str, Any]] = []
        self.replaying = False
        self.at = 0

    def rebind(self, agents: list[Any], waiting: list[Any]) -> None:
        """Answer with these rows (read afresh: the round moves the decoded
        JSON of the agents' rows it read) where it answered with the first."""
        fresh = {id(a): b for a, b in zip(self.agents, agents, strict=True)}
        fresh |= {id(a): b for a, b in zip(self.waiting, waiting, strict=True)}
        self.recorded = [
            (sql, [fresh.get(id(r), r) for r in answer] if isinstance(answer, list) else answer)
            for sql, answer in self.recorded
        ]
        self.agents, self.waiting = agents, waiting

    def transaction(self) -> Any:
        return _nothing()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return self._answer(sql, args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return self._answer(sql, args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return self._answer(sql, args)

    def _answer(self, sql: str, args: tuple[Any, ...]) -> Any:
        if self.replaying:
            kind, answer = self.recorded[self.at]
            self.at += 1
            if kind != sql:
                raise RuntimeError("the replayed round asked another statement")
            if sql.lstrip().startswith("WITH p AS"):  # the offers, under this run's ids
                return [(offer_id, *row[1:]) for offer_id, row in zip(args[0], answer, strict=True)]
            return answer
        answer = self._compute(sql, args)
        self.recorded.append((sql, answer))
        return answer

    def _compute(self, sql: str, args: tuple[Any, ...]) -> Any:
        text = " ".join(sql.split())
        if text == "SELECT clock_timestamp()":
            return self.now
        if text.startswith("SELECT agent_id, skills") and "presence = 'available'" in text:
            smallest = args[0]
            return [
                r
                for r in self.agents
                if r["presence"] == "available" and r["load_units"] + smallest <= r["capacity"]
            ]
        if text.startswith("SELECT agent_id, skills"):  # named agents
            wanted = set(args[-1])
            return [r for r in self.agents if r["agent_id"] in wanted]
        if "CROSS JOIN LATERAL" in text:  # the waiting contacts of queues without aging
            queues, fetch, channels = args
            out = []
            for q in queues:
                for ch in channels:
                    rows = [r for r in self.waiting if r["queue"] == q and r["channel"] == ch]
                    rows.sort(key=lambda r: (-r["priority"], r["received_at"]))
                    out += rows[:fetch]
            return out
        if text.startswith("SELECT contact_id FROM open_contacts"):  # the claim
            return [{"contact_id": c} for c in args[0]]
        if text.startswith("SELECT agent_id FROM agents"):  # locked
            return [{"agent_id": a} for a in args[0]]
        if text.startswith("UPDATE agents"):  # the loads raised
            return [{"agent_id": a} for a in args[0]]
        if text.startswith("WITH p AS"):  # the offers
            return [
                (
                    offer_id,
                    contact_id,
                    agent_id,
                    queue,
                    channel,
                    units,
                    self.now,
                    self.now + timedelta(seconds=timeout),
                    "chat",
                    1,
                    None,
                    f"x-{n}",
                )
                for n, (offer_id, contact_id, agent_id, queue, channel, units, timeout) in (
                    enumerate(zip(*args[:7], strict=True))
                )
            ]
        raise RuntimeError(f"unexpected statement: {text[:80]}")


@asynccontextmanager
async def _nothing() -> Any:
    yield


class Pool:
    def __init__(self, con: Answers) -> None:
        self.con = con

    @asynccontextmanager
    async def acquire(self) -> Any:
        yield self.con


async def _rows(url: str, data: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The shape's rows as the driver hands them to the service."""
    import asyncpg
    import orjson

    con = await asyncpg.connect(url)
    try:
        await con.set_type_codec(
            "jsonb",
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            format="text",
        )
        agents = await con.fetch(_AGENT_ROWS, *map(list, zip(*data["agents"], strict=True)))
        waiting = await con.fetch(_WAITING_ROWS, *map(list, zip(*data["waiting"], strict=True)))
    finally:
        await con.close()
    return list(agents), list(waiting)


def child(name: str, url: str, instructions: bool) -> dict[str, Any]:
    """One round of the shape ``name``: warmed up, then counted."""
    import structlog

    from router.assigner import Assigner
    from router.assignment import Policy
    from router.settings import AgentSettings
    from router.store.offers import assign_round

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    data = shape(name)
    agents, waiting = asyncio.run(_rows(url, data))
    current = {
        q: Policy(mode=spec["mode"], offer_timeout=float(spec["offer_timeout"]))
        for q, spec in data["assign"].items()
    }
    settings = AgentSettings(units=data["units"])
    assigner = Assigner(None, lambda: None, settings)  # type: ignore[arg-type]
    con = Answers(agents, waiting, NOW)
    loop = asyncio.new_event_loop()
    result: list[Any] = []

    def one() -> None:
        con.at = 0
        result[:] = [
            loop.run_until_complete(
                assign_round(
                    Pool(con),  # type: ignore[arg-type]
                    policies=current,
                    choose=lambda w, a, now, most: assigner._choose(current, w, a, now, most),
                    limit=500,
                    units=settings.units_of,
                    outbox=None,
                    agents=None,
                )
            )
        ]

    one()
    con.replaying = True
    con.rebind(*asyncio.run(_rows(url, data)))
    # as ``serve`` once it listens: start-up's objects frozen, the young
    # collections spaced out; and none pending
    from router import heap

    heap.settle()
    gc.collect()
    if instructions:
        sys.call_tracing(one, ())
    else:
        one()
    done = result[0]
    return {"offers": len(done.made), "agents": done.agents, "waiting": done.waiting}


def counted(source: Path, name: str, url: str, workdir: Path) -> dict[str, Any]:
    out = workdir / f"callgrind-{source.name}-{name}.out"
    argv = [sys.executable, __file__, "--child", str(source), "--shape", name]
    run = callgrind.run([*argv, "--database-url", url], out, dumps=False)
    figures: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    figures["instructions"] = callgrind.total(out)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", metavar="REV", help="also the code at this git revision")
    p.add_argument("--shape", choices=SHAPES, action="append", help="(default: both)")
    p.add_argument("--database-url", help="a PostgreSQL server (the rows' records only)")
    p.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    url = (
        args.database_url
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    shapes = args.shape or list(SHAPES)
    if args.child:
        sys.path.insert(0, args.child)
        print(json.dumps(child(shapes[0], url, instructions=True)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sides: list[tuple[str, Path]] = [("this tree", ROOT)]
        if args.before:
            sides.insert(0, (args.before, source_of(args.before, Path(tmp))))
        head = f"{'instr/offer':<12}" + "".join(f"{n:>14}" for n, _ in sides)
        print(head + (f"{'new/old':>10}" if len(sides) == 2 else "") + "  round")
        for name in shapes:
            got = [counted(src, name, url, Path(tmp)) for _, src in sides]
            per = [g["instructions"] / max(1, g["offers"]) for g in got]
            line = f"{name:<12}" + "".join(f"{v:>14,.0f}" for v in per)
            if len(sides) == 2:
                line += f"{per[1] / per[0]:>10.3f}"
            last = got[-1]
            print(
                f"{line}  {last['offers']} offers, {last['waiting']} waiting read,"
                f" {last['agents']} agents"
                + (
                    ""
                    if all(g["offers"] == last["offers"] for g in got)
                    else " (OFFERS DIFFER: " + ", ".join(str(g["offers"]) for g in got) + ")"
                )
            )
    print("(instructions of one round's Python, counted by callgrind, per offer made)")


if __name__ == "__main__":
    main()
