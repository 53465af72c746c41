"""Rounds a wake-up limits (docs/agents.md, "When rounds run"): a
notification that names agents (``agent:<id>``) runs a round over those
agents only, the notifications heard together one round over their union;
contacts arriving, the offers' timer and the sweep run rounds over every
agent, and the sweep finds an agent whose notification was lost. The
assigners run in this process on a database of this module, on a backlog
of waiting contacts written as routing writes them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest

from router.assigner import Assigner, Wakeups, policies
from router.assignment import Agent, Waiting, choose
from router.metrics import Metrics
from router.models import Contact, CustomerContext, Decision, uuid7
from router.rules import Ruleset, load_ruleset_text
from router.settings import AgentSettings
from router.store import DatabaseSettings, NewRecord, Store, agent_work, open_store
from router.store import offers as offers_store
from router.store import records as stored_records
from tests.support.agents import emptied, put_agent
from tests.support.apps import eventually

RULES = """
queues:
  desk:
    skills: [support]
    assign: {mode: most_available, offer_timeout: 1m}
  expert:
    skills: ["billing:3"]
    assign: {mode: longest_idle, offer_timeout: 1m}
defaults: {queue: desk}
rules: []
"""
SETTINGS = AgentSettings()


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset_text(RULES)


@pytest.fixture(scope="module")
async def store(own_database: str) -> AsyncIterator[Store]:
    async with open_store(DatabaseSettings(url=own_database, pool_max=6)) as opened:
        await opened.reporting.ensure_partitions()
        yield opened


@pytest.fixture
async def db(own_database: str, store: Store) -> AsyncIterator[asyncpg.Pool]:
    async with emptied(own_database) as pool:
        yield pool


@asynccontextmanager
async def running(store: Store, ruleset: Ruleset, sweep: float = 30.0) -> AsyncIterator[Metrics]:
    """An assigner running on ``store`` (its first round, over every agent,
    run), and its metrics."""
    metrics = Metrics()
    assigner = Assigner(store, lambda: ruleset, SETTINGS, metrics=metrics, sweep=sweep)
    stop = asyncio.Event()
    job = asyncio.create_task(assigner.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, rounds(metrics, "all")), lambda n: n >= 1)
        yield metrics
    finally:
        stop.set()
        await job


def one_round(store: Store, ruleset: Ruleset, agents: Sequence[str] | None = None) -> Any:
    """A round of the store's, as the assigner runs it."""
    policy = policies(ruleset)
    pick = partial(choose, policies=policy, units=SETTINGS.units_of, default_timeout=60.0)
    return store.offers.assign_round(
        policies=policy,
        choose=lambda w, a, now, most: pick(w, a, now=now, most=most),
        limit=500,
        units=SETTINGS.units_of,
        agents=agents,
    )


def rounds(metrics: Metrics, scope: str) -> float:
    found = metrics.registry.get_sample_value("omniroute_assign_rounds_total", {"scope": scope})
    return found or 0.0


def read(metrics: Metrics, scope: str, kind: str) -> float:
    found = metrics.registry.get_sample_value(
        "omniroute_assign_read_total", {"scope": scope, "kind": kind}
    )
    return found or 0.0


