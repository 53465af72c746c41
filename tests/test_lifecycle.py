"""The lifecycle of routed contacts (docs/lifecycle.md): states moved by
outcome events, expiry, overflow steps applied once and on time across
instances, restarts and a database outage, the ``lifecycle: none`` opt-out,
and the lifecycle's events delivered to destinations (docs/deliveries.md).
Every test here works on a database of its own module (``own_database``), so
only the apps a test opens run timers on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from router.models import uuid7
from router.settings import LifecycleSettings
from router.store import lifecycle
from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.plans import NESTED, generic_plan
from tests.support.proxy import CuttableProxy
from tests.support.receivers import Receiver, destination, receiver, whsec
from tests.support.rules import shipped_queues
from tests.support.seed import pool
from tests.support.settings import SECRETS

RULES = """
rules:
  - name: chats-overflow
    when: {contact.channel: chat}
    route:
      queue: chat-general
      priority: 50
      skills: [chat, vip]
      overflow:
        - {after: 1s, queue: general, drop_skills: [vip], priority: 60}
        - {after: 2s, priority_boost: 30}
  - name: voice-later
    when: {contact.channel: voice}
    route:
      queue: voice-general
      priority: 50
      overflow:
        - {after: 1h, queue: general}
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lifecycle-rules")
    # the shipped queues without their tests, which expect the shipped routing
    queues = shipped_queues()
    (folder / "00-queues.yaml").write_text(queues)
    (folder / "10-routing.yaml").write_text(RULES)
    return folder


def overrides(rules_dir: Path, **lifecycle: Any) -> dict[str, Any]:
    adapters = [
        {"name": name, "kind": name, "secrets": [secret]} for name, secret in SECRETS.items()
    ]
    adapters[1]["lifecycle"] = "none"  # email: decisions only
    return {
        "rules": {"paths": [str(rules_dir)], "watch": False},
        "adapters": adapters,
        "lifecycle": {
            "step_interval": 0.25,
            "expiry_interval": 0.5,
            "channels": {"social": "none"},
            **lifecycle,
        },
    }


@pytest.fixture
async def app(own_database: str, rules_dir: Path) -> AsyncIterator[Api]:
    async with app_on(own_database, **overrides(rules_dir)) as api:
        yield api


