"""The agents' API over real HTTP (docs/agents.md): profiles, lists and
pages, every 4xx naming its field, scopes, presence and its mapping, the
notification to the assignment job (LISTEN), removal, the live queue
figures and the presence changes on the live stream. The module works on a
database of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from structlog.testing import capture_logs

from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.examples import unique
from tests.support.proxy import CuttableProxy
from tests.support.rules import shipped_queues
from tests.support.settings import SECRETS, TOKEN
from tests.support.streams import open_stream

AGENTS_READER = "test-token-agents-read"
NO_AGENTS = "test-token-no-agents"
RULES = """
rules:
  - name: chats
    when: {contact.channel: chat}
    route: {queue: chat-general, priority: 40}
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("agents-rules")
    (folder / "00-queues.yaml").write_text(shipped_queues())
    (folder / "10-routing.yaml").write_text(RULES)
    return folder


@pytest.fixture
async def app(own_database: str, rules_dir: Path) -> AsyncIterator[Api]:
    tokens = [
        {"name": "all", "token": TOKEN, "scopes": ["agents:read", "agents:write", "live:read",
                                                  "events:write", "reports:read"]},
        {"name": "agents-reader", "token": AGENTS_READER, "scopes": ["agents:read"]},
        {"name": "no-agents", "token": NO_AGENTS, "scopes": ["reports:read"]},
    ]  # fmt: skip
    adapters = [
        {"name": name, "kind": name, "secrets": [secret]} for name, secret in SECRETS.items()
    ]
    async with app_on(
        own_database,
        rules={"paths": [str(rules_dir)], "watch": False},
        adapters=adapters,
        api={"tokens": tokens, "failed_auth_limit": 0},
        agents={"presence_names": {"on_break": "away", "Ready": "available"}},
    ) as api:
        yield api


async def put(api: Api, agent_id: str, body: dict[str, Any], status: int = 200) -> Any:
    return await api.json("PUT", f"/v1/agents/{agent_id}", body, status=status)


async def presence(api: Api, agent_id: str, value: str, status: int = 200) -> Any:
    body = {"presence": value}
    return await api.json("PUT", f"/v1/agents/{agent_id}/presence", body, status=status)


async def refused(api: Api, method: str, path: str, body: Any, status: int) -> list[dict[str, str]]:
    response = await api.send(method, path, body)
    assert response.status == status, (response.status, await response.text())
    fields: list[dict[str, str]] = (await response.json())["fields"]
    return fields


# -- profiles -----------------------------------------------------------------------


async def test_create_replace_read_and_list(app: Api) -> None:
    agent_id = unique("ann")
    body = {"name": "Ann <b>Lee</b>", "skills": {"chat": 3, "billing": 5},
            "channel_max": {"chat": 3}}  # fmt: skip
    with capture_logs() as logs:
        created = await put(app, agent_id, body, status=201)
    saved = [e for e in logs if e["event"] == "agent_saved"]
    assert saved == [
        {"event": "agent_saved", "agent": agent_id, "created": True, "actor": "all",
         "woke_assignment": False, "log_level": "info"}
    ]  # fmt: skip
    assert "Lee" not in repr(logs)  # an agent's name is personal data: never logged
    assert created["agent_id"] == agent_id
    assert created["name"] == "Ann <b>Lee</b>"  # data, kept as given, never rendered
    assert created["skills"] == {"chat": 3, "billing": 5}
    assert created["capacity"] == 100  # the default
    assert created["channel_max"] == {"chat": 3}
    assert created["presence"] == "offline"  # nothing is offered until it signs in
    assert created["load"] == {"units": 0, "by_channel": {}}
    assert created["free_capacity"] == 100
    assert created["idle_since"] is not None
    again = await put(app, agent_id, body)  # the same PUT: 200, nothing changes
    assert again["updated_at"] == created["updated_at"]
    replaced = await put(app, agent_id, {"name": "Ann Lee", "capacity": 150})
    assert replaced["skills"] == {} and replaced["channel_max"] == {}
    assert replaced["capacity"] == 150 and replaced["free_capacity"] == 150
    one = await app.json("GET", f"/v1/agents/{agent_id}")
    assert one["name"] == "Ann Lee" and one["work"] == []