async def backlog(
    db: asyncpg.Pool,
    queue: str,
    n: int,
    *,
    channel: str = "chat",
    skills: Sequence[str] = (),
    priority: int = 50,
    ago: float = 600.0,
) -> list[str]:
    """``n`` contacts waiting in ``queue``, as routing writes them, the first
    received ``ago`` seconds ago and each a second after the one before;
    their ids as text."""
    first = datetime.now(UTC) - timedelta(seconds=ago)
    first = first.replace(microsecond=first.microsecond // 1000 * 1000)  # (as a uuid7 has it)
    records = [
        NewRecord(
            contact_id=uuid7(first + timedelta(seconds=k)),
            received_at=first + timedelta(seconds=k),
            adapter=channel,
            contact=Contact(channel=channel, provider="generic", external_id=uuid7().hex),
            customer_id=None,
            context=CustomerContext(customer_id=uuid7(), known=False),
            decision=Decision(queue=queue, priority=priority, skills=tuple(skills), ruleset="test"),
            trace=None,
            timings={"total_ms": 1.0},
            lifetime=86400,
            assign=True,
        )
        for k in range(n)
    ]
    async with db.acquire() as con, con.transaction():
        await stored_records.insert_many(con, records)
    return [str(r.contact_id) for r in records]


async def silently_available(db: asyncpg.Pool, *agents: str) -> None:
    """Agents made available without the notification (as if it were lost)."""
    await db.execute(
        "UPDATE agents SET presence = 'available' WHERE agent_id = ANY($1::text[])", list(agents)
    )


async def notify(db: asyncpg.Pool, *agents: str) -> None:
    """``agent:<id>`` for each, in one transaction (heard together)."""
    async with db.acquire() as con, con.transaction():
        for agent in agents:
            await con.execute("SELECT pg_notify('omniroute_assign', 'agent:' || $1::text)", agent)


async def offered(db: asyncpg.Pool, agent: str) -> list[str]:
    rows = await db.fetch(
        "SELECT contact_id::text FROM offers WHERE agent_id = $1 ORDER BY offered_at, offer_id",
        agent,
    )
    return [r[0] for r in rows]


async def everything_waiting(db: asyncpg.Pool) -> list[Waiting]:
    rows = await db.fetch(
        f"SELECT {offers_store._WAITING_COLUMNS} FROM open_contacts"
        " WHERE state = 'waiting' AND agent_id IS NULL"
    )
    return [offers_store._waiting(r) for r in rows]


async def as_chosen(db: asyncpg.Pool, agent: str) -> Agent:
    row = await db.fetchrow(
        f"SELECT {offers_store._AGENT_COLUMNS} FROM agents WHERE agent_id = $1", agent
    )
    return offers_store._agent(row)


def test_wakeups_coalesce_the_agents_named() -> None:
    wakeups = Wakeups()
    assert wakeups.take() is None  # woken by nothing heard: every agent
    wakeups.heard("agent:ann")
    wakeups.heard("agent:b:o")  # (an id may hold a colon)
    wakeups.heard("agent:ann")
    assert wakeups.take() == frozenset({"ann", "b:o"})
    assert wakeups.take() is None
    wakeups.heard("agent:ann")
    wakeups.heard("contacts")
    assert wakeups.take() is None
    wakeups.heard("agent:ann")
    wakeups.everyone()  # listening again
    assert wakeups.take() is None


async def test_a_freed_agent_gets_what_a_round_of_its_own_would_give_it(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    """A round limited to one agent, with a backlog and another agent free
    that would rank first: it reads that agent only, and the agent gets the
    contacts the policy gives it over everything waiting."""
    await put_agent(db, "rae", skills={"support": 1, "billing": 2}, presence="away")
    await put_agent(db, "top", skills={"support": 5, "billing": 5}, presence="away")
    # the first in the order need billing:3 (rae has 2); then the desk's,
    # chats and e-mails; the first desk chat rae passed over before
    experts = await backlog(db, "expert", 20, skills=["billing:3"], priority=90)
    chats = await backlog(db, "desk", 30, skills=["support"], priority=60, ago=900)
    emails = await backlog(db, "desk", 30, channel="email", skills=["support"], priority=70)
    await db.execute(
        "UPDATE open_contacts SET passed_over = '{rae}' WHERE contact_id = $1::uuid", chats[0]
    )
    await silently_available(db, "rae", "top")
    # what the policy gives rae over every waiting contact, rae alone free
    policy = policies(ruleset)
    expected = choose(
        await everything_waiting(db),
        [await as_chosen(db, "rae")],
        policies=policy,
        units=SETTINGS.units_of,
        now=datetime.now(UTC),
        default_timeout=60.0,
    )
    done = await one_round(store, ruleset, ["rae"])
    assert done.agents == 1  # rae only, though "top" is free and ranks first
    got = await offered(db, "rae")
    assert got == [str(p.contact.contact_id) for p in expected]
    # e-mails first (priority 70), up to rae's capacity: five of 20 units
    assert got == emails[:5] and not set(got) & set(experts + chats)
    assert await offered(db, "top") == []
    # the round over every agent gives "top" its work, the experts first
    everyone = await one_round(store, ruleset)
    assert everyone.agents == 1 and (await offered(db, "top"))[0] == experts[0]


async def test_agents_named_together_get_one_round_the_rest_wait_for_the_sweep(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    await backlog(db, "desk", 40, skills=["support"])
    for agent in ("ann", "bo", "cy"):
        await put_agent(db, agent, skills={"support": 1}, capacity=34, presence="away")
    async with running(store, ruleset) as metrics:
        before = rounds(metrics, "all")
        await silently_available(db, "ann", "bo", "cy")
        await notify(db, "ann", "bo")  # cy's notification is lost
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM offers"), lambda n: n >= 2, timeout=10
        )
        await asyncio.sleep(0.3)
        # one round over ann and bo (its offers in one transaction), then one
        # that found them full; cy waits, nothing ran over every agent
        assert await db.fetchval("SELECT count(DISTINCT xmin::text) FROM offers") == 1
        agents = await db.fetch("SELECT agent_id FROM offers ORDER BY 1")
        assert [r[0] for r in agents] == ["ann", "bo"]
        assert rounds(metrics, "agents") == 2 and read(metrics, "agents", "agents") == 2
        assert rounds(metrics, "all") == before
        # a contact arriving wakes a round over every agent: cy gets it
        await backlog(db, "desk", 1, skills=["support"], priority=99, ago=1)
        await eventually(lambda: offered(db, "cy"), lambda o: len(o) == 1, timeout=10)
        assert rounds(metrics, "all") > before


async def test_a_lost_wake_up_is_found_by_the_sweep(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    await backlog(db, "desk", 5, skills=["support"])
    await put_agent(db, "dee", skills={"support": 1}, presence="away")
    async with running(store, ruleset, sweep=0.5) as metrics:
        before = rounds(metrics, "all")
        await silently_available(db, "dee")
        found = await eventually(lambda: offered(db, "dee"), lambda o: len(o) == 2, timeout=10)
        assert len(found) == 2  # two chats in 100 units
        assert rounds(metrics, "all") > before and rounds(metrics, "agents") == 0


async def test_a_named_agent_another_round_holds_is_left_to_it(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    """Every instance hears a wake-up: the round that locks the agent first
    has it, the others read neither it nor any contact."""
    waiting = await backlog(db, "desk", 3, skills=["support"])
    await put_agent(db, "eve", skills={"support": 1}, capacity=34)
    async with db.acquire() as con, con.transaction():
        await con.execute("SELECT 1 FROM agents WHERE agent_id = 'eve' FOR UPDATE")
        held = await one_round(store, ruleset, ["eve"])
        assert (held.agents, held.waiting, held.made) == (0, 0, [])
    done = await one_round(store, ruleset, ["eve"])
    assert (done.agents, len(done.made)) == (1, 1) and await offered(db, "eve") == waiting[:1]


@asynccontextmanager
async def held(db: asyncpg.Pool, contacts: Sequence[str]) -> AsyncIterator[None]:
    """The contacts' open rows held by another transaction (another round
    claiming them, an event moving them) until the block ends."""
    async with db.acquire() as con, con.transaction():
        await con.execute(
            "SELECT 1 FROM open_contacts WHERE contact_id = ANY($1::uuid[]) FOR UPDATE",
            list(contacts),
        )
        yield


@pytest.mark.parametrize("named", [True, False], ids=["named", "everyone"])
async def test_a_round_choosing_again_starts_from_its_agents_counts(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset, named: bool
) -> None:
    """The choice moves an agent's counts per channel as it hands out work:
    a round that lost its contacts to another transaction chooses again
    from the counts it read, not from those of the choice it dropped (which
    had the agent at its e-mail maximum, and offered it nothing)."""
    emails = await backlog(db, "desk", 2, channel="email", skills=["support"])
    await put_agent(db, "max", skills={"support": 1}, channel_max={"email": 1})
    async with held(db, emails[:1]):
        done = await one_round(store, ruleset, ["max"] if named else None)
    assert [str(c) for c in done.lost] == emails[:1]
    assert await offered(db, "max") == emails[1:]


async def test_a_round_that_lost_every_contact_it_read_reads_further(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    """One agent, room for eight e-mails: the round reads the first eight
    (three per agent and five), another transaction holds them all; the
    agent has room, more wait unread: the round reads further and offers
    the next ones."""
    emails = await backlog(db, "desk", 10, channel="email", skills=["support"])
    await put_agent(db, "ivy", skills={"support": 1}, capacity=160)
    async with held(db, emails[:8]):
        done = await one_round(store, ruleset, ["ivy"])
    assert len(done.lost) == 8
    assert await offered(db, "ivy") == emails[8:]


async def test_a_round_that_lost_its_contacts_runs_again_once_their_holder_ends(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset
) -> None:
    """Room for one e-mail; another transaction holds the first eight: the
    round chooses again without each one it could not claim, four times,
    and makes no offer. Nothing would wake a round for the agent again (the
    holder ends without notifying: it offered them nothing): the assigner
    waits for the holder to end and runs the round again."""
    emails = await backlog(db, "desk", 9, channel="email", skills=["support"])
    await put_agent(db, "kit", skills={"support": 1}, capacity=20)
    assigner = Assigner(store, lambda: ruleset, SETTINGS)
    async with held(db, emails[:8]):
        once = asyncio.create_task(assigner.once(agents=["kit"]))
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'"
            ),
            lambda n: n == 1 or once.done(),
        )
    await once
    assert await offered(db, "kit") == emails[:1]


async def test_two_assigners_on_the_same_agents_never_over_assign(
    db: asyncpg.Pool, store: Store, ruleset: Ruleset, own_database: str
) -> None:
    """Two instances (two stores) hear the same wake-ups and run rounds over
    the same agents at once: no agent over a limit (``emptied`` checks every
    agent at the end), every offer counted once, and nothing left that a
    round over every agent would offer."""
    await backlog(db, "desk", 150, skills=["support"])
    await backlog(db, "desk", 150, channel="email", skills=["support"], priority=55)
    names = [f"h{n}" for n in range(24)]
    for n, agent in enumerate(names):
        await put_agent(
            db,
            agent,
            skills={"support": 1},
            capacity=(34, 68, 100, 120)[n % 4],
            channel_max=({}, {"chat": 1}, {"email": 2})[n % 3],
            presence="away",
        )
    async with open_store(DatabaseSettings(url=own_database, pool_max=6), migrate=False) as other:
        async with running(store, ruleset) as one, running(other, ruleset) as two:
            await silently_available(db, *names)
            for start in range(0, len(names), 6):
                await notify(db, *names[start : start + 6])
            # until both have run no round for a second (a loaded machine
            # runs them slowly)
            last: tuple[object, ...] = ()
            for _ in range(60):
                await asyncio.sleep(0.5)
                now = (
                    await db.fetchval("SELECT count(*) FROM offers"),
                    *(rounds(m, scope) for m in (one, two) for scope in ("agents", "all")),
                )
                if now == last and now[0]:
                    break
                last = now
            assert rounds(one, "agents") > 0 and rounds(two, "agents") > 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM (SELECT contact_id FROM offers GROUP BY 1 HAVING count(*) > 1) d"
        )
        == 0
    )
    loads = await db.fetch(
        """SELECT a.agent_id, a.load_units, coalesce(sum(o.units), 0)::int AS offered
             FROM agents a LEFT JOIN offers o USING (agent_id) GROUP BY 1, 2"""
    )
    assert all(r["load_units"] == r["offered"] for r in loads)
    # nothing left for the sweep: a round that lost contacts to the other
    # instance chose again (from its agents' own counts, reading further),
    # or ran again once the other's transaction had ended
    assert (await one_round(store, ruleset)).made == []


async def test_a_limited_round_reads_and_raises_its_agents_by_their_key(
    db: asyncpg.Pool,
) -> None:
    """Among 2,000 available agents, the named ones are read, and their
    loads raised, by the key, also while the statistics say no agent is
    available (taken before a shift signed in): the partial index of the
    available agents then looks empty to the planner, which read all of it
    (a round over every agent reads every available one anyway)."""
    await db.execute(
        """INSERT INTO agents (agent_id, name, skills, capacity, presence)
           SELECT 'a' || n, 'a' || n, '{}', 100, 'offline' FROM generate_series(1, 2000) n"""
    )
    await db.execute("ANALYZE agents")
    await db.execute("UPDATE agents SET presence = 'available'")
    statements = [
        (offers_store._FREE_NAMED, [20, ["a1", "a7"]]),
        (agent_work._TAKE, [["a1"], [34], ['{"chat": 1}']]),
    ]
    for sql, args in statements:
        async with db.acquire() as con:
            undone = con.transaction()  # (the statements run: their writes undone)
            await undone.start()
            plan = "\n".join(
                r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
            )
            await undone.rollback()
        assert "agents_available" not in plan, plan
        assert re.search(r"(using|on) agents_pkey\b", plan), plan
        assert re.search(r"Index Cond: \(+(a\.)?agent_id = ", plan), plan
