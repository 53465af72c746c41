"""The offer and assignment facts in reporting (docs/reporting.md): the BI
view's new columns, the history records and exports that show them, and
the summary grouped and filtered by agent, from the rollups and from the
records alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from router.store import migrations, rollups
from router.store.db import SCHEMA
from tests.support.api import Api
from tests.support.databases import new_database
from tests.support.examples import unique
from tests.support.seed import Row, pool, seed


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (received, agent, offers made, first offer after, assigned after)
FACTS = [
    (t("2002-05-01T08:10"), "ann", 1, timedelta(seconds=2), timedelta(seconds=5)),
    (t("2002-05-01T09:20"), "ann", 2, timedelta(seconds=1), timedelta(seconds=61.5)),
    (t("2002-05-01T09:40"), "bob", 1, timedelta(seconds=3), timedelta(seconds=4)),
    # a platform's clock behind ours: assigned "before" it was received
    (t("2002-05-01T10:05"), "bob", 0, None, timedelta(seconds=-2)),
    (t("2002-05-01T11:15"), None, 0, None, None),
]


@pytest.fixture(scope="module")
async def seeded(api: Api, database_url: str) -> AsyncIterator[str]:
    adapter = unique("agr")
    rows = [Row(at, adapter, agent=agent) for at, agent, *_ in FACTS]
    async with pool(database_url) as p:
        await seed(p, rows)
        for row, (at, _, offers, offered, assigned) in zip(rows, FACTS, strict=True):
            await p.execute(
                """UPDATE contacts SET offers_made = $3, offered_at = $4, assigned_at = $5
                    WHERE contact_id = $1 AND received_at = $2""",
                row.contact_id,
                at,
                offers,
                at + offered if offered is not None else None,
                at + assigned if assigned is not None else None,
            )
        await rollups.refresh(p)
        await rollups.rebuild(p, t("2002-05-01T00:00"), t("2002-05-02T00:00"))
    yield adapter


async def test_the_view_and_the_records_show_the_offer_facts(
    api: Api, seeded: str, database_url: str
) -> None:
    async with pool(database_url) as p:
        rows = await p.fetch(
            """SELECT * FROM reporting.routed_contacts_v1 WHERE adapter = $1
                ORDER BY received_at""",
            seeded,
        )
    assert list(rows[0].keys())[-3:] == ["offers_made", "offered_at", "wait_to_assign_ms"]
    got = [(r["agent"], r["offers_made"], r["offered_at"], r["wait_to_assign_ms"]) for r in rows]
    assert got == [
        (agent, offers, at + offered if offered else None,
         None if assigned is None else max(assigned.total_seconds() * 1000, 0.0))
        for at, agent, offers, offered, assigned in FACTS
    ]  # fmt: skip
    page = await api.json("GET", f"/v1/contacts?adapter={seeded}&order=asc")
    records = page["contacts"]
    assert [(c["agent"], c["offers_made"], c["wait_to_assign_ms"]) for c in records] == [
        ("ann", 1, 5000.0), ("ann", 2, 61500.0), ("bob", 1, 4000.0), ("bob", 0, 0.0),
        (None, 0, None),
    ]  # fmt: skip
    assert records[0]["offered_at"] == "2002-05-01T08:10:02+00:00"
    assert records[0]["assigned_at"] == "2002-05-01T08:10:05+00:00"
    bobs = await api.json("GET", f"/v1/contacts?adapter={seeded}&agent=bob&order=asc")
    assert [c["received_at"] for c in bobs["contacts"]] == [
        "2002-05-01T09:40:00+00:00",
        "2002-05-01T10:05:00+00:00",
    ]


async def test_exports_carry_the_offer_facts(api: Api, seeded: str) -> None:
    response = await api.get(
        "/v1/contacts", adapter=seeded, format="ndjson", since="2002-05-01T00:00:00Z"
    )
    assert response.status == 200, await response.text()
    lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    first = lines[0]
    assert (first["offers_made"], first["offered_at"], first["wait_to_assign_ms"]) == (
        1, "2002-05-01T08:10:02+00:00", 5000,
    )  # fmt: skip
    assert lines[-1]["offers_made"] == 0 and lines[-1]["wait_to_assign_ms"] is None
    csv = await api.get("/v1/contacts", adapter=seeded, format="csv", since="2002-05-01T00:00:00Z")
    header, row, *_ = (await csv.text()).splitlines()
    assert header.endswith(",offers_made,offered_at,wait_to_assign_ms")
    assert row.endswith(",1,2002-05-01 08:10:02+00,5000")


async def summary(api: Api, **params: str) -> dict[str, Any]:
    response = await api.get("/v1/reports/summary", **params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_the_summary_groups_and_filters_by_agent(api: Api, seeded: str) -> None:
    day = {"adapter": seeded, "since": "2002-05-01T00:00:00Z", "until": "2002-05-02T00:00:00Z"}
    rolled = await summary(api, group_by="agent", **day)
    assert {r["agent"]: r["contacts"] for r in rolled["rows"]} == {"ann": 2, "bob": 2, None: 1}
    # a ragged range reads the records for its ends: the same figures
    ragged = await summary(
        api, group_by="agent", adapter=seeded, since="2002-05-01T08:05:00Z",
        until="2002-05-01T11:20:00Z",
    )  # fmt: skip
    assert ragged["rows"] == rolled["rows"]
    by_hour = await summary(api, group_by="agent", interval="hour", agent="ann", **day)
    assert [(r["bucket"], r["agent"], r["contacts"]) for r in by_hour["rows"]] == [
        ("2002-05-01T08:00:00+00:00", "ann", 1),
        ("2002-05-01T09:00:00+00:00", "ann", 1),
    ]
    response = await api.get("/v1/reports/summary", group_by="agents", **day)
    assert response.status == 400
    assert (await response.json())["fields"][0]["field"] == "group_by"


async def test_the_migration_rebuilds_the_rollups_of_stored_records_only(
    server_url: str,
) -> None:
    """Upgrading: rollups of hours whose records are stored are dropped and
    rebuilt with the agent; older ones (records gone by retention) stay."""
    async with new_database(server_url, "omniroute_agents_upgrade") as url:
        con = await asyncpg.connect(url)
        try:
            await con.execute(f"""CREATE SCHEMA {SCHEMA};
                CREATE TABLE {SCHEMA}.schema_migrations (version int PRIMARY KEY,
                    name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
                INSERT INTO {SCHEMA}.schema_migrations VALUES (24, 'not yet')""")
            await migrations.migrate(con)  # everything before 0024
            await con.execute(f"SET search_path = {SCHEMA}, public")
            await con.set_type_codec(
                "jsonb", schema="pg_catalog", format="text",
                encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
            )  # fmt: skip
            await seed(con, [Row(t("2003-02-01T10:30"), "up", agent="ann")])
            metrics = [*rollups.COUNTERS, *rollups.LATENCY, "routing_ms_sum"]
            for hour in (t("2003-01-01T00:00"), t("2003-02-01T10:00")):
                await con.execute(
                    f"""INSERT INTO contact_rollup (hour, channel, adapter, queue,
                               {", ".join(metrics)})
                        VALUES ($1, 'chat', 'up', 'q', {", ".join("0" for _ in metrics)})""",
                    hour,
                )
            await con.execute("UPDATE rollup_state SET rolled_until = '2003-02-01T11:00Z'")
            await con.execute(f"DELETE FROM {SCHEMA}.schema_migrations WHERE version = 24")
            assert (await migrations.migrate(con))[0] == "0024_agents_surface.sql"
            assert [r["hour"] for r in await con.fetch("SELECT hour FROM contact_rollup")] == [
                t("2003-01-01T00:00")
            ]
            assert await con.fetchval("SELECT rolled_until FROM rollup_state") == t(
                "2003-02-01T10:00"
            )
        finally:
            await con.close()
        async with pool(url) as p:
            await rollups.refresh(p)
            rows = await p.fetch("SELECT hour, agent, contacts FROM contact_rollup ORDER BY hour")
        assert [tuple(r) for r in rows] == [
            (t("2003-01-01T00:00"), None, 0),
            (t("2003-02-01T10:00"), "ann", 1),
        ]