async def test_list_filters_and_pages(app: Api) -> None:
    skill = unique("sk")
    ids = sorted(unique("pg") for _ in range(5))
    for n, agent_id in enumerate(ids):
        await put(app, agent_id, {"skills": {skill: n + 1}}, status=201)
    await presence(app, ids[0], "available")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"skill": skill, "limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await app.get("/v1/agents", **params)
        assert response.status == 200
        page = await response.json()
        seen += [a["agent_id"] for a in page["agents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    high = await (await app.get("/v1/agents", skill=skill, level="4")).json()
    assert [a["agent_id"] for a in high["agents"]] == ids[3:]
    ready = await (await app.get("/v1/agents", skill=skill, presence="available")).json()
    assert [a["agent_id"] for a in ready["agents"]] == ids[:1]


async def test_every_bad_request_names_the_field(app: Api) -> None:
    agent_id = unique("bad")
    path = f"/v1/agents/{agent_id}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"skills": {"chat": 6}}, "skills.chat"),
        ({"skills": {"chat": 0}}, "skills.chat"),
        ({"skills": {"chat": "3"}}, "skills.chat"),
        ({"skills": {"chat": True}}, "skills.chat"),
        ({"skills": {"": 1}}, "skills"),
        ({"skills": {"x" * 65: 1}}, "skills"),
        ({"capacity": -1}, "capacity"),
        ({"capacity": 100_001}, "capacity"),
        ({"capacity": 50.5}, "capacity"),
        ({"channel_max": {"fax": 1}}, "channel_max"),
        ({"channel_max": {"chat": -1}}, "channel_max.chat"),
        ({"name": "x" * 257}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"presence": "available"}, "presence"),  # presence has its own endpoint
    ]
    for body, field in cases:
        fields = await refused(app, "PUT", path, body, 422)
        assert any(f["field"].startswith(field) for f in fields), (body, fields)
    fields = await refused(app, "PUT", path, None, 422)
    assert fields[0]["field"] == "body"
    for bad_id in ("-lead", "a%2Fb", "x" * 129, "%3Cscript%3E", "a%20b"):
        fields = await refused(app, "PUT", f"/v1/agents/{bad_id}", {}, 400)
        assert fields[0]["field"] == "id"
    for params, field in (
        ({"presence": "lunch"}, "presence"),
        ({"level": "6", "skill": "x"}, "level"),
        ({"level": "2"}, "level"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "<x>"}, "cursor"),
        ({"sort": "name"}, "sort"),
    ):
        response = await app.get("/v1/agents", **params)
        assert response.status == 400, params
        assert (await response.json())["fields"][0]["field"] == field
    response = await app.get(f"/v1/agents/{unique('nobody')}")
    assert response.status == 404
    assert (await response.json())["fields"] == [{"field": "id", "reason": "unknown agent"}]


async def test_scopes(app: Api) -> None:
    agent_id = unique("sc")
    await put(app, agent_id, {}, status=201)
    path = f"/v1/agents/{agent_id}"
    writes = [("PUT", path, {}), ("PUT", f"{path}/presence", {"presence": "away"}),
              ("DELETE", path, None)]  # fmt: skip
    for method, target, body in writes:
        assert (await app.send(method, target, body, token=AGENTS_READER)).status == 403
        assert (await app.send(method, target, body, token=None)).status == 401
    assert (await app.get(path, token=AGENTS_READER)).status == 200
    assert (await app.get("/v1/agents", token=AGENTS_READER)).status == 200
    for target in (path, "/v1/agents"):
        assert (await app.get(target, token=NO_AGENTS)).status == 403
        assert (await app.get(target, token=None)).status == 401