async def record(api: Api, contact_id: str, **params: str) -> dict[str, Any]:
    response = await api.get(f"/v1/contacts/{contact_id}", **params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def event(api: Api, contact_id: str, type_: str, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.json(
        "POST", f"/v1/contacts/{contact_id}/events", {"type": type_, **more}, status=201
    )
    return body


async def steps_of(api: Api, contact_id: str, n: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The contact's steps, once it has ``n`` of them."""
    body = await eventually(
        lambda: record(api, contact_id), lambda b: len(b["steps"]) >= n, timeout=timeout
    )
    steps: list[dict[str, Any]] = body["steps"]
    return steps


def late(step: dict[str, Any]) -> float:
    at, due = datetime.fromisoformat(step["at"]), datetime.fromisoformat(step["due"])
    return (at - due).total_seconds()


async def test_events_move_the_state_and_end_it(app: Api) -> None:
    contact = await routed(app, "voice")
    cid = contact["contact_id"]
    life = (await record(app, cid))["lifecycle"]
    assert life["state"] == "waiting"
    assert life["queue"] == "voice-general" and life["next_step"] == 0
    assert life["next_step_at"] and life["expires_at"]
    listed = await (await app.get("/v1/contacts", state="waiting", channel="voice")).json()
    assert cid in [c["contact_id"] for c in listed["contacts"]]
    pending = await (await app.get("/v1/contacts", outcome="pending")).json()
    assert cid in [c["contact_id"] for c in pending["contacts"]]

    assert (await event(app, cid, "assigned", agent="a-1"))["state"] == "assigned"
    life = (await record(app, cid))["lifecycle"]
    assert life["state"] == "assigned" and life["next_step_at"] is None  # the timer stops
    listed = await (await app.get("/v1/contacts", state="waiting")).json()
    assert cid not in [c["contact_id"] for c in listed["contacts"]]
    assert (await event(app, cid, "answered"))["state"] == "answered"
    # a late "assigned" does not move it back
    assert (await event(app, cid, "assigned", event_id="late"))["state"] == "answered"
    assert (await event(app, cid, "resolved"))["state"] == "resolved"
    assert (await record(app, cid))["lifecycle"] == {"state": "resolved"}
    bad = await app.get("/v1/contacts", state="gone")
    assert bad.status == 400


async def test_abandoned_leaves_the_open_set(app: Api) -> None:
    cid = (await routed(app, "voice"))["contact_id"]
    assert (await event(app, cid, "abandoned"))["state"] == "abandoned"
    assert (await record(app, cid))["lifecycle"] == {"state": "abandoned"}


async def test_a_step_fires_once_on_time_and_shows_everywhere(app: Api) -> None:
    cid = (await routed(app, "chat"))["contact_id"]
    steps = await steps_of(app, cid, 2)
    await asyncio.sleep(0.6)  # more runs of the job: nothing applied twice
    body = await record(app, cid, explain="true")
    assert body["steps"] == steps and [s["step"] for s in steps] == [0, 1]
    assert steps[0]["from"] == {"queue": "chat-general", "priority": 50, "skills": ["chat", "vip"]}
    assert steps[0]["to"] == {"queue": "general", "priority": 60, "skills": ["chat"]}
    assert steps[1]["to"] == {"queue": "general", "priority": 80, "skills": ["chat"]}
    assert all(0 <= late(s) < 1.0 for s in steps), steps
    assert "explanation" in body
    life = body["lifecycle"]
    assert life["state"] == "waiting" and life["queue"] == "general" and life["priority"] == 80
    assert life["next_step_at"] is None
    text = await (await app.get("/metrics")).text()
    counted = 'omniroute_overflow_steps_total{adapter="chat",channel="chat",queue="chat-general"'
    assert counted in text


async def test_no_step_after_assigned(app: Api) -> None:
    cid = (await routed(app, "chat"))["contact_id"]
    await event(app, cid, "assigned", agent="a-2")
    await asyncio.sleep(1.8)
    body = await record(app, cid)
    assert body["steps"] == []
    assert body["lifecycle"]["queue"] == "chat-general"


async def test_expiry(own_database: str, rules_dir: Path) -> None:
    settings = overrides(rules_dir, channels={"voice": 1})  # seconds
    async with app_on(own_database, **settings) as api:
        cid = (await routed(api, "voice"))["contact_id"]
        assigned = (await routed(api, "voice"))["contact_id"]
        await event(api, assigned, "assigned")
        for contact_id in (cid, assigned):
            body = await eventually(
                lambda c=contact_id: record(api, c),
                lambda b: b["lifecycle"]["state"] == "expired",
                timeout=5,
            )
            assert body["outcome"] == "expired"
        assert "omniroute_contacts_expired_total" in await (await api.get("/metrics")).text()


async def test_expiry_joins_by_index_probes_whatever_the_plan(
    own_database: str, rules_dir: Path
) -> None:
    """The expiry's statement, planned generic and with nested loops as the
    only join (tests/support/plans.py): no join filters the pairs of two
    scans (each row of one CTE against every row of another, quadratic in
    the batch). And an open row whose record is missing (none should be)
    still expires, without the record's ids."""
    async with app_on(own_database, **overrides(rules_dir)):
        pass  # (the schema; no timer runs past here)
    async with pool(own_database) as p:
        for settings in ((), NESTED):
            plan = await generic_plan(p, lifecycle._EXPIRE, ["500"], settings=settings)
            assert "Join Filter" not in plan, (settings, plan)
        stray = uuid7()
        await p.execute(
            """INSERT INTO open_contacts (contact_id, received_at, adapter, channel, queue,
                                          priority, expires_at)
               VALUES ($1, now(), 'chat', 'chat', 'general', 50, now() - interval '1 second')""",
            stray,
        )
        expired = {e.contact_id: e for e in await lifecycle.expire_due(p, limit=10_000)}
        assert (expired[stray].customer_id, expired[stray].external_id) == (None, None)
        assert expired[stray].queue == "general" and expired[stray].state == "waiting"
        assert (
            await p.fetchval("SELECT count(*) FROM open_contacts WHERE contact_id = $1", stray) == 0
        )


async def test_lifecycle_none_keeps_only_the_decision(app: Api) -> None:
    contact = await routed(app, "email")  # the email adapter opted out
    body = await record(app, contact["contact_id"])
    assert body["lifecycle"] == {"state": None}
    assert body["steps"] == []


async def test_a_channel_can_opt_out(app: Api) -> None:
    contact = await routed(app, "social")  # lifecycle.channels: {social: none}
    assert (await record(app, contact["contact_id"]))["lifecycle"] == {"state": None}
    assert (await event(app, contact["contact_id"], "assigned"))["state"] is None


def test_channel_lifetimes_are_checked() -> None:
    with pytest.raises(ValidationError, match="not a channel"):
        LifecycleSettings(channels={"fax": 60})
    with pytest.raises(ValidationError, match="more than 0"):
        LifecycleSettings(channels={"voice": 0})
    life = LifecycleSettings(channels={"voice": 60, "social": "none"})
    assert (life.lifetime("voice"), life.lifetime("social"), life.lifetime("chat")) == (
        60,
        None,
        86400,
    )


async def test_two_instances_apply_each_step_once(own_database: str, rules_dir: Path) -> None:
    settings = overrides(rules_dir)
    async with app_on(own_database, **settings) as one, app_on(own_database, **settings) as two:
        ids = [(await routed((one, two)[n % 2], "chat"))["contact_id"] for n in range(30)]
        for cid in ids:
            steps = await steps_of(one, cid, 2)
            assert [s["step"] for s in steps] == [0, 1]
        await asyncio.sleep(0.6)
        for cid in ids:
            assert [s["step"] for s in (await record(two, cid))["steps"]] == [0, 1]


async def test_a_due_step_fires_after_a_restart(own_database: str, rules_dir: Path) -> None:
    settings = overrides(rules_dir)
    async with app_on(own_database, **settings) as first:
        cid = (await routed(first, "chat"))["contact_id"]
    await asyncio.sleep(2.5)  # both steps fall due while no instance runs
    async with app_on(own_database, **settings) as second:
        steps = await steps_of(second, cid, 2, timeout=5)
        assert [s["step"] for s in steps] == [0, 1]


async def test_a_database_outage_only_delays_steps(own_database: str, rules_dir: Path) -> None:
    proxy = CuttableProxy(own_database)
    await proxy.start()
    database = {"url": proxy.url, "pool_min": 1, "pool_max": 3, "command_timeout": 2}
    try:
        async with app_on(proxy.url, database=database, **overrides(rules_dir)) as api:
            cid = (await routed(api, "chat"))["contact_id"]
            proxy.cut()
            await asyncio.sleep(3)  # both steps fall due during the outage
            proxy.restore()
            steps = await steps_of(api, cid, 2, timeout=15)
            assert [s["step"] for s in steps] == [0, 1]
    finally:
        await proxy.close()


# -- events delivered ----------------------------------------------------------------


async def events_of(r: Receiver, contact_id: str, n: int, timeout: float = 10) -> list[Any]:
    """The events about ``contact_id`` that ``r`` received, once there are ``n``."""

    async def mine() -> list[Any]:
        return [e for e in r.received if e.json()["data"]["contact_id"] == contact_id]

    got: list[Any] = await eventually(mine, lambda es: len(es) >= n, timeout=timeout)
    return got


async def test_routed_steps_and_expiry_are_delivered(own_database: str, rules_dir: Path) -> None:
    secret = whsec()
    async with receiver() as r, receiver() as only_steps:
        dests = [destination(r, secret), destination(only_steps, events=["contact.step"])]
        settings = overrides(rules_dir, channels={"chat": 3, "social": "none"})
        async with app_on(own_database, destinations=dests, **settings) as api:
            contact = await routed(api, "chat")
            cid = contact["contact_id"]
            await events_of(r, cid, 4)
            await events_of(only_steps, cid, 2)
            await asyncio.sleep(0.6)  # more runs of the jobs: nothing written twice
    assert len(r.received) == 4 and len(only_steps.received) == 2
    bodies = [Webhook(secret).verify(e.body, e.headers) for e in r.received]
    types = sorted(b["type"] for b in bodies)
    assert types == ["contact.expired", "contact.routed", "contact.step", "contact.step"]
    assert [e.json()["type"] for e in only_steps.received] == ["contact.step"] * 2
    for b in bodies:
        data = b["data"]
        assert data["contact_id"] == cid and data["customer_id"] == contact["customer_id"]
        assert data["channel"] == data["adapter"] == "chat"
        assert data["external_id"] == contact["payload"]["id"]
    steps = sorted(
        (b["data"] for b in bodies if b["type"] == "contact.step"), key=lambda d: d["step"]["step"]
    )
    first, second = steps
    assert [first["step"]["step"], second["step"]["step"]] == [0, 1]
    before = {"queue": "chat-general", "priority": 50, "skills": ["chat", "vip"]}
    after = {"queue": "general", "priority": 60, "skills": ["chat"]}
    assert first["step"]["from"] == before
    assert first["step"]["to"] == first["placement"] == after
    assert second["placement"] == {"queue": "general", "priority": 80, "skills": ["chat"]}
    assert first["step"]["at"] and first["step"]["due"]
    expired = next(b["data"] for b in bodies if b["type"] == "contact.expired")
    assert expired["state"] == "waiting"
    assert expired["placement"] == second["placement"]
    assert len(set(r.ids + only_steps.ids)) == 6  # an id per destination and change


async def test_a_step_applied_by_two_apps_at_once_is_delivered_once(
    own_database: str, rules_dir: Path
) -> None:
    async with receiver() as r:
        dests = [destination(r, events=["contact.step"])]
        settings = overrides(rules_dir)
        async with (
            app_on(own_database, destinations=dests, **settings) as one,
            app_on(own_database, destinations=dests, **settings) as two,
        ):
            ids = [(await routed((one, two)[n % 2], "chat"))["contact_id"] for n in range(20)]
            for cid in ids:
                await events_of(r, cid, 2)
            await asyncio.sleep(0.8)
    con = await asyncpg.connect(own_database, server_settings={"search_path": "omniroute"})
    try:
        rows = await con.fetch(
            "SELECT contact_id, payload FROM deliveries WHERE event_type = 'contact.step'"
            " AND contact_id = ANY($1::uuid[])",
            ids,
        )
    finally:
        await con.close()
    assert len(rows) == 2 * len(ids)
    assert sorted(r.ids) == sorted(set(r.ids)) and len(r.ids) == 2 * len(ids)
    for cid in ids:
        got = [e.json()["data"] for e in r.received]
        assert sorted(d["step"]["step"] for d in got if d["contact_id"] == cid) == [0, 1]


async def test_outcome_events_that_move_the_lifecycle_are_delivered(
    own_database: str, rules_dir: Path
) -> None:
    outcomes = ["contact.assigned", "contact.answered", "contact.resolved", "contact.abandoned"]
    async with receiver() as r:
        dests = [destination(r, events=outcomes)]
        async with app_on(own_database, destinations=dests, **overrides(rules_dir)) as api:
            contact = await routed(api, "voice")
            cid = contact["contact_id"]
            await event(api, cid, "assigned", agent="a-1")
            await event(api, cid, "answered")
            await event(api, cid, "assigned", event_id="late")  # moves nothing: no event
            await event(api, cid, "resolved")
            left = (await routed(api, "voice"))["contact_id"]
            await event(api, left, "abandoned")
            got = await events_of(r, cid, 3)
            await events_of(r, left, 1)
            await asyncio.sleep(0.5)
    got = [e.json() for e in r.received if e.json()["data"]["contact_id"] == cid]
    assert sorted(b["type"] for b in got) == [
        "contact.answered",
        "contact.assigned",
        "contact.resolved",
    ]
    moves = {b["type"]: b["data"] for b in got}
    assert (moves["contact.assigned"]["from"], moves["contact.assigned"]["to"]) == (
        "waiting",
        "assigned",
    )
    assert moves["contact.resolved"]["from"] == "answered"
    for data in moves.values():
        assert data["customer_id"] == contact["customer_id"]
        assert data["external_id"] == contact["payload"]["id"]
        assert data["channel"] == "voice"
        assert data["placement"]["queue"] == "voice-general"
    assert [e.json()["type"] for e in r.received if e.json()["data"]["contact_id"] == left] == [
        "contact.abandoned"
    ]


def test_lifetime_by_adapter_and_channel() -> None:
    from router.runtime import _lifetime
    from router.settings import AdapterSettings, Settings

    settings = Settings(
        adapters=[
            AdapterSettings(name="chat", kind="chat", secrets=["s"]),
            AdapterSettings(name="bulk", kind="generic", secrets=["s"], lifecycle="none"),
        ],
        lifecycle=LifecycleSettings(channels={"voice": 60, "social": "none"}),
    )
    lifetime = _lifetime(settings)
    assert [lifetime("chat", c) for c in ("voice", "social", "chat", "voice")] == [
        60,
        None,
        86400,
        60,
    ]
    assert lifetime("bulk", "voice") is None
    assert lifetime("elsewhere", "chat") == 86400  # not configured: the channel's
