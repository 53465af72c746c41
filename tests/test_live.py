"""The live view (docs/api.md#live): the figures per queue against values
computed by hand, the waiting list page by page, and the stream of lifecycle
changes: seen from another instance, resumed with ``Last-Event-ID`` without a
loss or a duplicate, kept alive by heartbeats, ended at shutdown. Every test
works on the module's own database, so only its apps change it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import ClientResponse

from router.web import live
from tests.support.api import Api, routed
from tests.support.apps import app_on, base_url
from tests.support.rules import shipped_queues
from tests.support.settings import READ_TOKEN, SECRETS, TOKEN
from tests.support.streams import Stream, open_stream

RULES = """
rules:
  - name: voice-later
    when: {contact.channel: voice}
    route:
      queue: voice-general
      priority: 50
      overflow:
        - {after: 1h, queue: general}
  - name: chats
    when: {contact.channel: chat}
    route: {queue: chat-general, priority: 40}
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live-rules")
    # the shipped queues without their tests, which expect the shipped routing
    queues = shipped_queues()
    (folder / "00-queues.yaml").write_text(queues)
    (folder / "10-routing.yaml").write_text(RULES)
    return folder


def overrides(rules_dir: Path) -> dict[str, Any]:
    adapters = [
        {"name": name, "kind": name, "secrets": [secret]} for name, secret in SECRETS.items()
    ]
    return {"rules": {"paths": [str(rules_dir)], "watch": False}, "adapters": adapters}


@pytest.fixture
async def app(own_database: str, rules_dir: Path) -> AsyncIterator[Api]:
    async with app_on(own_database, **overrides(rules_dir)) as api:
        yield api


async def event(api: Api, contact_id: str, type_: str) -> None:
    await api.json("POST", f"/v1/contacts/{contact_id}/events", {"type": type_}, status=201)


async def body(response: ClientResponse) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    out: dict[str, Any] = await response.json()
    return out


# -- the figures per queue ------------------------------------------------------------


async def test_queue_figures_as_computed_by_hand(app: Api, own_db: asyncpg.Connection) -> None:
    ids = [(await routed(app, "voice"))["contact_id"] for _ in range(7)]
    # (seconds waiting so far, SLA): past it, within 80% of it, early, no SLA
    placed = [(100, 60), (50, 60), (10, 60), (200, None), (5, None), (5, None), (5, None)]
    for cid, (waited, sla) in zip(ids, placed, strict=True):
        await own_db.execute(
            """UPDATE open_contacts SET queue = 'live-q', sla_seconds = $2,
                      received_at = now() - make_interval(secs => $3)
                WHERE contact_id = $1""",
            cid,
            sla,
            waited,
        )
    await event(app, ids[4], "assigned")
    await event(app, ids[5], "assigned")
    await event(app, ids[5], "answered")
    await event(app, ids[6], "abandoned")
    # an outcome older than 15 minutes is not counted
    await own_db.execute(
        """INSERT INTO lifecycle_log (at, contact_id, kind, queue, channel)
           VALUES (now() - interval '20 minutes', $1, 'abandoned', 'live-q', 'voice')""",
        ids[0],
    )
    figures = (await body(await app.get("/v1/live/queues")))["queues"]
    mine = [q for q in figures if q["queue"] == "live-q"]
    assert len(mine) == 1, figures
    q = mine[0]
    assert 199 <= q.pop("oldest_wait_seconds") < 205
    assert q == {
        "queue": "live-q",
        "channel": "voice",
        "waiting": 4,
        "past_sla": 1,
        "near_sla": 1,
        "assigned": 1,
        "answered": 1,
        "last_15m": {"assigned": 2, "answered": 1, "abandoned": 1},
        "agents": None,  # live-q is not a queue the rules declare
    }
    bad = await app.get("/v1/live/queues", queue="x")
    assert bad.status == 400


# -- the waiting list -------------------------------------------------------------------