async def test_concurrent_writes_create_once_and_log_every_change(
    app: Api, own_db: asyncpg.Connection
) -> None:
    agent_id = unique("cc")
    path = f"/v1/agents/{agent_id}"
    puts = await asyncio.gather(*(app.send("PUT", path, {"name": "C"}) for _ in range(8)))
    assert sorted(r.status for r in puts) == [200] * 7 + [201]
    values = ["available", "away", "busy", "available", "offline", "busy"] * 2
    answers = await asyncio.gather(
        *(app.json("PUT", f"{path}/presence", {"presence": v}) for v in values)
    )
    changed = [a for a in answers if a["changed"]]
    logged = await own_db.fetch(
        """SELECT data FROM lifecycle_log WHERE agent_id = $1 AND kind = 'agent.presence'
            ORDER BY id""",
        agent_id,
    )
    assert len(logged) == len(changed) >= 1
    # the log is a chain: each change starts where the one before ended
    data = [orjson.loads(row["data"]) for row in logged]
    steps = [(d["from"], d["to"]) for d in data]
    assert steps[0][0] == "offline"
    assert all(a[1] == b[0] for a, b in zip(steps, steps[1:], strict=False))
    final = await app.json("GET", path)
    assert final["presence"] == steps[-1][1]


async def test_failed_tokens_are_braked_on_the_agents_endpoints(own_database: str) -> None:
    tokens = [{"name": "all", "token": TOKEN, "scopes": ["agents:read", "agents:write"]}]
    async with app_on(own_database, api={"tokens": tokens, "failed_auth_limit": 2}) as api:
        for _ in range(2):
            assert (await api.get("/v1/agents", token="wrong-token")).status == 401
        braked = await api.send("PUT", f"/v1/agents/{unique('br')}", {})  # the right token
        assert braked.status == 429 and int(braked.headers["Retry-After"]) > 0


async def test_database_outage_is_503_and_nothing_half_done(
    flaky: tuple[Api, CuttableProxy],
) -> None:
    api, proxy = flaky
    agent_id = unique("out")
    await put(api, agent_id, {"skills": {"chat": 1}}, status=201)
    proxy.cut()
    try:
        for method, path, body in (
            ("PUT", f"/v1/agents/{agent_id}", {"capacity": 10}),
            ("PUT", f"/v1/agents/{agent_id}/presence", {"presence": "available"}),
            ("GET", "/v1/agents", None),
        ):
            response = await api.send(method, path, body)
            assert response.status == 503, (path, await response.text())
            assert response.headers["Retry-After"]
    finally:
        proxy.restore()
    after = await eventually(
        lambda: api.send("GET", f"/v1/agents/{agent_id}"), lambda r: r.status == 200
    )
    agent = await after.json()
    assert (agent["capacity"], agent["presence"]) == (100, "offline")


# -- presence and the assignment job's notification ------------------------------------


class Listener:
    """The notifications sent on the assignment job's channel."""

    def __init__(self) -> None:
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, *args: Any) -> None:
        self.payloads.put_nowait(args[3])

    async def drained(self, pause: float = 0.3) -> list[str]:
        await asyncio.sleep(pause)
        out = []
        while not self.payloads.empty():
            out.append(self.payloads.get_nowait())
        return out


