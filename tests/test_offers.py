"""Offers beyond the assignment itself (docs/agents.md): erasure and retention
of a contact an agent holds free the agent, close its offer and leave nothing
of the person in offers or agents' work; the offers' metrics on GET /metrics;
GET /v1/offers pages read in an index's order. One app with its jobs on a
database of this module; every test starts with no agents and nothing open."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router import runtime
from router.assigner import Assigner
from router.models import uuid7_time
from router.store import agent_work, events, lifecycle, retention
from router.store import offers as offers_store
from router.store.listing import keyset_page
from tests.support.agents import emptied, load_of, put_agent
from tests.support.api import Api
from tests.support.apps import app_on, eventually
from tests.support.examples import example, person, unique
from tests.support.plans import NESTED, generic_plan
from tests.support.settings import SECRETS
from tests.support.streams import open_stream

RULES = """
queues:
  desk:
    skills: [support]
    assign: {mode: most_available, offer_timeout: 1m}
  quick:
    skills: [support]
    assign: {mode: most_available, offer_timeout: 1s}
  platform: {description: assigned by the platform}
defaults: {queue: platform}
rules:
  - name: desk
    when: {contact.attributes.q: desk}
    route: {queue: desk}
  - name: quick
    when: {contact.attributes.q: quick}
    route: {queue: quick}
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("offers-rules")
    (folder / "rules.yaml").write_text(RULES)
    return folder


@pytest.fixture(scope="module")
async def app(own_database: str, rules_dir: Path) -> AsyncIterator[Api]:
    # rounds run on notifications; the sweep is put out of the way, so a
    # release that did not wake the assigners shows
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "Assigner", partial(Assigner, sweep=30.0))
        adapters = [{"name": n, "kind": n, "secrets": [s]} for n, s in SECRETS.items()]
        async with app_on(
            own_database,
            rules={"paths": [str(rules_dir)], "watch": False},
            adapters=adapters,
        ) as api:
            yield api


@pytest.fixture
async def db(own_database: str, app: Api) -> AsyncIterator[asyncpg.Pool]:
    """The module's database (after its app started), emptied of agents,
    offers and open contacts."""
    async with emptied(own_database) as pool:
        yield pool


async def arrive(api: Api, queue: str, customer: dict[str, str] | None = None) -> str:
    payload = example(
        "chat", id=unique("c"), attributes={"q": queue}, customer=customer or person()
    )
    response = await api.deliver("chat", payload)
    assert response.status == 200, await response.text()
    contact_id: str = (await response.json())["contacts"][0]["contact_id"]
    return contact_id