async def test_waiting_contacts_page_by_page(app: Api, own_db: asyncpg.Connection) -> None:
    ids = [(await routed(app, "voice"))["contact_id"] for _ in range(5)]
    await own_db.execute(
        "UPDATE open_contacts SET queue = 'page-q' WHERE contact_id = ANY($1::uuid[])", ids
    )
    await event(app, ids[2], "assigned")  # no longer waiting
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(5):
        params = {"queue": "page-q", "channel": "voice", "limit": "2"}
        page = await body(
            await app.get("/v1/live/contacts", **params, **({"cursor": cursor} if cursor else {}))
        )
        seen += page["contacts"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [c["contact_id"] for c in seen] == [ids[0], ids[1], ids[3], ids[4]]
    first = seen[0]
    assert first["state"] == "waiting" and first["channel"] == "voice"
    assert first["placement"]["queue"] == "page-q"  # where it is now
    assert first["decision"]["queue"] == "voice-general"  # what was decided
    assert first["next_step"] == 0 and first["next_step_at"] is not None
    assert 0 <= first["wait_seconds"] < 60
    assigned = await body(await app.get("/v1/live/contacts", state="assigned", queue="page-q"))
    assert [c["contact_id"] for c in assigned["contacts"]] == [ids[2]]
    for params in ({"state": "gone"}, {"queue": ""}, {"cursor": "nope"}, {"limit": "0"}):
        assert (await app.get("/v1/live/contacts", **params)).status == 400


# -- the stream -------------------------------------------------------------------------


async def test_a_client_sees_the_changes_of_another_instance_and_resumes(
    own_database: str, rules_dir: Path, own_db: asyncpg.Connection
) -> None:
    async with (
        app_on(own_database, **overrides(rules_dir)) as a,
        app_on(own_database, **overrides(rules_dir)) as b,
    ):
        stream = await open_stream(a)
        await asyncio.sleep(0.3)  # the feed is listening
        cid = (await routed(b, "voice"))["contact_id"]
        got = await stream.until(lambda e: e["contact_id"] == cid)
        routed_event = got[-1]
        assert routed_event["kind"] == "routed" and routed_event["queue"] == "voice-general"
        assert routed_event["channel"] == "voice" and routed_event["data"]["adapter"] == "voice"
        await event(b, cid, "assigned")
        assigned = (await stream.until(lambda e: e["contact_id"] == cid))[-1]
        assert assigned["kind"] == "assigned" and assigned["data"] == {"from": "waiting"}
        last = assigned["id"]
        stream.response.close()

        # missed while away: a contact routed and abandoned, the other one answered
        other = (await routed(b, "chat"))["contact_id"]
        await event(b, other, "abandoned")
        await event(b, cid, "answered")
        missed = [
            r["id"]
            for r in await own_db.fetch(
                "SELECT id FROM lifecycle_log WHERE id > $1 ORDER BY id", last
            )
        ]
        resumed = await open_stream(a, last)
        replay = await resumed.until(lambda e: e["id"] == missed[-1])
        assert [e["id"] for e in replay] == missed  # exactly the missed ones, in order
        mine = [(e["contact_id"], e["kind"]) for e in replay if e["contact_id"] in (cid, other)]
        assert mine == [(other, "routed"), (other, "abandoned"), (cid, "answered")]
        # and it goes on live, with no duplicate
        again = (await routed(a, "voice"))["contact_id"]
        after = await resumed.until(lambda e: e["contact_id"] == again)
        assert all(e["id"] > missed[-1] for e in after)
        resumed.response.close()


async def test_heartbeats_and_the_end_at_shutdown(
    own_database: str, rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.2)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:  # outlives the app
        async with app_on(own_database, **overrides(rules_dir)) as a:
            response = await session.get(f"{base_url(a)}/v1/live/stream", headers=headers)
            stream = Stream(response)
            task = asyncio.create_task(stream.next(timeout=30))
            await asyncio.sleep(0.7)
            assert "heartbeat" in stream.comments
            started = time.monotonic()
        assert await task is None  # the stream ended with the server, cleanly
        assert time.monotonic() - started < 5


async def test_live_needs_its_scope(app: Api) -> None:
    for path in ("/v1/live/queues", "/v1/live/contacts", "/v1/live/stream"):
        assert (await app.get(path, token=READ_TOKEN)).status == 403
        assert (await app.get(path, token=None)).status == 401
    assert (await app.get("/v1/live/stream", last_event_id="x")).status == 400