async def test_presence_mapping_and_the_notification(app: Api, own_db: asyncpg.Connection) -> None:
    listener = Listener()
    await own_db.add_listener("omniroute_assign", listener)
    agent_id = unique("pr")
    mine = f"agent:{agent_id}"
    await put(app, agent_id, {"skills": {"chat": 2}}, status=201)
    assert mine not in await listener.drained()  # a new agent is offline
    became = await presence(app, agent_id, "Ready")  # a platform's name, mapped
    assert became["presence"] == "available" and became["previous_presence"] == "offline"
    assert became["changed"] is True
    assert (await listener.drained()).count(mine) == 1
    again = await presence(app, agent_id, "available")
    assert again["changed"] is False
    assert mine not in await listener.drained()  # the same presence: nothing new
    # while available: more capacity, a new skill, a raised channel maximum notify ...
    base = {"skills": {"chat": 2}, "capacity": 100, "channel_max": {"chat": 1}}
    await put(app, agent_id, base)
    assert mine not in await listener.drained()  # a maximum set: less, not more
    wider: list[dict[str, Any]] = [
        {"capacity": 200},
        {"skills": {"chat": 2, "billing": 1}},
        {"skills": {"chat": 3}},
        {"channel_max": {"chat": 2}},
        {"channel_max": {}},
    ]
    for change in wider:
        await put(app, agent_id, {**base, **change})
        assert (await listener.drained()).count(mine) == 1, change
        await put(app, agent_id, base)
        await listener.drained()
    # ... less does not
    narrower = {**base, "capacity": 50}
    await put(app, agent_id, narrower)
    narrower["channel_max"] = {"chat": 0}
    await put(app, agent_id, narrower)
    narrower["skills"] = {"chat": 1}
    await put(app, agent_id, narrower)
    assert mine not in await listener.drained()
    away = await presence(app, agent_id, "on_break")
    assert away["presence"] == "away"
    await put(app, agent_id, {"skills": {"chat": 5}, "capacity": 300})  # not available
    assert mine not in await listener.drained()
    fields = await refused(
        app, "PUT", f"/v1/agents/{agent_id}/presence", {"presence": "lunch"}, 422
    )
    assert fields[0]["field"] == "presence"
    for word in ("'lunch'", "available", "busy", "away", "offline", "on_break", "Ready"):
        assert word in fields[0]["reason"]
    unknown = await refused(
        app, "PUT", f"/v1/agents/{unique('nobody')}/presence", {"presence": "away"}, 404
    )
    assert unknown[0]["field"] == "id"
    await own_db.remove_listener("omniroute_assign", listener)


async def test_a_change_older_than_the_current_presence_is_stale(app: Api) -> None:
    agent_id = unique("old")
    await put(app, agent_id, {}, status=201)
    path = f"/v1/agents/{agent_id}/presence"
    now = datetime.now(UTC)

    async def change(value: str, ago: float) -> Any:
        at = (now - timedelta(seconds=ago)).isoformat()
        return await app.json("PUT", path, {"presence": value, "at": at})

    first = await change("available", 60)
    assert first["changed"] is True and first["stale"] is False
    assert datetime.fromisoformat(first["presence_at"]) == now - timedelta(seconds=60)
    late = await change("away", 120)  # happened before: a late retry
    assert (late["changed"], late["stale"], late["presence"]) == (False, True, "available")
    newer = await change("away", 30)
    assert (newer["changed"], newer["presence"]) == (True, "away")
    ahead = await change("busy", -3600)  # a clock ahead of ours: now, not later
    assert datetime.fromisoformat(ahead["presence_at"]) <= datetime.now(UTC)
    fields = await refused(app, "PUT", path, {"presence": "away", "at": "yesterday"}, 422)
    assert fields[0]["field"] == "at"


async def test_capacity_under_the_load_and_removal(app: Api, own_db: asyncpg.Connection) -> None:
    agent_id = unique("ld")
    await put(app, agent_id, {"skills": {"chat": 1}}, status=201)
    contact_id, offer_id = uuid.uuid4(), uuid.uuid4()
    # what assignment writes when it offers a chat (34 units)
    async with own_db.transaction():
        await own_db.execute(
            """UPDATE agents SET load_units = 68, load_by_channel = '{"chat": 2}'
                WHERE agent_id = $1""",
            agent_id,
        )
        await own_db.execute(
            """INSERT INTO agent_work (contact_id, agent_id, offer_id, channel, units, state)
               VALUES ($1, $2, $3, 'chat', 34, 'assigned')""",
            contact_id,
            agent_id,
            offer_id,
        )
    lowered = await put(app, agent_id, {"skills": {"chat": 1}, "capacity": 50})
    assert lowered["capacity"] == 50 and lowered["load"]["units"] == 68
    assert lowered["free_capacity"] == 0 and lowered["idle_since"] is None
    one = await app.json("GET", f"/v1/agents/{agent_id}")
    assert one["load"] == {"units": 68, "by_channel": {"chat": 2}}
    assert [(w["contact_id"], w["offer_id"], w["state"], w["units"]) for w in one["work"]] == [
        (str(contact_id), str(offer_id), "assigned", 34)
    ]
    offline = await presence(app, agent_id, "offline")  # keeps what it holds
    assert offline["load"]["units"] == 68
    fields = await refused(app, "DELETE", f"/v1/agents/{agent_id}", None, 409)
    assert fields == [{"field": "id", "reason": "holds 1 offered or assigned contact(s)"}]
    await own_db.execute("DELETE FROM agent_work WHERE contact_id = $1", contact_id)
    removed = await app.json("DELETE", f"/v1/agents/{agent_id}")
    assert removed == {"agent_id": agent_id, "removed": True}
    assert (await app.get(f"/v1/agents/{agent_id}")).status == 404
    assert (await app.send("DELETE", f"/v1/agents/{agent_id}")).status == 404


