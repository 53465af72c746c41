"""Assignment (docs/agents.md): queues declared with ``assign:`` are offered
to agents by omniroute: offers, accept and reject, the offers' timer, skills
with levels, capacity and channel maximums, the preferred agent, the
capacity guard, the events destinations get and the explanation. One app
with its jobs on a database of this module; every test starts with no
agents and nothing open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from router import runtime
from router.assigner import Assigner
from tests.support.agents import emptied, load_of, put_agent, set_presence
from tests.support.api import Api
from tests.support.apps import app_on, eventually
from tests.support.examples import example, unique
from tests.support.receivers import Receiver, destination, receiver
from tests.support.settings import SECRETS

RULES = """
queues:
  desk:
    skills: [support]
    assign: {mode: most_available, offer_timeout: 1s}
  expert:
    skills: ["billing:3"]
    assign: {mode: longest_idle, offer_timeout: 1m}
  sticky:
    assign: {mode: round_robin, offer_timeout: 1m, preferred_wait: 1m}
  platform: {description: assigned by the platform}
defaults: {queue: platform}
rules:
  - name: desk
    when: {contact.attributes.q: desk}
    route: {queue: desk}
  - name: expert
    when: {contact.attributes.q: expert}
    route: {queue: expert}
  - name: spill
    when: {contact.attributes.q: spill}
    route: {queue: platform, overflow: [{after: 1s, queue: desk}]}
  - name: sticky
    when: {contact.attributes.q: sticky}
    route: {queue: sticky, preferred_agent: {from: contact.attributes.agent}}
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("assign-rules")
    (folder / "rules.yaml").write_text(RULES)
    return folder


@pytest.fixture(scope="module")
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r


@pytest.fixture(scope="module")
async def app(own_database: str, rules_dir: Path, hooks: Receiver) -> AsyncIterator[Api]:
    # assignment wakes on notifications; its safety sweep is put out of the
    # way so that a test finds an offer made late (missing a wake-up) out
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "Assigner", partial(Assigner, sweep=30.0))
        async with _app(own_database, rules_dir, hooks) as api:
            yield api


@asynccontextmanager
async def _app(own_database: str, rules_dir: Path, hooks: Receiver) -> AsyncIterator[Api]:
    adapters = [{"name": n, "kind": n, "secrets": [s]} for n, s in SECRETS.items()]
    async with app_on(
        own_database,
        rules={"paths": [str(rules_dir)], "watch": False},
        adapters=adapters,
        destinations=[destination(hooks, events=["contact.offered", "contact.assigned"])],
    ) as api:
        yield api


@pytest.fixture
async def db(own_database: str, app: Api) -> AsyncIterator[asyncpg.Pool]:
    """The module's database (after its app started), emptied of agents,
    offers and open contacts."""
    async with emptied(own_database) as pool:
        yield pool


async def arrive(api: Api, queue: str, channel: str = "chat", **attributes: Any) -> str:
    ids = {"chat": unique("c"), "email": f"<{unique('m')}@x>", "voice": unique("v")}
    payload = example(channel, id=ids[channel], attributes={"q": queue, **attributes})
    response = await api.deliver(channel, payload)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["contacts"][0]["decision"]["queue"] == queue
    contact_id: str = body["contacts"][0]["contact_id"]
    return contact_id


