"""A destination that keeps failing is paused (its circuit opens) instead of
being hammered, says so in ``GET /v1/deliveries`` and ``/metrics``, and
resumes on the first success after the pause; and the dispatcher's batched
claims and marks (leases that cover a batch, outcomes written together)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from router.outbound.circuit import Circuit
from router.outbound.dispatcher import LEASE_MARGIN, lease
from router.settings import WebhookDestination
from router.store import deliveries
from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.receivers import destination, receiver, whsec


def test_a_circuit_opens_after_failures_in_a_row_and_a_probe_decides() -> None:
    c = Circuit(after=3, base=10.0, cap=25.0)
    assert c.failed(0.0) is None and c.failed(1.0) is None
    c.succeeded()  # a success in between: the count starts again
    assert c.failed(2.0) is None and c.failed(3.0) is None
    assert c.state(3.0) == "closed" and c.slots(3.0, 8) == 8
    assert c.failed(4.0) == 10.0  # the third in a row: paused 10 s
    assert c.state(5.0) == "open" and c.slots(5.0, 8) == 0
    assert c.failed(6.0) is None  # an attempt started before the pause: no longer pause
    assert c.paused_until == 14.0
    assert c.state(14.0) == "half-open" and c.slots(14.0, 8) == 1  # one probe
    assert c.failed(14.5) == 20.0  # the probe failed: twice as long
    assert c.state(30.0) == "open"
    assert c.failed(35.0) == 25.0  # up to the cap
    c.succeeded()
    assert c.state(61.0) == "closed" and c.slots(61.0, 8) == 8
    assert c.failed(62.0) is None  # the count starts from nothing again


def test_a_circuit_that_never_opens() -> None:
    c = Circuit(after=None, base=1.0, cap=1.0)
    for t in range(100):
        assert c.failed(float(t)) is None
    assert c.state(100.0) == "closed"


def test_a_lease_covers_every_wave_of_its_batch() -> None:
    dest = WebhookDestination(
        name="x", url="http://127.0.0.1:9/", secrets=[whsec()], concurrency=8, timeout=10
    )
    # 32 rows, none queued: 4 waves of 8 after the attempts in flight now
    assert lease(dest, queued=0, claiming=32) == 50 + LEASE_MARGIN
    assert lease(dest, queued=7, claiming=1) == 20 + LEASE_MARGIN
    assert lease(dest, queued=7, claiming=25) == 50 + LEASE_MARGIN


async def metric(api: Api, name: str, dest: str) -> str:
    text = await (await api.get("/metrics")).text()
    lines = [x for x in text.splitlines() if x.startswith(f'{name}{{destination="{dest}"}}')]
    return lines[0].split()[-1] if lines else ""


async def circuit(api: Api, dest: str) -> dict[str, Any]:
    answer = await api.get("/v1/deliveries", destination=dest)
    assert answer.status == 200, await answer.text()
    [shown] = [d for d in (await answer.json())["destinations"] if d["name"] == dest]
    return dict(shown)


async def test_a_failing_destination_is_paused_then_resumes_on_success(
    database_url: str, db: asyncpg.Connection
) -> None:
    delivery = {
        "retry_base": 0.05,
        "retry_max_delay": 0.1,
        "poll_interval": 0.2,
        "pause_after": 3,
        "pause_base": 5.0,
    }
    async with receiver(status=503) as r:
        dest = destination(r, concurrency=2)
        name = dest["name"]
        async with app_on(database_url, destinations=[dest], delivery=delivery) as api:
            assert (await circuit(api, name))["state"] == "closed"
            contacts = [await routed(api, "chat") for _ in range(5)]
            shown = await eventually(
                lambda: circuit(api, name), lambda c: c["state"] == "open", timeout=30
            )
            assert shown["consecutive_failures"] >= 3 and shown["paused_until"] is not None
            assert await metric(api, "omniroute_destination_paused", name) == "1.0"
            n = len(r.received)
            assert 3 <= n <= 4  # 3 failures in a row, and at most one more in flight
            await asyncio.sleep(1.0)
            assert len(r.received) == n  # paused: nothing sent meanwhile
            pending = await db.fetchval(
                "SELECT count(*) FROM deliveries WHERE destination = $1 AND status = 'pending'",
                name,
            )
            assert pending == 5  # waiting, none lost, none dead
            r.status = 204
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE destination = $1 "
                    "AND status = 'delivered'",
                    name,
                ),
                lambda delivered: delivered == 5,
                timeout=30,
            )
            shown = await circuit(api, name)
            assert shown == {
                "name": name,
                "state": "closed",
                "consecutive_failures": 0,
                "paused_until": None,
            }
            assert await metric(api, "omniroute_destination_paused", name) == "0.0"
    rows = await db.fetch(
        "SELECT delivery_id, contact_id FROM deliveries WHERE destination = $1", name
    )
    assert {str(x["contact_id"]) for x in rows} == {c["contact_id"] for c in contacts}
    delivered_ids = {x.id for x in r.received[n:] if x.id}
    assert delivered_ids == {str(x["delivery_id"]) for x in rows}


@pytest.mark.usefixtures("api")  # the schema is there
async def test_marks_in_one_statement_are_fenced_by_the_attempt(
    database_url: str, db: asyncpg.Connection
) -> None:
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": "omniroute"}
    )
    try:
        ids = [
            await db.fetchval(
                """INSERT INTO deliveries (delivery_id, destination, event_type, payload)
                   VALUES (gen_random_uuid(), 'marks', 'contact.routed', '{"n": 1}')
                   RETURNING delivery_id"""
            )
            for _ in range(4)
        ]
        claimed = await deliveries.claim(pool, "marks", limit=10, lease=30)
        assert sorted(c.delivery_id for c in claimed) == sorted(ids)
        assert {c.body for c in claimed} == {'{"n": 1}'} and claimed[0].payload == {"n": 1}
        a, b, c, d = sorted(claimed, key=lambda x: x.delivery_id)
        took = await deliveries.mark(
            pool,
            [
                deliveries.Mark(a.delivery_id, a.attempts),  # delivered
                deliveries.Mark(b.delivery_id, b.attempts, "HTTP 503", 60.0),  # again in 60 s
                deliveries.Mark(c.delivery_id, c.attempts, "HTTP 404", None),  # dead
                deliveries.Mark(d.delivery_id, d.attempts + 1),  # not this attempt's row
            ],
        )
        assert took == [True, True, True, False]
        rows = {
            x["delivery_id"]: x
            for x in await db.fetch(
                "SELECT delivery_id, status, last_error, next_attempt_at > now() + "
                "interval '50 seconds' AS later FROM deliveries WHERE destination = 'marks'"
            )
        }
        assert (rows[a.delivery_id]["status"], rows[a.delivery_id]["last_error"]) == (
            "delivered",
            None,
        )
        assert (rows[b.delivery_id]["status"], rows[b.delivery_id]["later"]) == ("pending", True)
        assert (rows[c.delivery_id]["status"], rows[c.delivery_id]["last_error"]) == (
            "failed",
            "HTTP 404",
        )
        assert rows[d.delivery_id]["status"] == "pending"
        # a claimed row given back unattempted: its attempt uncounted, due when told
        await deliveries.release(pool, [(d.delivery_id, d.attempts)], due=claimed[0].created_at)
        again = await deliveries.claim(pool, "marks", limit=10, lease=30)
        assert [(x.delivery_id, x.attempts) for x in again] == [(d.delivery_id, d.attempts)]
    finally:
        await pool.close()
        await db.execute("DELETE FROM deliveries WHERE destination = 'marks'")