async def offers(api: Api, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/offers", **params)
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["offers"]
    return found


async def offer_of(api: Api, contact_id: str, agent: str) -> dict[str, Any]:
    """The agent's open offer of the contact, once made."""
    found = await eventually(
        lambda: offers(api, agent=agent, status="offered"),
        lambda o: any(x["contact_id"] == contact_id for x in o),
    )
    return next(x for x in found if x["contact_id"] == contact_id)


async def rows_about(db: asyncpg.Pool, ids: list[str]) -> dict[str, list[str]]:
    """Every row of the offers, agents' work and open contacts of these contacts, as text."""
    out = {}
    for table in ("offers", "agent_work", "open_contacts"):
        rows = await db.fetch(
            f"SELECT t::text AS row FROM {table} t WHERE contact_id = ANY($1::uuid[])", ids
        )
        out[table] = [r["row"] for r in rows]
    return out


async def test_erasure_frees_the_agent_and_closes_the_offers(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "ann", skills={"support": 1}, capacity=102)  # three chats
    who = {**person(), "name": f"Eve Erased {unique('n')}"}
    needles = [who["email"], who["visitor_id"], who["name"]]
    assigned = await arrive(app, "desk", who)
    taken = await offer_of(app, assigned, "ann")
    await app.json("POST", f"/v1/offers/{taken['offer_id']}/accept")
    offered = await arrive(app, "desk", who)
    held = await offer_of(app, offered, "ann")
    other = await arrive(app, "desk")  # another customer's, the third chat
    kept = await offer_of(app, other, "ann")
    later = await arrive(app, "desk")  # no room left: it waits
    assert (await load_of(db, "ann"))["load_units"] == 102
    customer_id = (await app.json("GET", f"/v1/contacts/{assigned}"))["customer_id"]
    stream = await open_stream(app)
    try:
        erased = await app.json("DELETE", f"/v1/customers/{customer_id}")
        assert erased["open_contacts_closed"] == 2 and erased["agents_released"] == 1

        # the live stream: each contact leaves, with the state it left and the agent freed
        events = await stream.until(lambda e: e["kind"] == "erased" and e["contact_id"] == offered)
    finally:
        stream.response.close()
    gone = {e["contact_id"]: e for e in events if e["kind"] == "erased"}
    assert {c: (e["data"], e["queue"]) for c, e in gone.items()} == {
        assigned: ({"from": "assigned", "agent": "ann"}, "desk"),
        offered: ({"from": "waiting", "agent": "ann"}, "desk"),
    }
    text = orjson.dumps(events).decode().lower()
    assert [n for n in needles if n.lower() in text] == []

    # the freed units go to the contact that waited, at once (no sweep)
    assert (await offer_of(app, later, "ann"))["contact_id"] == later
    load = await load_of(db, "ann")
    assert load["load_units"] == 68 == load["held"] and load["by_channel"] == {"chat": 2}
    statuses = {o["contact_id"]: o["status"] for o in await offers(app, agent="ann")}
    assert statuses == {
        assigned: "accepted",
        offered: "cancelled",
        other: "offered",
        later: "offered",
    }
    late = await app.send("POST", f"/v1/offers/{held['offer_id']}/accept")
    assert late.status == 409
    # nothing of the person stays in offers or agents' work; the other's offer is untouched
    rows = await rows_about(db, [assigned, offered])
    assert rows["agent_work"] == [] and rows["open_contacts"] == []
    assert len(rows["offers"]) == 2
    assert [n for n in needles if n.lower() in "".join(rows["offers"]).lower()] == []
    explained = await db.fetch(
        "SELECT contact_id::text, explanation::text FROM offers WHERE agent_id = 'ann'"
    )
    by_contact = {r["contact_id"]: orjson.loads(r["explanation"]) for r in explained}
    assert by_contact[assigned] == by_contact[offered] == {"erased": True}
    assert by_contact[other]["chosen"]["agent"] == "ann" == kept["agent"]
    # the records stay, anonymous; their outcome is left as the platform reported it
    record = await app.json("GET", f"/v1/contacts/{assigned}")
    assert record["agent"] == "ann" and record["lifecycle"] == {"state": None}


async def test_retention_frees_the_agent_and_drops_the_offers(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "bea", skills={"support": 1})
    first = await arrive(app, "desk")
    accepted = await offer_of(app, first, "bea")
    await app.json("POST", f"/v1/offers/{accepted['offer_id']}/accept")
    second = await arrive(app, "desk")
    await offer_of(app, second, "bea")
    assert (await load_of(db, "bea"))["load_units"] == 68
    # both were received long ago (a lifetime longer than the retention)
    old = datetime(1991, 1, 10, 12, tzinfo=UTC)
    assert await db.fetchval("SELECT ensure_partitions('1991-01-15', 1)") >= 0
    for table in ("contacts", "open_contacts", "contact_keys", "contact_events"):
        await db.execute(
            f"UPDATE {table} SET received_at = $2 WHERE contact_id = ANY($1::uuid[])",
            [first, second],
            old,
        )
    since = await db.fetchval("SELECT max(id) FROM lifecycle_log")
    report = await retention.apply(db, datetime(1991, 2, 1, tzinfo=UTC))
    assert report is not None and "contacts_1991_01" in [p.name for p in report.dropped]
    assert report.open_closed == 2 and report.offers == 2

    load = await load_of(db, "bea")
    assert load["load_units"] == 0 == load["held"] and load["by_channel"] == {"chat": 0}
    rows = await rows_about(db, [first, second])
    assert rows == {"offers": [], "agent_work": [], "open_contacts": []}
    logged = await db.fetch(
        """SELECT contact_id::text, data::text FROM lifecycle_log
            WHERE id > $1 AND kind = 'dropped' ORDER BY contact_id""",
        since,
    )
    assert {r["contact_id"]: orjson.loads(r["data"]) for r in logged} == {
        first: {"from": "assigned", "agent": "bea"},
        second: {"from": "waiting", "agent": "bea"},
    }
    assert (await app.send("GET", f"/v1/contacts/{first}")).status == 404
    # the agent takes new work
    nxt = await arrive(app, "desk")
    assert (await offer_of(app, nxt, "bea"))["contact_id"] == nxt


FACTS = "SELECT offers_made, offered_at FROM contacts WHERE contact_id = $1"


def first_offered(got: datetime | None, offer: dict[str, Any]) -> bool:
    """The record's ``offered_at`` is the time of this (first) offer: its
    round's transaction began before the offer's own clock reading."""
    made = datetime.fromisoformat(offer["offered_at"])
    return got is not None and made - timedelta(seconds=5) <= got <= made


async def test_offer_facts_reach_the_record_when_it_changes(app: Api, db: asyncpg.Pool) -> None:
    """Rounds count the offers on the open row; the record gets them from
    its next change: the acceptance, erasure, the contact's expiry (with an
    instance of the release before having written its own first offer
    into the record: the larger count and the earlier time are kept)."""
    await put_agent(db, "fay", skills={"support": 1}, capacity=102)  # three chats
    who = {**person(), "name": f"Fay Facts {unique('n')}"}
    accepted, erased, expired = (
        await arrive(app, "desk"),
        await arrive(app, "desk", who),
        await arrive(app, "desk"),
    )
    taken, held, last = [await offer_of(app, c, "fay") for c in (accepted, erased, expired)]
    for contact_id in (accepted, erased, expired):
        assert tuple(await db.fetchrow(FACTS, contact_id)) == (0, None)
        assert (await app.json("GET", f"/v1/contacts/{contact_id}"))["offers_made"] == 0

    await app.json("POST", f"/v1/offers/{taken['offer_id']}/accept")
    made, at = await db.fetchrow(FACTS, accepted)
    assert made == 1 and first_offered(at, taken)
    assert (await app.json("GET", f"/v1/contacts/{accepted}"))["offers_made"] == 1

    customer_id = (await app.json("GET", f"/v1/contacts/{erased}"))["customer_id"]
    await app.json("DELETE", f"/v1/customers/{customer_id}")
    made, at = await db.fetchrow(FACTS, erased)
    assert made == 1 and first_offered(at, held)

    # the release before counted a first offer in the record only
    # (open_contacts.offered_at did not exist); this release a second one
    earlier = datetime.fromisoformat(last["offered_at"]) - timedelta(minutes=3)
    await db.execute(
        "UPDATE contacts SET offers_made = 1, offered_at = $2 WHERE contact_id = $1",
        expired,
        earlier,
    )
    await db.execute(
        """UPDATE open_contacts SET offers = 2, offered_at = offered_at + interval '1 minute',
                  expires_at = now() - interval '1 second'
            WHERE contact_id = $1""",
        expired,
    )
    await lifecycle.expire_due(db, limit=100)
    assert tuple(await db.fetchrow(FACTS, expired)) == (2, earlier)
    assert await db.fetchval("SELECT outcome FROM contacts WHERE contact_id = $1", expired) == (
        "expired"
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


async def metrics(app: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await app.get("/metrics")
    assert response.status == 200
    return samples(await response.text())


def count(seen: dict[Any, float], name: str, **labels: str) -> float:
    return seen.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_offers_metrics(app: Api, db: asyncpg.Pool) -> None:
    before = await metrics(app)
    await put_agent(db, "cal", skills={"support": 1})
    accepted = await arrive(app, "desk")
    offer = await offer_of(app, accepted, "cal")
    await app.json("POST", f"/v1/offers/{offer['offer_id']}/accept")
    rejected = await arrive(app, "desk")
    offer = await offer_of(app, rejected, "cal")
    await app.json("POST", f"/v1/offers/{offer['offer_id']}/reject")
    timed_out = await arrive(app, "quick")  # offer_timeout 1s
    await offer_of(app, timed_out, "cal")
    await eventually(
        lambda: offers(app, agent="cal", status="expired"), lambda o: len(o) == 1, timeout=10
    )
    after = await metrics(app)

    def grew(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    assert grew("omniroute_offers_made_total", queue="desk") == 2
    assert grew("omniroute_offers_made_total", queue="quick") == 1
    assert grew("omniroute_offers_decided_total", queue="desk", result="accepted") == 1
    assert grew("omniroute_offers_decided_total", queue="desk", result="rejected") == 1
    assert grew("omniroute_offers_decided_total", queue="quick", result="expired") == 1
    assert grew("omniroute_assign_wait_seconds_count", queue="desk") == 1
    waited = grew("omniroute_assign_wait_seconds_sum", queue="desk")
    assert 0 <= waited < 10
    assert grew("omniroute_assign_wait_seconds_bucket", queue="desk", le="10.0") == 1
    # HELP and TYPE name them as documented
    text = await (await app.get("/metrics")).text()
    assert "# TYPE omniroute_assign_wait_seconds histogram" in text
    assert "# TYPE omniroute_offers_decided_total counter" in text


async def test_offers_pages_read_an_index_in_order(app: Api, db: asyncpg.Pool) -> None:
    # the listing's own SQL, for each filter without an agent: no sort, an index range
    for status in (None, "offered", "accepted"):
        sql, args = keyset_page(
            "SELECT offer_id FROM offers",
            equal={"agent_id": None, "status": status},
            key=("offered_at", "offer_id"),
            after=(datetime.now(UTC), "00000000-0000-7000-8000-000000000000"),
            limit=101,
        )
        async with db.acquire() as con, con.transaction():
            await con.execute("SET LOCAL enable_seqscan = off")
            await con.execute("SET LOCAL enable_sort = off")
            plan = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + sql, *args))
        assert "Sort" not in plan and "Index" in plan, (status, plan)
    # and pages follow each other without gaps or repeats, newest first
    await put_agent(db, "dee", skills={"support": 1}, capacity=300)
    made = [await arrive(app, "desk") for _ in range(5)]
    await eventually(lambda: offers(app, status="offered"), lambda o: len(o) == 5)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = await app.get("/v1/offers", **params)
        assert response.status == 200, await response.text()
        body = await response.json()
        seen += body["offers"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(o["contact_id"] for o in seen) == sorted(made)
    keys = [(o["offered_at"], o["offer_id"]) for o in seen]
    assert keys == sorted(keys, reverse=True)
    bad = await app.get("/v1/offers", limit="1001")
    assert bad.status == 400


async def test_the_assigners_reads_of_waiting_contacts_are_index_ranges(
    app: Api, db: asyncpg.Pool
) -> None:
    """Both reads of a round's waiting contacts (each queue and channel in
    order; a queue with aging) read open_contacts_assignable_channel, the
    one index of the waiting and unheld contacts (0032 dropped the one
    without the channel)."""
    names = {
        r["indexname"]
        for r in await db.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'open_contacts'"
        )
    }
    assert "open_contacts_assignable_channel" in names
    assert "open_contacts_assignable" not in names
    channels = ["chat", "email", "sms", "voice"]
    reads = [
        (offers_store._WAITING, [["desk", "quick"], 15, channels]),
        (offers_store._WAITING_AGED, ["desk", 60, 60, 5, 90, channels]),
    ]
    for sql, args in reads:
        async with db.acquire() as con, con.transaction():
            await con.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + sql, *args))
        assert re.search(r"(using|on) open_contacts_assignable_channel\b", plan), plan
        assert re.search(r"Index Cond: \(+queue = ", plan), plan


