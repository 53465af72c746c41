"""``kill -9`` between acknowledging contacts and delivering their events: an
``omniroute serve`` process acknowledges contacts while its destination
takes requests and never answers (attempts in flight, rows leased), is
killed with SIGKILL, and started again; then every acknowledged contact's
event arrives at the receiver, under the id of its outbox row, and a
contact's event that arrives more than once always carries that same id."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import orjson

from adapters.generic import sign
from bench.faults import Omniroute
from tests.support.apps import eventually
from tests.support.examples import example, unique
from tests.support.receivers import destination, receiver
from tests.support.settings import SECRETS

N = 20


async def acknowledge(url: str, n: int) -> list[str]:
    """Deliver ``n`` chat contacts; the contact ids of the 200 answers."""
    ids = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            body = orjson.dumps(example("chat", id=unique("kill")))
            headers = {
                "Content-Type": "application/json",
                "X-Omniroute-Signature": sign(body, SECRETS["chat"], int(time.time())),
            }
            async with session.post(f"{url}/v1/webhooks/chat", data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                ids.append((await r.json())["contacts"][0]["contact_id"])
    return ids


async def test_events_of_acknowledged_contacts_arrive_after_a_kill_9(
    processes: Callable[..., Omniroute], database_url: str
) -> None:
    async with receiver() as r:
        r.hold = True  # attempts are taken and never answered
        dest = destination(r, concurrency=4, timeout=0.5)
        extra: dict[str, Any] = {
            "destinations": [dest],
            "delivery": {"retry_base": 0.1, "retry_max_delay": 0.2, "poll_interval": 0.2},
        }
        server = processes(**extra)
        await server.ready()
        acknowledged = await acknowledge(server.url, N)
        await eventually(lambda: _async(len(r.held)), lambda n: n >= 4, timeout=30)  # in flight
        server.kill9()  # acknowledged, claimed, attempts in flight, nothing delivered
        assert r.received == []
        r.hold = False
        server.start()
        await server.ready()
        con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
        try:
            rows = await eventually(
                lambda: con.fetch(
                    """SELECT delivery_id::text AS id, contact_id::text AS contact, status,
                              attempts FROM deliveries WHERE destination = $1""",
                    dest["name"],
                ),
                lambda rows: len(rows) == N and all(x["status"] == "delivered" for x in rows),
                timeout=40,
            )
        finally:
            await con.close()
    by_contact = {x["contact"]: x["id"] for x in rows}
    assert set(by_contact) == set(acknowledged)  # one event per acknowledged contact
    arrived: dict[str, set[str]] = {}
    for got in r.received:
        arrived.setdefault(got.json()["data"]["contact_id"], set()).add(got.id)
    # every acknowledged contact's event arrived, always under its outbox id
    assert arrived == {c: {by_contact[c]} for c in acknowledged}
    # the attempts cut by the kill were sent again under the same id
    cut = set(r.held)
    assert cut and cut <= set(by_contact.values())
    assert all(x["attempts"] >= 2 for x in rows if x["id"] in cut)


async def _async(value: int) -> int:
    return value
