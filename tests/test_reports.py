"""``GET /v1/reports/summary`` against hand-computed figures, the rollups it
reads, and ``GET /v1/customers/{id}/timeline``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.models import now_ms
from router.store import rollups
from router.web import create_app
from tests.support.api import Api, routed_for
from tests.support.examples import unique
from tests.support.seed import Row, pool, seed
from tests.support.settings import make_settings


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Three customers whose sketch registers differ, so the estimate is exact.
C1 = uuid.UUID("0190b6f0-0000-7000-8000-000000000001")
C2 = uuid.UUID("0190b6f0-0000-7000-8000-000000000002")
C3 = uuid.UUID("0190b6f0-0000-7000-8000-000000000003")


def dataset(adapter: str) -> list[Row]:
    """Seven contacts on 1 and 2 March 2001 (see the figures in the tests)."""
    return [
        Row(t("2001-03-01T08:10"), adapter, "chat", "q-chat", "r1", "gold", C1,
            routing_ms=2.0, outcome="answered", answered_at=t("2001-03-01T08:11"), sla_met=True),
        Row(t("2001-03-01T09:20"), adapter, "email", "q-mail", "r2", "gold", C1,
            repeat_24h=True, repeat_7d=True, channel_switch=True, routing_ms=4.0,
            outcome="abandoned", abandoned_at=t("2001-03-01T09:40"), sla_met=False),
        Row(t("2001-03-01T18:45"), adapter, "chat", "q-chat", "r1", None, C2, routing_ms=3.0),
        Row(t("2001-03-01T18:15"), adapter, "social", "q-social", None, None, None,
            routing_ms=0.05),
        Row(t("2001-03-01T23:30"), adapter, "voice", "q-voice", None, None, None,
            routing_ms=8.0, outcome="answered", answered_at=t("2001-03-01T23:31"), sla_met=True),
        Row(t("2001-03-02T01:00"), adapter, "chat", "q-chat", "r1", "silver", C3,
            routing_ms=1.0, outcome="answered", answered_at=t("2001-03-02T01:05"), sla_met=False),
        Row(t("2001-03-02T02:00"), adapter, "chat", "q-chat", "r1", "gold", C1,
            repeat_24h=True, repeat_7d=True, channel_switch=True, routing_ms=2.0,
            outcome="answered", answered_at=t("2001-03-02T02:01"), sla_met=True),
    ]  # fmt: skip


@pytest.fixture(scope="module")
async def seeded(api: Api, database_url: str) -> AsyncIterator[str]:
    adapter = unique("rep")
    async with pool(database_url) as p:
        await seed(p, dataset(adapter))
        await rollups.refresh(p)  # a no-op when the service's own job runs now
        await rollups.rebuild(p, t("2001-03-01T00:00"), t("2001-03-03T00:00"))
    yield adapter


async def summary(api: Api, **params: str) -> dict[str, Any]:
    response = await api.get("/v1/reports/summary", **params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_totals_match_hand_computed_figures(api: Api, seeded: str) -> None:
    body = await summary(
        api, adapter=seeded, since="2001-03-01T00:00:00Z", until="2001-03-03T00:00:00Z"
    )
    assert body["rolled_up_until"] is not None
    [row] = body["rows"]
    assert row == body["totals"]
    totals = body["totals"]
    expected = {
        "contacts": 7,
        "identified": 5,
        "unique_customers": 3,
        "repeat_24h": 2,
        "repeat_24h_rate": 0.4,
        "repeat_7d": 2,
        "repeat_7d_rate": 0.4,
        "channel_switch": 2,
        "channel_switch_rate": 0.4,
        "with_outcome": 5,
        "answered": 4,
        "answered_within_sla": 3,
        "sla_share": 0.6,
        "abandoned": 1,
        "abandoned_share": 0.2,
    }
    assert {k: totals[k] for k in expected} == expected
    routing = totals["routing_ms"]
    assert routing["mean"] == pytest.approx(20.05 / 7, abs=0.001)
    assert 1.9 <= routing["p50"] <= 2.6  # the median is 2.0 ms; one bucket is ~26 % wide
    assert 7.9 <= routing["p99"] <= 10.0


async def test_daily_by_channel_in_utc(api: Api, seeded: str) -> None:
    body = await summary(
        api,
        adapter=seeded,
        since="2001-03-01T00:00:00Z",
        until="2001-03-03T00:00:00Z",
        interval="day",
        group_by="channel",
    )
    got = {
        (r["bucket"][:10], r["channel"]): (
            r["contacts"],
            r["unique_customers"],
            r["repeat_24h_rate"],
            r["channel_switch_rate"],
            r["with_outcome"],
            r["sla_share"],
            r["abandoned_share"],
        )
        for r in body["rows"]
    }
    assert got == {
        ("2001-03-01", "chat"): (2, 2, 0.0, 0.0, 1, 1.0, 0.0),
        ("2001-03-01", "email"): (1, 1, 1.0, 1.0, 1, 0.0, 1.0),
        ("2001-03-01", "social"): (1, 0, None, None, 0, None, None),
        ("2001-03-01", "voice"): (1, 0, None, None, 1, 1.0, 0.0),
        ("2001-03-02", "chat"): (2, 2, 0.5, 0.5, 2, 0.5, 0.0),
    }
    assert [r["bucket"] for r in body["rows"]][0] == "2001-03-01T00:00:00+00:00"


async def test_days_in_a_zone_with_a_half_hour_offset(api: Api, seeded: str) -> None:
    # Midnight in Kolkata is 18:30 UTC: the 18:00 UTC hour is split between two
    # days (read from the records), the rest comes from the rollups.
    body = await summary(
        api,
        adapter=seeded,
        since="2001-02-28T18:30:00Z",
        until="2001-03-02T18:30:00Z",
        interval="day",
        tz="Asia/Kolkata",
    )
    got = {r["bucket"]: r["contacts"] for r in body["rows"]}
    assert got == {"2001-03-01T00:00:00+05:30": 3, "2001-03-02T00:00:00+05:30": 4}


async def test_grouping_by_queue_rule_tier_and_week(api: Api, seeded: str) -> None:
    body = await summary(
        api,
        adapter=seeded,
        since="2001-02-26T00:00:00Z",
        until="2001-03-05T00:00:00Z",
        interval="week",
        group_by="queue,tier",
        channel="chat",
    )
    got = {(r["queue"], r["tier"]): r["contacts"] for r in body["rows"]}
    assert got == {("q-chat", "gold"): 2, ("q-chat", "silver"): 1, ("q-chat", None): 1}
    assert {r["bucket"] for r in body["rows"]} == {"2001-02-26T00:00:00+00:00"}  # a Monday
    by_rule = await summary(
        api, adapter=seeded, since="2001-03-01T00:00:00Z", until="2001-03-03T00:00:00Z",
        group_by="rule",
    )  # fmt: skip
    assert {r["rule"]: r["contacts"] for r in by_rule["rows"]} == {"r1": 4, "r2": 1, None: 2}


async def test_ragged_range_reads_the_records_and_agrees_with_the_rollups(
    api: Api, seeded: str
) -> None:
    aligned = await summary(
        api, adapter=seeded, since="2001-03-01T00:00:00Z", until="2001-03-03T00:00:00Z"
    )
    ragged = await summary(
        api, adapter=seeded, since="2001-02-28T23:30:00Z", until="2001-03-02T02:00:01Z"
    )
    assert ragged["totals"] == aligned["totals"]
    hourly = await summary(
        api,
        adapter=seeded,
        since="2001-03-01T08:30:00Z",
        until="2001-03-01T19:00:00Z",
        interval="hour",
    )
    assert {r["bucket"]: r["contacts"] for r in hourly["rows"]} == {
        "2001-03-01T09:00:00+00:00": 1,
        "2001-03-01T18:00:00+00:00": 2,
    }


async def test_outcomes_reported_later_reach_the_rollups(
    api: Api, seeded: str, database_url: str
) -> None:
    window = {"adapter": seeded, "since": "2001-03-01T00:00:00Z", "until": "2001-03-03T00:00:00Z"}
    before = (await summary(api, **window))["totals"]
    async with pool(database_url) as p:
        contact_id, received_at = await p.fetchrow(
            "SELECT contact_id, received_at FROM contacts WHERE adapter = $1 AND customer_id = $2",
            seeded,
            C2,
        )
        async with p.acquire() as con, con.transaction():
            await con.execute(
                """UPDATE contacts SET outcome = 'answered', answered_at = received_at,
                          sla_met = true WHERE contact_id = $1 AND received_at = $2""",
                contact_id,
                received_at,
            )
            await con.execute(
                """INSERT INTO contact_events (contact_id, received_at, event_id, type, at)
                   VALUES ($1, $2, 'e1', 'answered', $2)""",
                contact_id,
                received_at,
            )
        assert (await summary(api, **window))["totals"]["with_outcome"] == before["with_outcome"]
        while await rollups.refresh(p, grace=timedelta(0)) is None:
            await asyncio.sleep(0.05)
    after = (await summary(api, **window))["totals"]
    assert after["with_outcome"] == before["with_outcome"] + 1
    assert after["answered_within_sla"] == before["answered_within_sla"] + 1


async def test_live_contacts_are_counted_before_any_rollup(api: Api) -> None:
    since = now_ms()  # received_at is cut to the millisecond
    tier = unique("tier")  # only these contacts: others may be routed meanwhile
    customer, ids = await routed_for(api, 4, tier=tier)  # chat, email, chat, email
    body = await summary(
        api,
        since=since.isoformat(),
        group_by="channel",
        interval="hour",
        tz="Europe/Berlin",
        tier=tier,
    )
    counts: dict[str, int] = {}
    for row in body["rows"]:
        counts[row["channel"]] = counts.get(row["channel"], 0) + row["contacts"]
        assert row["bucket"].endswith(("+01:00", "+02:00"))
    assert counts == {"chat": 2, "email": 2}
    assert body["totals"]["unique_customers"] == 1
    assert body["totals"]["repeat_24h"] == 3
    assert body["totals"]["channel_switch"] == 3


async def test_bad_summary_queries_are_400_naming_the_parameter(api: Api) -> None:
    cases = {
        "interval": {"interval": "fortnight"},
        "group_by": {"group_by": "channel,colour"},
        "tz": {"tz": "Mars/Olympus"},
        "since": {"since": "yesterday"},
        "channel": {"channel": "fax"},
        "queue": {"queue": ""},
        "limit": {"limit": "5"},
    }
    for field, params in cases.items():
        response = await api.get("/v1/reports/summary", **params)
        assert response.status == 400, (field, await response.text())
        assert (await response.json())["fields"][0]["field"] == field
    response = await api.get(
        "/v1/reports/summary", since="2001-01-01T00:00:00Z", until="2026-01-01T00:00:00Z",
        interval="hour",
    )  # fmt: skip
    assert response.status == 400


async def test_timeline_across_channels_with_outcomes(api: Api, database_url: str) -> None:
    customer, ids = await routed_for(api, 3)  # chat, email, chat
    async with pool(database_url) as p:
        await p.execute(
            """UPDATE contacts SET outcome = 'resolved', agent = 'ann', resolved_at = now()
                WHERE customer_id = $1 AND channel = 'email'""",
            uuid.UUID(customer),
        )
    body = await (await api.get(f"/v1/customers/{customer}/timeline")).json()
    assert body["customer_id"] == customer
    assert [c["contact_id"] for c in body["contacts"]] == list(reversed(ids))
    assert [c["channel"] for c in body["contacts"]] == ["chat", "email", "chat"]
    email = body["contacts"][1]
    assert (email["outcome"], email["agent"]) == ("resolved", "ann")
    assert email["resolved_at"] is not None
    assert email["decision"]["queue"]
    assert email["previous_channel"] == "chat" and email["channel_switch"] is True
    page = await (await api.get(f"/v1/customers/{customer}/timeline", limit="2")).json()
    assert len(page["contacts"]) == 2 and page["next_cursor"]
    rest = await (
        await api.get(f"/v1/customers/{customer}/timeline", cursor=page["next_cursor"])
    ).json()
    assert [c["contact_id"] for c in page["contacts"] + rest["contacts"]] == list(reversed(ids))


async def test_timeline_of_an_unknown_customer_is_404(api: Api) -> None:
    assert (await api.get(f"/v1/customers/{uuid.uuid4()}/timeline")).status == 404
    assert (await api.get("/v1/customers/nope/timeline")).status == 400


@pytest.fixture(scope="module")
async def rules_only(database_url: str) -> AsyncIterator[Api]:
    settings = make_settings(
        database_url,
        api={"tokens": [{"name": "rules", "token": "rules-only", "scopes": ["rules:read"]}]},
        reporting={"rollup_interval": 3600},
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield Api(client)


async def test_reporting_endpoints_need_a_token_with_reports_read(
    api: Api, rules_only: Api
) -> None:
    paths = (
        "/v1/reports/summary",
        f"/v1/customers/{uuid.uuid4()}/timeline",
        "/v1/contacts",
        "/v1/contacts?format=csv",
    )
    for path in paths:
        response = await api.get(path, token=None)
        assert response.status == 401, path
        assert (await response.json())["error"] == "unauthorized"
        response = await rules_only.get(path, token="rules-only")
        assert response.status == 403, path
        assert "reports:read" in (await response.json())["message"]