async def test_an_offers_work_is_found_by_its_contact(db: asyncpg.Pool) -> None:
    """Accepting, rejecting and expiring an offer find its agent's work by
    the table's key (the contact), never by reading agent_work through."""
    ids = [uuid.uuid4(), uuid.uuid4()]
    statements = [
        (agent_work.ASSIGNED, ids),
        (agent_work._DELETE_OFFERED, [ids, ids]),
        (agent_work._DELETE_WORK, [ids]),
    ]
    for sql, args in statements:
        async with db.acquire() as con, con.transaction():
            await con.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + sql, *args))
        assert "Seq Scan on agent_work" not in plan, plan
        assert re.search(r"(using|on) agent_work_pkey\b", plan), plan
        assert re.search(r"Index Cond: \(+(w\.)?contact_id = ", plan), plan


async def test_a_rounds_offer_statement_joins_by_index_probes_whatever_the_plan(
    db: asyncpg.Pool,
) -> None:
    """The statement that makes a round's offers, planned generic (as the
    service's prepared statement may be after five runs: ``unnest`` of a
    parameter estimated at 10 rows) and with nested loops as the only join
    (what the planner picks on some statistics, docs/operations.md): every
    join probes an index, none filters the pairs of two scans (each row of
    one CTE against every row of another, quadratic in the round's size)."""
    types = ("uuid", "uuid", "text", "text", "text", "int", "float8", "text")
    empty = [f"'{{}}'::{t}[]" for t in types]
    for settings in ((), NESTED):
        plan = await generic_plan(db, offers_store._MAKE, empty, settings=settings)
        assert "Join Filter" not in plan, (settings, plan)
        if settings:
            assert re.search(r"using open_contacts_pkey on open_contacts", plan), plan
            assert re.search(r"Index Cond: \(+received_at = \w+\.received_at\)", plan), plan