async def offers(api: Api, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/offers", **params)
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["offers"]
    return found


async def offered(api: Api, agent: str, n: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
    """The agent's open offers, once it has ``n``."""
    return await eventually(
        lambda: offers(api, agent=agent, status="offered"), lambda o: len(o) >= n, timeout=timeout
    )


async def record(api: Api, contact_id: str, **params: str) -> dict[str, Any]:
    response = await api.get(f"/v1/contacts/{contact_id}", **params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_offered_accepted_then_released(app: Api, db: asyncpg.Pool, hooks: Receiver) -> None:
    await put_agent(db, "ann", skills={"support": 1})
    cid = await arrive(app, "desk")
    [offer] = await offered(app, "ann")
    assert offer["contact_id"] == cid and offer["units"] == 34 and offer["channel"] == "chat"
    load = await load_of(db, "ann")
    assert load["load_units"] == 34 == load["held"] and load["by_channel"] == {"chat": 1}

    accepted = await app.json("POST", f"/v1/offers/{offer['offer_id']}/accept")
    assert accepted["status"] == "accepted" and accepted["state"] == "assigned"
    body = await record(app, cid)
    assert body["lifecycle"]["state"] == "assigned"
    assert body["agent"] == "ann" and body["assigned_at"] is not None
    again = await app.send("POST", f"/v1/offers/{offer['offer_id']}/accept")
    assert again.status == 409
    problem = await again.json()
    assert problem["error"] == "conflict"
    assert problem["fields"] == [{"field": "id", "reason": "the offer is accepted, not open"}]
    assert (await load_of(db, "ann"))["load_units"] == 34  # still holds it

    before = (await load_of(db, "ann"))["idle_since"]
    await app.json("POST", f"/v1/contacts/{cid}/events", {"type": "resolved"}, status=201)
    load = await load_of(db, "ann")
    assert load["load_units"] == 0 == load["held"] and load["by_channel"] == {"chat": 0}
    assert load["idle_since"] > before

    async def sent() -> list[dict[str, Any]]:
        return [e for e in (x.json() for x in hooks.received) if e["data"]["contact_id"] == cid]

    got = await eventually(sent, lambda t: len(t) >= 2)
    assert [(e["type"], e["data"]["agent"]) for e in got] == [
        ("contact.offered", "ann"),
        ("contact.assigned", "ann"),
    ]
    assert got[0]["data"]["offer_id"] == offer["offer_id"] and got[0]["data"]["queue"] == "desk"
    # who the contact is comes from its record (which the round reads, not writes)
    stored = await record(app, cid)
    assert stored["customer_id"] is not None
    for event in got:
        assert event["data"]["customer_id"] == stored["customer_id"]
        assert event["data"]["external_id"] == stored["external_id"]


async def test_reject_goes_to_the_next_agent_and_never_back(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "bo", skills={"support": 1})
    cid = await arrive(app, "desk")
    [first] = await offered(app, "bo")
    await put_agent(db, "cy", skills={"support": 1}, capacity=50)
    rejected = await app.json("POST", f"/v1/offers/{first['offer_id']}/reject")
    assert rejected["status"] == "rejected"
    [second] = await offered(app, "cy")
    assert second["contact_id"] == cid
    assert (await load_of(db, "bo"))["load_units"] == 0
    again = await app.send("POST", f"/v1/offers/{first['offer_id']}/reject")
    assert again.status == 409
    await app.json("POST", f"/v1/offers/{second['offer_id']}/reject")
    # nobody left who has not passed it over: it waits
    passed = await db.fetchval("SELECT passed_over FROM open_contacts WHERE contact_id = $1", cid)
    assert sorted(passed) == ["bo", "cy"]
    assert await offers(app, status="offered") == []
    body = await record(app, cid, explain="true")
    made = body["assignment"]["offers"]
    assert [(o["agent"], o["status"]) for o in made] == [("bo", "rejected"), ("cy", "rejected")]
    # the second explanation names the first agent as passed over for this contact
    why = {p["agent"]: p["why"] for p in made[1]["explanation"]["passed_over"]}
    assert why == {"bo": "rejected this contact or let its offer expire"}
    # the offer facts are counted on the open row while the contact waits, and
    # written into the record by its next change (here: abandoned)
    facts = "SELECT offers_made, offered_at FROM contacts WHERE contact_id = $1"
    assert tuple(await db.fetchrow(facts, cid)) == (0, None)
    assert await db.fetchval("SELECT offers FROM open_contacts WHERE contact_id = $1", cid) == 2
    await app.json("POST", f"/v1/contacts/{cid}/events", {"type": "abandoned"}, status=201)
    made_count, first_at = await db.fetchrow(facts, cid)
    assert made_count == 2
    first_offered = datetime.fromisoformat(first["offered_at"])
    assert first_at is not None and abs((first_at - first_offered).total_seconds()) < 1
    assert first_at <= datetime.fromisoformat(second["offered_at"])
    listed = (await record(app, cid))["offers_made"]
    assert listed == 2


async def test_an_unanswered_offer_expires_to_the_next_agent(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "di", skills={"support": 1})
    cid = await arrive(app, "desk")
    [first] = await offered(app, "di")
    await put_agent(db, "ed", skills={"support": 1}, capacity=40)
    [second] = await offered(app, "ed", timeout=5)  # desk: offer_timeout 1s
    assert second["contact_id"] == cid
    [gone] = await offers(app, agent="di")
    assert gone["status"] == "expired"
    late = await app.send("POST", f"/v1/offers/{first['offer_id']}/accept")
    assert late.status == 409
    assert (await late.json())["fields"][0]["reason"] == "the offer is expired, not open"


async def test_skills_at_the_level_or_above(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "novice", skills={"billing": 2})
    await put_agent(db, "senior", skills={"billing": 4}, capacity=10)  # too small for a chat
    await put_agent(db, "pro", skills={"billing": 3})
    # (the contact's arrival wakes a round over every agent: its explanation
    # names them; a round an agent's wake-up runs names that agent only)
    cid = await arrive(app, "expert")
    [offer] = await offered(app, "pro")
    assert offer["contact_id"] == cid
    assert await offers(app, agent="novice") == []
    explained = (await record(app, cid, explain="true"))["assignment"]["offers"][0]["explanation"]
    why = {p["agent"]: p["why"] for p in explained["passed_over"]}
    assert why.get("novice") == "lacks skill billing:3 (has level 2)"
    assert explained["chosen"]["agent"] == "pro"
    assert explained["contact"]["mode"] == "longest_idle"


async def test_capacity_and_channel_maximum(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "fay", skills={"support": 1}, capacity=100, channel_max={"chat": 2})
    first = [await arrive(app, "desk") for _ in range(3)]
    held = await offered(app, "fay", 2)
    assert {o["contact_id"] for o in held} <= set(first)
    await arrive(app, "desk", channel="email")  # 20 units: fits beside two chats (68)
    await eventually(lambda: offers(app, agent="fay", status="offered"), lambda o: len(o) == 3)
    load = await load_of(db, "fay")
    assert load["load_units"] == 88 and load["by_channel"] == {"chat": 2, "email": 1}
    waiting = await db.fetchval(
        "SELECT count(*) FROM open_contacts WHERE queue = 'desk' AND agent_id IS NULL"
    )
    assert waiting == 1  # the third chat waits: fay is at her chat maximum


async def test_preferred_agent_first_then_the_queue(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "gus")
    await put_agent(db, "hal")
    cid = await arrive(app, "sticky", agent="hal")
    [offer] = await offered(app, "hal")
    assert offer["contact_id"] == cid
    explained = (await record(app, cid, explain="true"))["assignment"]["offers"][0]["explanation"]
    assert explained["preferred"].startswith("preferred agent hal")
    # the preferred agent is busy: the contact waits for it (within the wait)
    await set_presence(db, "hal", "busy")
    waits = await arrive(app, "sticky", agent="hal")
    # the preferred agent is offline: the queue at once
    await put_agent(db, "ida", presence="offline")
    direct = await arrive(app, "sticky", agent="ida")
    [to_gus] = await offered(app, "gus")
    assert to_gus["contact_id"] == direct
    note = (await record(app, direct, explain="true"))["assignment"]["offers"][0]["explanation"]
    assert note["preferred"] == "preferred agent ida is offline; offered to the queue at once"
    assert [o for o in await offers(app, status="offered") if o["contact_id"] == waits] == []


async def test_an_overflow_step_into_an_assigned_queue_is_offered_at_once(
    app: Api, db: asyncpg.Pool
) -> None:
    await put_agent(db, "fay", skills={"support": 2})
    cid = await arrive(app, "platform", q="spill")  # the platform's queue, for a second
    [offer] = await offered(app, "fay")
    assert offer["contact_id"] == cid
    body = await record(app, cid)
    [step] = body["steps"]
    assert step["to"]["queue"] == "desk"
    waited = datetime.fromisoformat(offer["offered_at"]) - datetime.fromisoformat(step["at"])
    assert waited < timedelta(seconds=3), waited  # woken by the step, not by a sweep (30 s)


async def test_queues_without_assign_stay_with_the_platform(app: Api, db: asyncpg.Pool) -> None:
    await put_agent(db, "jo", skills={"support": 5})
    cid = await arrive(app, "platform")
    await arrive(app, "desk")
    await offered(app, "jo")
    assert [o for o in await offers(app, agent="jo") if o["contact_id"] == cid] == []
    assert (await record(app, cid))["lifecycle"]["state"] == "waiting"


async def test_an_outcome_frees_the_agent_and_the_next_contact_is_offered(
    app: Api, db: asyncpg.Pool
) -> None:
    await put_agent(db, "kim", skills={"support": 1}, capacity=34)
    first = await arrive(app, "desk")
    second = await arrive(app, "desk")
    [offer] = await offered(app, "kim")
    assert offer["contact_id"] == first
    await app.json("POST", f"/v1/offers/{offer['offer_id']}/accept")
    await app.json("POST", f"/v1/contacts/{first}/events", {"type": "closed"}, status=201)
    [nxt] = await offered(app, "kim")
    assert nxt["contact_id"] == second
    # abandoned while offered: the offer is cancelled, the units freed
    await app.json("POST", f"/v1/contacts/{second}/events", {"type": "abandoned"}, status=201)
    [cancelled] = [o for o in await offers(app, agent="kim") if o["contact_id"] == second]
    assert cancelled["status"] == "cancelled"
    assert (await load_of(db, "kim"))["load_units"] == 0


async def test_the_guard_refuses_a_direct_raise_past_capacity(db: asyncpg.Pool) -> None:
    await put_agent(db, "lee", capacity=50, channel_max={"chat": 1}, presence="offline")
    with pytest.raises(asyncpg.CheckViolationError, match="over capacity"):
        await db.execute("UPDATE agents SET load_units = 60 WHERE agent_id = 'lee'")
    with pytest.raises(asyncpg.CheckViolationError, match="over its chat maximum"):
        await db.execute(
            """UPDATE agents SET load_by_channel = '{"chat": 2}' WHERE agent_id = 'lee'"""
        )
    await db.execute("UPDATE agents SET load_units = 50 WHERE agent_id = 'lee'")
    await db.execute("UPDATE agents SET capacity = 10 WHERE agent_id = 'lee'")  # lowering: fine
    await db.execute("UPDATE agents SET load_units = 0, capacity = 50 WHERE agent_id = 'lee'")


async def test_offers_api_checks_its_input(app: Api, db: asyncpg.Pool) -> None:
    bad = await app.get("/v1/offers", status="maybe")
    assert bad.status == 400 and (await bad.json())["fields"][0]["field"] == "status"
    unknown = await app.send("POST", f"/v1/offers/{'0' * 8}-0000-7000-8000-{'0' * 12}/accept")
    assert unknown.status == 404
    malformed = await app.send("POST", "/v1/offers/nope/reject")
    assert malformed.status == 400 and (await malformed.json())["fields"][0]["field"] == "id"
    anonymous = await app.send("POST", "/v1/offers/nope/reject", token=None)
    assert anonymous.status == 401
