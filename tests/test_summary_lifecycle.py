"""``GET /v1/reports/summary`` counts the overflow steps applied and the
contacts expired, per channel and queue, from the records (the live part) and
from the rollups, and a step applied or a contact expired after its hour was
rolled up reaches the rollups (the hour is rolled up again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from router.models import Contact, CustomerContext, Decision, OverflowStep, uuid7
from router.store import NewRecord, lifecycle, records, rollups
from tests.support.api import Api
from tests.support.examples import unique
from tests.support.seed import pool


def record(
    adapter: str,
    at: datetime,
    *,
    channel: str,
    queue: str,
    steps: tuple[int, ...] = (),
    lifetime: float = 86400,
) -> NewRecord:
    """A routed contact received at ``at`` with steps due ``steps`` seconds after it."""
    return NewRecord(
        contact_id=uuid7(at),
        received_at=at,
        adapter=adapter,
        contact=Contact(channel=channel, provider="generic", external_id=unique("x")),  # type: ignore[arg-type]
        customer_id=None,
        context=CustomerContext(customer_id=uuid7(at), known=False),
        decision=Decision(
            queue=queue,
            priority=50,
            overflow=tuple(OverflowStep(after_seconds=s, priority_boost=10) for s in steps),
            rule="r",
            ruleset="test",
        ),
        trace=None,
        timings={"total_ms": 1.0},
        lifetime=lifetime,
    )


async def summary(api: Api, **params: str) -> dict[str, Any]:
    response = await api.get("/v1/reports/summary", **params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def by_queue(body: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {r["queue"]: (r["contacts"], r["steps"], r["expired"]) for r in body["rows"]}


async def settle(p: asyncpg.Pool, adapter: str, *, steps: int, expired: int) -> None:
    """Apply what is due (as the jobs of the running app do too) until the
    adapter's contacts have ``steps`` steps and ``expired`` expiries."""
    for _ in range(100):
        await lifecycle.apply_due_steps(p, limit=500)
        await lifecycle.expire_due(p, limit=500)
        row = await p.fetchrow(
            """SELECT coalesce(sum(jsonb_array_length(steps)), 0) AS steps,
                      count(*) FILTER (WHERE outcome = 'expired') AS expired
                 FROM contacts WHERE adapter = $1""",
            adapter,
        )
        if (row["steps"], row["expired"]) == (steps, expired):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {dict(row)}")


async def roll_up(p: asyncpg.Pool, written: datetime | None = None) -> None:
    """Roll up the closed hours (as the app's job does, without its grace);
    with ``written``, also the hour of records just written into the past
    (an hour rolled up before they were written is not rolled up again by
    itself: as after an import, ``rebuild``)."""
    while await rollups.refresh(p, grace=timedelta(0)) is None:  # the app's job holds it
        await asyncio.sleep(0.05)
    if written is not None:
        hour = rollups.hour_floor(written)
        await rollups.rebuild(p, hour, hour + timedelta(hours=1))


async def test_steps_and_expiries_are_counted_per_queue_live_and_rolled_up(
    api: Api, database_url: str
) -> None:
    adapter = unique("sum")
    at = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) - timedelta(hours=3)
    new = [
        # two steps due, still waiting
        record(adapter, at, channel="chat", queue="q1", steps=(60, 120)),
        # one step due (the second is not), then expired
        record(adapter, at, channel="chat", queue="q1", steps=(60, 86400), lifetime=3600),
        # no steps, expired
        record(adapter, at, channel="email", queue="q2", lifetime=3600),
        # nothing due: waiting
        record(adapter, at, channel="email", queue="q2"),
    ]
    async with pool(database_url) as p:
        await records.insert_many(p, new)
        await settle(p, adapter, steps=3, expired=2)
        # a range that no rollup covers: read from the records
        ragged = {
            "adapter": adapter,
            "group_by": "queue",
            "since": (at - timedelta(minutes=1)).isoformat(),
            "until": (at + timedelta(minutes=1)).isoformat(),
        }
        live = by_queue(await summary(api, **ragged))
        assert live == {"q1": (2, 3, 1), "q2": (2, 0, 1)}
        await roll_up(p, at)
        hour = at - timedelta(minutes=10)
        window = {
            "adapter": adapter,
            "group_by": "channel,queue",
            "since": hour.isoformat(),
            "until": (hour + timedelta(hours=1)).isoformat(),
        }
        body = await summary(api, **window)
        assert datetime.fromisoformat(body["rolled_up_until"]) >= hour + timedelta(hours=1)
        rows = {(r["channel"], r["queue"]): (r["steps"], r["expired"]) for r in body["rows"]}
        assert rows == {("chat", "q1"): (3, 1), ("email", "q2"): (0, 1)}
        assert (body["totals"]["steps"], body["totals"]["expired"]) == (3, 2)


async def test_a_step_applied_after_its_hour_was_rolled_up_reaches_the_rollups(
    api: Api, database_url: str
) -> None:
    adapter = unique("sum")
    at = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) - timedelta(hours=3)
    due_in = int((datetime.now(UTC) - at).total_seconds()) + 3  # due 2-3 s from now
    new = [record(adapter, at, channel="social", queue="q3", steps=(due_in,))]
    window = {
        "adapter": adapter,
        "group_by": "queue",
        "since": (at - timedelta(minutes=10)).isoformat(),  # the whole hour
        "until": (at + timedelta(minutes=50)).isoformat(),
    }
    async with pool(database_url) as p:
        await records.insert_many(p, new)
        await roll_up(p, at)
        body = await summary(api, **window)
        # the hour is read from the rollups
        assert datetime.fromisoformat(body["rolled_up_until"]) > at + timedelta(minutes=50)
        assert by_queue(body) == {"q3": (1, 0, 0)}
        await settle(p, adapter, steps=1, expired=0)
        assert by_queue(await summary(api, **window)) == {"q3": (1, 0, 0)}  # not yet
        await roll_up(p)
        assert by_queue(await summary(api, **window)) == {"q3": (1, 1, 0)}