#: agents' long histories among many other agents' offers, over the same
#: hours: 2,000 offers of "long", two at each instant (the offer id breaks
#: the tie), 400 of "rare", and 20,000 of 200 other agents; none open.
#: Without an index in the listing's order, the planner reads offers_newest
#: and skips other agents' offers for "long", and sorts all of "rare"'s.
HISTORY = """
INSERT INTO offers (offer_id, contact_id, agent_id, queue, channel, units, status,
                    offered_at, expires_at, decided_at)
SELECT gen_random_uuid(), gen_random_uuid(), agent, 'desk', 'chat', 34,
       (ARRAY['accepted', 'rejected', 'expired', 'cancelled'])[1 + g % 4],
       at, at + interval '1 minute', at + interval '10 seconds'
  FROM (SELECT g, 'long' AS agent, now() - make_interval(secs => g / 2 * 10) AS at
          FROM generate_series(0, 1999) g
        UNION ALL
        SELECT g, 'rare', now() - make_interval(secs => g * 25)
          FROM generate_series(0, 399) g
        UNION ALL
        SELECT g, 'other-' || g % 200, now() - make_interval(secs => g / 2.0)
          FROM generate_series(1, 20000) g) AS h
"""


async def test_an_agents_offers_page_is_a_range_of_an_index(app: Api, db: asyncpg.Pool) -> None:
    await db.execute(HISTORY)
    await db.execute("ANALYZE offers")
    order: dict[str, list[str]] = {}
    for agent in ("long", "rare"):
        newest = await db.fetch(
            "SELECT offered_at, offer_id FROM offers WHERE agent_id = $1 "
            "ORDER BY offered_at DESC, offer_id DESC",
            agent,
        )
        order[agent] = [str(r["offer_id"]) for r in newest]
        # the listing's own SQL, first page and one halfway, as the planner
        # picks it on these statistics: the agent's offers read in the page's
        # order from the cursor, neither sorted nor found among others' offers
        for before in (None, tuple(newest[len(newest) // 2])):
            sql, args = keyset_page(
                "SELECT offer_id FROM offers",
                equal={"agent_id": agent, "status": None},
                key=("offered_at", "offer_id"),
                after=before,
                limit=101,
            )
            plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + sql, *args))
            assert "Sort" not in plan and "Filter" not in plan, plan
            assert re.search(r"Index (Only )?Scan using \w+ on offers", plan), plan
            assert re.search(r"Index Cond: \(+agent_id = ", plan), plan
    # and the pages follow each other in that order, a tie split by a page's end
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"agent": "long", "limit": "301"} | ({"cursor": cursor} if cursor else {})
        response = await app.get("/v1/offers", **params)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert all(o["agent"] == "long" for o in body["offers"])
        seen += [o["offer_id"] for o in body["offers"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == order["long"]


#: rows of the record's partitions updated by this connection and not yet
#: reported to the statistics (the current transaction's among them)
RECORD_UPDATES = """
SELECT coalesce(sum(n_tup_upd), 0)::int FROM pg_stat_xact_user_tables
 WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'contacts'::regclass)
"""


@pytest.mark.parametrize(
    ("type_", "after", "met"),
    [
        ("answered", 5, True),
        ("answered", 20, False),
        ("abandoned", 20, False),
        ("abandoned", 5, None),
    ],
)
async def test_an_outcome_event_updates_the_record_once(
    app: Api, db: asyncpg.Pool, type_: str, after: int, met: bool | None
) -> None:
    """An outcome event's outcome columns, the SLA they make (10 s here) and
    the open row's offer facts are one UPDATE of the record: one new version
    of a wide row. A duplicate of the event changes nothing but reads the
    SLA again."""
    contact_id = uuid.UUID(await arrive(app, "platform"))
    received_at = uuid7_time(contact_id)
    await db.execute("UPDATE contacts SET sla_seconds = 10 WHERE contact_id = $1", contact_id)
    event = {
        "event_id": unique("e"),
        "type_": type_,
        "at": received_at + timedelta(seconds=after),
        "agent": None,
        "data": {},
    }
    for duplicate in (False, True):
        async with db.acquire() as con, con.transaction():
            before = await lifecycle.lock_open(con, contact_id)
            updated = await con.fetchval(RECORD_UPDATES)
            done = await events.record_locked(con, contact_id, before, **event)
            assert await con.fetchval(RECORD_UPDATES) - updated == 1
        assert done is not None and done.duplicate is duplicate
        assert (done.outcome, done.sla_met) == (type_, met)
        stored = await db.fetchrow(
            "SELECT outcome, sla_met FROM contacts WHERE contact_id = $1", contact_id
        )
        assert tuple(stored) == (type_, met)


async def test_releases_and_reopened_contacts_wake_the_assigners(
    app: Api, db: asyncpg.Pool
) -> None:
    """A rejected offer wakes the assigners for its agent and for its contact
    (waiting again); contacts ended together free each of their agents'
    units, each agent named (one agent's load is locked by its UPDATE,
    several are locked in id order first)."""
    heard: list[str] = []

    def hear(*args: Any) -> None:
        heard.append(args[3])

    async with db.acquire() as listener:
        await listener.add_listener(agent_work.CHANNEL, hear)
        try:
            await put_agent(db, "hal", skills={"support": 1}, capacity=34)  # one chat
            rejected = await arrive(app, "desk")
            offer = await offer_of(app, rejected, "hal")
            heard.clear()
            await app.json("POST", f"/v1/offers/{offer['offer_id']}/reject")
            await eventually(lambda: asyncio.sleep(0, list(heard)), lambda h: len(set(h)) >= 2)
            assert set(heard) == {"agent:hal", "contacts"}

            async with db.acquire() as con, con.transaction():  # (hal passed it over)
                await agent_work.end_open(con, [uuid.UUID(rejected)], kind="erased")
            await put_agent(db, "ida", skills={"support": 1}, capacity=34)
            ended = [await arrive(app, "desk"), await arrive(app, "desk")]
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) FROM agent_work WHERE contact_id = ANY($1::uuid[])", ended
                ),
                lambda n: n == 2,
            )
            assert [(await load_of(db, a))["held"] for a in ("hal", "ida")] == [34, 34]
            heard.clear()
            async with db.acquire() as con, con.transaction():
                count, freed = await agent_work.end_open(
                    con, [uuid.UUID(c) for c in ended], kind="erased"
                )
            assert count == 2 and sorted(h.agent_id for h in freed) == ["hal", "ida"]
            await eventually(lambda: asyncio.sleep(0, list(heard)), lambda h: len(set(h)) >= 2)
            assert set(heard) == {"agent:hal", "agent:ida"}
            for agent in ("hal", "ida"):
                assert (await load_of(db, agent))["load_units"] == 0
        finally:
            await listener.remove_listener(agent_work.CHANNEL, hear)


