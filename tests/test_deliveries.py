"""Decisions delivered: a routed contact's event goes into the outbox with its
record, and the dispatcher sends it, signed per Standard Webhooks, to a real
local receiver; retries, dead letters, leases, two instances, the API."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from router.outbound import Destinations
from router.outbound.dispatcher import backoff
from router.settings import WebhookDestination, load_settings
from router.store import deliveries
from router.store.lifecycle import Placement, StepApplied
from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.receivers import Receiver, destination, receiver, whsec
from tests.support.settings import READ_TOKEN, ROOT

# (short pauses too: a destination down in a test is paused, and must come back soon)
FAST = {"retry_base": 0.05, "retry_max_delay": 0.2, "poll_interval": 0.2, "pause_base": 0.3}


async def rows_of(db: asyncpg.Connection, contact_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM deliveries WHERE contact_id = $1 ORDER BY destination", contact_id
    )


async def received(r: Receiver, n: int, *, timeout: float = 10.0) -> None:
    await eventually(lambda: asyncio.sleep(0, len(r.received)), lambda k: k >= n, timeout=timeout)


async def test_a_routed_contact_reaches_the_receiver_signed_per_standard_webhooks(
    database_url: str, db: asyncpg.Connection
) -> None:
    old, new = whsec(), whsec()
    async with receiver() as r:
        dest = destination(r, new, old)
        async with app_on(database_url, destinations=[dest]) as api:
            contact = await routed(api, "chat")
            await received(r, 1)
            # a retried delivery of the same webhook writes no second event
            again = await api.deliver("chat", contact["payload"])
            assert (await again.json())["contacts"][0]["duplicate"] is True
            await asyncio.sleep(0.5)
            metrics = await (await api.get("/metrics")).text()
            name = dest["name"]
            assert f'omniroute_delivery_lag_seconds_count{{destination="{name}"}} 1.0' in metrics
            assert (
                f'omniroute_delivery_attempts_total{{destination="{name}",result="delivered"}} 1.0'
                in metrics
            )
    assert len(r.received) == 1
    event = r.received[0]
    # either secret verifies it (rotation): the receiver uses the library as is
    for secret in (new, old):
        body = Webhook(secret).verify(event.body, event.headers)
        assert body == event.json()
    assert body["type"] == "contact.routed"
    assert body["timestamp"].endswith("Z")
    data = body["data"]
    assert data["contact_id"] == contact["contact_id"]
    assert data["customer_id"] == contact["customer_id"]
    assert data["adapter"] == data["channel"] == "chat"
    assert data["external_id"] == contact["payload"]["id"]
    assert data["decision"] == contact["decision"]
    rows = await rows_of(db, contact["contact_id"])
    assert len(rows) == 1
    row = rows[0]
    assert str(row["delivery_id"]) == event.id
    assert (row["status"], row["attempts"], row["destination"]) == ("delivered", 1, dest["name"])
    assert row["delivered_at"] is not None
    with pytest.raises(Exception, match="signature"):
        Webhook(whsec()).verify(event.body, event.headers)


async def test_only_destinations_whose_filters_match_get_the_event(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver() as r:
        everything = destination(r)
        email_only = destination(r, channels=["email"])
        chat_adapter = destination(r, adapters=["chat"], channels=["chat"])
        other_queue = destination(r, queues=["no-such-queue"])
        steps_only = destination(r, events=["contact.step"])
        dests = [everything, email_only, chat_adapter, other_queue, steps_only]
        async with app_on(database_url, destinations=dests) as api:
            contact = await routed(api, "chat")
            await received(r, 2)
    rows = await rows_of(db, contact["contact_id"])
    assert sorted(x["destination"] for x in rows) == sorted(
        [everything["name"], chat_adapter["name"]]
    )
    assert len({x["delivery_id"] for x in rows}) == 2


async def test_a_destination_down_then_back_gets_the_event_with_the_same_id(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver(status=500) as failing, receiver(started=False) as refusing:
        dests = [destination(failing), destination(refusing)]
        async with app_on(database_url, destinations=dests, delivery=FAST) as api:
            contact = await routed(api, "chat")
            await received(failing, 3)
            attempts_while_down = len(failing.received)
            failing.status = 200
            await refusing.start()
            await received(refusing, 1)
            await eventually(
                lambda: rows_of(db, contact["contact_id"]),
                lambda rows: all(x["status"] == "delivered" for x in rows),
            )
    rows = await rows_of(db, contact["contact_id"])
    by_name = {x["destination"]: x for x in rows}
    assert len(set(failing.ids)) == 1 and len(failing.received) > attempts_while_down
    assert failing.ids[0] == str(by_name[dests[0]["name"]]["delivery_id"])
    assert refusing.ids == [str(by_name[dests[1]["name"]]["delivery_id"])]
    assert by_name[dests[1]["name"]]["attempts"] >= 2  # refused at least once
    for x in rows:
        assert x["last_error"] is None


async def test_past_the_horizon_an_event_is_dead_until_retried_by_hand(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver(status=503) as r:
        dest = destination(r)
        delivery = {**FAST, "retry_horizon": 0.5}
        async with app_on(database_url, destinations=[dest], delivery=delivery) as api:
            contact = await routed(api, "chat")
            [row] = await eventually(
                lambda: rows_of(db, contact["contact_id"]),
                lambda rows: rows[0]["status"] == "failed",
            )
            assert row["last_error"] == "HTTP 503"
            failed = await api.get("/v1/deliveries", status="failed", destination=dest["name"])
            listed = (await failed.json())["deliveries"]
            assert [d["id"] for d in listed] == [str(row["delivery_id"])]
            n = len(r.received)
            await asyncio.sleep(0.5)
            assert len(r.received) == n  # dead: no more attempts
            r.status = 204
            answer = await api.send("POST", f"/v1/deliveries/{row['delivery_id']}/retry")
            assert answer.status == 202, await answer.text()
            assert (await answer.json())["status"] == "pending"
            await eventually(
                lambda: rows_of(db, contact["contact_id"]),
                lambda rows: rows[0]["status"] == "delivered",
            )
    assert set(r.ids) == {str(row["delivery_id"])}


async def test_a_claim_whose_instance_died_is_sent_again_once_its_lease_runs_out(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver() as r:
        dest = destination(r)
        # an event claimed by an instance killed mid-attempt: attempted once,
        # leased for a moment more
        delivery_id = await db.fetchval(
            """INSERT INTO deliveries (delivery_id, destination, event_type, payload,
                                       attempts, next_attempt_at)
               VALUES (gen_random_uuid(), $1, 'contact.routed', '{"type": "contact.routed"}',
                       1, now() + interval '1 second')
               RETURNING delivery_id""",
            dest["name"],
        )
        async with app_on(database_url, destinations=[dest], delivery=FAST):
            await asyncio.sleep(0.5)
            assert r.received == []  # still leased
            await received(r, 1)
    assert r.ids == [str(delivery_id)]
    row = await db.fetchrow("SELECT * FROM deliveries WHERE delivery_id = $1", delivery_id)
    assert (row["status"], row["attempts"]) == ("delivered", 2)


async def test_two_instances_deliver_each_event_once(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver() as r:
        dest = destination(r, concurrency=4)
        async with (
            app_on(database_url, destinations=[dest], delivery=FAST) as a,
            app_on(database_url, destinations=[dest], delivery=FAST) as b,
        ):
            apis: list[Api] = [a, b]
            contacts = await asyncio.gather(*(routed(apis[i % 2], "chat") for i in range(40)))
            await received(r, 40)
            await asyncio.sleep(0.5)
    assert len(r.ids) == len(set(r.ids)) == 40
    rows = await db.fetch(
        "SELECT contact_id, attempts FROM deliveries WHERE destination = $1", dest["name"]
    )
    assert {str(x["contact_id"]) for x in rows} == {c["contact_id"] for c in contacts}
    assert {x["attempts"] for x in rows} == {1}


async def test_the_deliveries_api_lists_pages_and_guards(database_url: str) -> None:
    async with receiver() as r:
        dest = destination(r)
        async with app_on(database_url, destinations=[dest], delivery=FAST) as api:
            for _ in range(3):
                await routed(api, "chat")
            await received(r, 3)
            await asyncio.sleep(0.3)
            seen: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                params = {"destination": dest["name"], "status": "delivered", "limit": 2}
                if cursor:
                    params["cursor"] = cursor
                page = await (await api.get("/v1/deliveries", **params)).json()
                seen += page["deliveries"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert sorted(d["id"] for d in seen) == sorted(r.ids)
            first = seen[0]
            assert first["status"] == "delivered" and first["attempts"] == 1
            assert first["event"]["type"] == "contact.routed"
            bad = await api.get("/v1/deliveries", status="lost")
            assert bad.status == 400
            assert (await api.get("/v1/deliveries", token=READ_TOKEN)).status == 403
            unknown = await api.send("POST", f"/v1/deliveries/{uuid.uuid4()}/retry")
            assert unknown.status == 404
            # a delivered event can be sent again by hand, with its id
            again = await api.send("POST", f"/v1/deliveries/{first['id']}/retry")
            assert again.status == 202
            await received(r, 4)
    assert r.ids.count(first["id"]) == 2


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rand = random.Random(7)
    for attempts, full in ((1, 1.0), (2, 2.0), (5, 16.0), (20, 60.0), (500, 60.0)):
        for _ in range(50):
            delay = backoff(attempts, base=1.0, cap=60.0, rand=rand)
            assert full / 2 <= delay <= full


async def test_delivered_events_past_their_keeping_time_are_purged(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with receiver() as r:
        dest = destination(r)
        ids = await db.fetch(
            """INSERT INTO deliveries (delivery_id, destination, event_type, payload, status,
                                       created_at)
               SELECT gen_random_uuid(), $1, 'contact.routed', '{}', s,
                      now() - interval '8 days'
                 FROM unnest(ARRAY['delivered', 'failed']) AS s
               RETURNING delivery_id, status""",
            dest["name"],
        )
        async with app_on(database_url, destinations=[dest], delivery=FAST):
            await eventually(
                lambda: db.fetch(
                    "SELECT status FROM deliveries WHERE destination = $1", dest["name"]
                ),
                lambda rows: [x["status"] for x in rows] == ["failed"],
            )
    assert len(ids) == 2


def test_a_destination_needs_a_usable_whsec_secret() -> None:
    base = {"name": "d", "url": "https://example.test/hook"}

    def load(**dest: Any) -> Any:
        return load_settings(ROOT / "tests" / "empty.yaml", overrides={"destinations": [dest]})

    with pytest.raises(Exception, match="non-empty secret"):
        load(**base, secrets=["", "  "])
    with pytest.raises(Exception, match="whsec_"):
        load(**base, secrets=["plain-secret-value-long-enough"])
    with pytest.raises(Exception, match="unknown event"):
        load(**base, secrets=[whsec()], events=["contact.lost"])
    kept = load(**base, secrets=["", whsec()]).destinations[0].secrets
    assert len(kept) == 1


async def test_no_destination_means_no_outbox_rows(api: Api, db: asyncpg.Connection) -> None:
    contact = await routed(api, "email")
    assert await rows_of(db, contact["contact_id"]) == []


@pytest.mark.usefixtures("api")  # the schema is there
async def test_a_step_written_twice_is_one_event(db: asyncpg.Connection) -> None:
    """Lifecycle events have ids derived from the contact and the change: a
    retried transaction writes nothing twice."""
    dest = WebhookDestination(name="twice", url="http://127.0.0.1:9/", secrets=[whsec()])
    at = datetime.now(UTC)
    place = Placement("general", 60, ("chat",))
    step = StepApplied(uuid.uuid4(), at, "chat", "chat", 0, at, at, place, place)
    rows = Destinations([dest]).steps([step])
    assert [r.delivery_id for r in Destinations([dest]).steps([step])] == [
        r.delivery_id for r in rows
    ]
    for _ in range(2):
        async with db.transaction():
            await deliveries.enqueue(db, rows)
    assert len(await rows_of(db, str(step.contact_id))) == 1
