"""The rollout side of every record: stored at routing time, shown by the
history API, exposed by the BI view, and a summary dimension
(``group_by=rollout``) read from the records and from the hourly rollups
alike. The shipped rules pilot the returns team on 20 % of customers
(``email-refund-pilot``).

On a database of its own: the summary's counts are this module's contacts."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from router.store import rollups
from router.store.rollups import hour_floor
from tests.support.api import Api
from tests.support.apps import app_on
from tests.support.examples import example, unique
from tests.support.seed import pool as store_pool

PILOT = "email-refund-pilot"
#: refund emails of this many new customers: all on one side has odds 0.8^n
REFUNDS = 60


def side(contact: dict[str, Any]) -> str:
    """The side a routed contact's queue shows: the pilot's queue is "in"."""
    return f"{PILOT}:{'in' if contact['decision']['queue'] == 'returns-pilot' else 'out'}"


@pytest.fixture(scope="module")
async def app(own_database: str) -> AsyncIterator[Api]:
    async with app_on(own_database) as api:
        yield api


@pytest.fixture(scope="module")
async def routed(app: Api) -> dict[str, dict[str, Any]]:
    """REFUNDS refund emails of as many new customers, by contact id (the answer's contact)."""
    out = {}
    for _ in range(REFUNDS):
        who = unique("refund")
        payload = example(
            "email",
            id=f"<{who}@mail.example.com>",
            subject="Refund for my order",
            attachments=0,
            **{"from": {"address": f"{who}@example.com"}},
        )
        response = await app.deliver("email", payload)
        assert response.status == 200, await response.text()
        contact = (await response.json())["contacts"][0]
        out[contact["contact_id"]] = contact
    return out


async def test_each_record_stores_its_side(app: Api, routed: dict[str, dict[str, Any]]) -> None:
    sides: Counter[str] = Counter()
    for contact_id, contact in routed.items():
        body = await (await app.get(f"/v1/contacts/{contact_id}")).json()
        # the side stored is the one that decided: in -> the pilot's queue
        assert body["rollout"] == side(contact), body
        sides[body["rollout"]] += 1
    assert sides[f"{PILOT}:in"] and sides[f"{PILOT}:out"], sides
    page = await (await app.get("/v1/contacts", adapter="email", limit="100")).json()
    listed = {c["contact_id"]: c["rollout"] for c in page["contacts"]}
    assert {k: listed[k] for k in routed} == {k: side(c) for k, c in routed.items()}
    chat = await app.deliver("chat", example("chat", id=unique("chat")))
    chat_id = (await chat.json())["contacts"][0]["contact_id"]
    assert (await (await app.get(f"/v1/contacts/{chat_id}")).json())["rollout"] is None


async def test_the_view_exposes_the_side(
    own_database: str, routed: dict[str, dict[str, Any]]
) -> None:
    con = await asyncpg.connect(own_database)
    try:
        rows = await con.fetch(
            """SELECT contact_id::text AS id, queue, rollout
                 FROM reporting.routed_contacts_v1 WHERE contact_id::text = ANY($1)""",
            list(routed),
        )
        columns = await con.fetch(
            """SELECT column_name FROM information_schema.columns
                WHERE table_schema = 'reporting' AND table_name = 'routed_contacts_v1'
                ORDER BY ordinal_position"""
        )
    finally:
        await con.close()
    names = [c["column_name"] for c in columns]
    # appended after the columns of earlier releases: the contract only grows
    assert names[names.index("sla_met") + 1] == "rollout"
    assert len(rows) == REFUNDS
    for r in rows:
        assert r["rollout"] == f"{PILOT}:{'in' if r['queue'] == 'returns-pilot' else 'out'}"


async def summary(app: Api, since: datetime, until: datetime) -> dict[str | None, int]:
    response = await app.get(
        "/v1/reports/summary",
        since=since.isoformat(),
        until=until.isoformat(),
        group_by="rollout",
        adapter="email",
    )
    body = await response.json()
    assert response.status == 200, body
    return {r["rollout"]: r["contacts"] for r in body["rows"]}


async def test_the_summary_groups_by_rollout_from_records_and_rollups(
    app: Api, own_database: str, routed: dict[str, dict[str, Any]]
) -> None:
    sides = Counter(side(c) for c in routed.values())
    now = datetime.now(UTC)
    since, until = hour_floor(now) - timedelta(hours=1), hour_floor(now) + timedelta(hours=2)
    assert await summary(app, since, until) == dict(sides)  # the live part: the records
    only_in = await app.get(
        "/v1/reports/summary",
        since=since.isoformat(),
        until=until.isoformat(),
        rollout=f"{PILOT}:in",
        adapter="email",
    )
    assert (await only_in.json())["totals"]["contacts"] == sides[f"{PILOT}:in"]

    # roll the current hour up (as if it were closed): the same figures from the rollups
    async with store_pool(own_database) as pool:
        done = await rollups.refresh(pool, grace=-timedelta(hours=2))
        assert done is not None and done.rolled_until is not None
        assert done.rolled_until > now
        stored = await pool.fetch(
            "SELECT rollout, sum(contacts)::int AS n FROM contact_rollup "
            "WHERE adapter = 'email' GROUP BY rollout"
        )
    assert {r["rollout"]: r["n"] for r in stored} == dict(sides)
    assert await summary(app, since, until) == dict(sides)