#: reads and updates of offers by this connection not yet reported
OFFERS_TOUCHED = """
SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0) + n_tup_upd), 0)::int
  FROM pg_stat_xact_user_tables WHERE relid = 'offers'::regclass
"""


async def test_a_contact_ended_after_its_acceptance_leaves_its_offers_alone(
    app: Api, db: asyncpg.Pool
) -> None:
    """Work held as ``assigned`` is an accepted offer's: ending its contact
    frees the agent without a statement on the offers (none is open); work
    held as ``offered`` has its offer cancelled."""
    await put_agent(db, "jo", skills={"support": 1}, capacity=68)  # two chats
    accepted, offered = await arrive(app, "desk"), await arrive(app, "desk")
    taken, held = [await offer_of(app, c, "jo") for c in (accepted, offered)]
    await app.json("POST", f"/v1/offers/{taken['offer_id']}/accept")
    for contact_id, state in ((accepted, "assigned"), (offered, "offered")):
        async with db.acquire() as con, con.transaction():
            touched = await con.fetchval(OFFERS_TOUCHED)
            [freed] = await agent_work.close_offers(con, [uuid.UUID(contact_id)])
            touched = await con.fetchval(OFFERS_TOUCHED) - touched
        assert freed.state == state
        assert (touched > 0) is (state == "offered"), touched
    assert [o.status for o in await offers_store.of_contact(db, uuid.UUID(accepted))] == [
        "accepted"
    ]
    assert [o.status for o in await offers_store.of_contact(db, uuid.UUID(offered))] == [
        "cancelled"
    ]
    assert (await load_of(db, "jo"))["load_units"] == 0