# -- live ------------------------------------------------------------------------------


async def test_live_queues_count_agents_serving_each_queue(
    app: Api, own_db: asyncpg.Connection
) -> None:
    await own_db.execute("DELETE FROM agent_work")
    await own_db.execute("DELETE FROM agents")
    await routed(app, "chat")  # waiting in chat-general (skills: chat)
    cases = {
        "a-free": ({"skills": {"chat": 1}}, "available", 0),
        "b-busy": ({"skills": {"chat": 4}}, "busy", 0),
        "c-full": ({"skills": {"chat": 2}, "capacity": 60}, "available", 34),  # 26 left < 34
        "d-other": ({"skills": {"billing": 5}}, "available", 0),
        "e-nochat": ({"skills": {"chat": 5}, "channel_max": {"chat": 0}}, "available", 0),
        "f-away": ({"skills": {"chat": 5}}, "away", 0),
        "g-atmax": ({"skills": {"chat": 5}, "channel_max": {"chat": 1}}, "available", 34),
    }
    for agent_id, (body, state, load) in cases.items():
        await put(app, agent_id, body, status=201)
        await presence(app, agent_id, state)
        if load:
            await own_db.execute(
                """UPDATE agents SET load_units = $2, load_by_channel = '{"chat": 1}'
                    WHERE agent_id = $1""",
                agent_id,
                load,
            )
    body = await app.json("GET", "/v1/live/queues")
    row = next(q for q in body["queues"] if (q["queue"], q["channel"]) == ("chat-general", "chat"))
    assert row["waiting"] >= 1
    assert row["agents"] == {"available": 1, "busy": 3}  # a; b, c, g
    assert body["agents"] == {"available": 5, "busy": 1, "away": 1, "offline": 0}


async def test_presence_changes_are_on_the_live_stream(app: Api) -> None:
    agent_id = unique("st")
    await put(app, agent_id, {}, status=201)
    stream = await open_stream(app)
    await presence(app, agent_id, "available")
    seen = await stream.until(lambda e: e.get("agent_id") == agent_id)
    change = seen[-1]
    assert change["kind"] == "agent.presence"
    assert change["contact_id"] is None and change["queue"] is None
    data = change["data"]
    assert (data["agent"], data["from"], data["to"]) == (agent_id, "offline", "available")
    assert data["at"]
    stream.response.close()
    await presence(app, agent_id, "busy")
    resumed = await open_stream(app, last=change["id"])  # resumes after the last one seen
    nxt = await resumed.until(lambda e: e.get("agent_id") == agent_id)
    assert nxt[0]["id"] > change["id"]
    assert (nxt[-1]["data"]["from"], nxt[-1]["data"]["to"]) == ("available", "busy")
    await app.json("DELETE", f"/v1/agents/{agent_id}")  # removed while signed in
    gone = await resumed.until(lambda e: e.get("agent_id") == agent_id)
    assert (gone[-1]["data"]["from"], gone[-1]["data"]["to"]) == ("busy", "offline")
    resumed.response.close()
