"""Reporting off the primary, against a real streaming standby started by the
tests (``standby_pair``): history pages, exports and the summary read the
replica; routing never needs it; its lag is measured and shown; a replica too
far behind or away sends the reads to the primary (or refuses them, 503) and
they come back when it does; a page cursor works on either.

On a loaded machine a measurement may time out (1.5 s) and the replica then
counts as away until the next one: what depends on the replica being read is
waited for (``eventually``: the primary's answer differs, so a read that never
reached the replica never passes), not read once."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import pytest
from structlog.testing import capture_logs

from router.store import open_store
from router.store.config import DatabaseSettings
from router.store.records import Selection
from tests.support.api import Api, routed
from tests.support.apps import app_on, eventually
from tests.support.examples import person
from tests.support.proxy import CuttableProxy
from tests.support.standby import StandbyPair


@asynccontextmanager
async def app(pair: StandbyPair, **database: Any) -> AsyncIterator[Api]:
    """An app on the pair's primary reading reports from its standby."""
    settings = {
        "url": pair.primary.url,
        "replica_url": pair.standby.url,
        "pool_min": 1,
        "pool_max": 4,
        **database,
    }
    async with app_on(pair.primary.url, database=settings) as api:
        yield api


async def replay(pair: StandbyPair, action: str) -> None:
    """Pause or resume WAL replay on the standby."""
    con = await asyncpg.connect(pair.standby.url)
    try:
        await con.execute(f"SELECT pg_wal_replay_{action}()")
    finally:
        await con.close()


async def count(url: str, contact_id: str | None = None) -> int:
    """Records on the server at ``url`` (with ``contact_id``: that one's)."""
    con = await asyncpg.connect(url)
    try:
        where = "" if contact_id is None else " WHERE contact_id = $1"
        args = [] if contact_id is None else [uuid.UUID(contact_id)]
        found: int = await con.fetchval(f"SELECT count(*) FROM omniroute.contacts{where}", *args)
        return found
    finally:
        await con.close()


def of_customer(customer_id: str) -> Selection:
    """The history selection of one customer's records, newest first."""
    return Selection(
        filters={"customer_id": uuid.UUID(customer_id)},
        since=None,
        until=None,
        tag=None,
        after=None,
        ascending=False,
        state=None,
    )


async def history(api: Api, customer_id: str, **params: Any) -> tuple[int, Any]:
    response = await api.get("/v1/contacts", customer_id=customer_id, **params)
    return response.status, await response.json()


async def listed(api: Api, customer_id: str) -> list[str]:
    status, body = await history(api, customer_id)
    assert status == 200, body
    return [c["contact_id"] for c in body["contacts"]]


async def replica(api: Api) -> dict[str, Any]:
    """``/readyz``'s replica field (the instance stays ready whatever it says)."""
    response = await api.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready"
    status: dict[str, Any] = body["replica"]
    return status


async def gauge(api: Api, name: str) -> float:
    text = await (await api.get("/metrics")).text()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def caught_up(api: Api) -> None:
    """The app measures its replica 0 bytes behind: it has replayed everything
    the primary had committed (the schema too), not only within max_lag_seconds."""
    await eventually(
        lambda: replica(api),
        lambda r: r["state"] == "ok" and r["reads"] == "replica" and r["lag_bytes"] == 0,
        timeout=30,
    )


@pytest.fixture(autouse=True)
async def replaying(standby_pair: StandbyPair) -> AsyncIterator[None]:
    """Every test starts and ends with the standby up and replaying."""
    yield
    if not standby_pair.standby.running():
        standby_pair.standby.start()
    await replay(standby_pair, "resume")


async def exported(api: Api, customer_id: str) -> list[str]:
    export = await api.get("/v1/contacts", customer_id=customer_id, format="ndjson")
    assert export.status == 200
    return [orjson.loads(line)["contact_id"] for line in (await export.read()).splitlines()]


async def summarized(api: Api) -> int:
    summary = await api.get("/v1/reports/summary")
    assert summary.status == 200, await summary.text()
    counted: int = (await summary.json())["totals"]["contacts"]
    return counted


async def test_history_export_and_summary_read_the_replica(standby_pair: StandbyPair) -> None:
    async with app(standby_pair, max_lag_seconds=600) as api:
        customer = person()
        first = await routed(api, "chat", customer=customer)
        who = first["customer_id"]
        await eventually(lambda: listed(api, who), lambda ids: ids == [first["contact_id"]])
        await caught_up(api)
        # 0 bytes behind means what it says: the standby has the contact
        # (and the schema, committed before it)
        assert await count(standby_pair.standby.url, first["contact_id"]) == 1
        await eventually(lambda: gauge(api, "omniroute_replica_serving"), lambda v: v == 1)

        # Replay paused: what is routed now is on the primary only, and the
        # reads (the replica, lagging less than max_lag_seconds) do not see it.
        # (eventually: on a loaded machine a measurement may time out, and
        # reads then go to the primary, which has it, until the next one
        # finds the replica; a read that never reached the replica would
        # never pass)
        await replay(standby_pair, "pause")
        second = await routed(api, "chat", customer=customer)
        assert await count(standby_pair.primary.url, second["contact_id"]) == 1
        assert await count(standby_pair.standby.url, second["contact_id"]) == 0
        await eventually(lambda: listed(api, who), lambda ids: ids == [first["contact_id"]])
        await eventually(lambda: exported(api, who), lambda ids: ids == [first["contact_id"]])
        on_standby = await count(standby_pair.standby.url)
        assert on_standby < await count(standby_pair.primary.url)
        await eventually(lambda: summarized(api), lambda counted: counted == on_standby)

        # The lag grows while replay is paused, in /readyz and in /metrics.
        lagging = await eventually(
            lambda: replica(api), lambda r: (r["lag_seconds"] or 0) > 1, timeout=20
        )
        assert lagging["lag_bytes"] > 0
        assert lagging["reads"] == "replica" and lagging["standby"] is True
        await eventually(lambda: gauge(api, "omniroute_replica_lag_seconds"), lambda v: v > 1)

        await replay(standby_pair, "resume")
        await eventually(
            lambda: listed(api, who), lambda ids: ids == [second["contact_id"], first["contact_id"]]
        )
        settled = await eventually(
            lambda: replica(api), lambda r: r["lag_seconds"] is not None and r["lag_seconds"] < 1
        )
        assert settled["lag_bytes"] is not None


async def test_a_replica_too_far_behind_sends_reads_to_the_primary(
    standby_pair: StandbyPair,
) -> None:
    async with app(standby_pair, max_lag_seconds=1) as api:
        await caught_up(api)
        await replay(standby_pair, "pause")
        contact = await routed(api, "chat", customer=person())
        who = contact["customer_id"]
        status = await eventually(
            lambda: replica(api), lambda r: r["state"] == "lagging", timeout=20
        )
        assert status["reads"] == "primary"
        assert "max_lag_seconds" in status["reason"]
        # the primary answers: the new contact is there at once
        assert await listed(api, contact["customer_id"]) == [contact["contact_id"]]
        assert await gauge(api, "omniroute_replica_serving") == 0
        await eventually(lambda: gauge(api, "omniroute_replica_lag_seconds"), lambda v: v > 1)

        await replay(standby_pair, "resume")
        await caught_up(api)
        await eventually(lambda: listed(api, who), lambda ids: ids == [contact["contact_id"]])


async def test_a_lagging_replica_can_refuse_reads_instead(standby_pair: StandbyPair) -> None:
    async with app(standby_pair, max_lag_seconds=1, replica_fallback="refuse") as api:
        await caught_up(api)
        await replay(standby_pair, "pause")
        contact = await routed(api, "chat", customer=person())
        who = contact["customer_id"]
        await eventually(lambda: replica(api), lambda r: r["reads"] == "refused", timeout=20)
        status, body = await history(api, contact["customer_id"])
        assert status == 503
        assert body["error"] == "replica_unavailable"
        assert "behind" in body["message"] and "max_lag_seconds" in body["message"]
        summary = await api.get("/v1/reports/summary")
        assert summary.status == 503 and summary.headers["Retry-After"]
        # routing does not depend on the replica
        await routed(api, "email")

        await replay(standby_pair, "resume")
        await caught_up(api)
        await eventually(lambda: listed(api, who), lambda ids: ids == [contact["contact_id"]])


async def test_routing_and_reads_go_on_with_the_replica_stopped(
    standby_pair: StandbyPair,
) -> None:
    async with app(standby_pair, max_lag_seconds=600) as api:
        before = await routed(api, "chat", customer=person())
        await caught_up(api)
        await eventually(lambda: listed(api, before["customer_id"]), lambda ids: len(ids) == 1)

        standby_pair.standby.stop()
        # at once: the pool's replica connections are gone mid-use
        started = time.monotonic()
        assert await listed(api, before["customer_id"]) == [before["contact_id"]]
        after = await routed(api, "chat", customer=person())
        assert await listed(api, after["customer_id"]) == [after["contact_id"]]
        assert time.monotonic() - started < 10
        status = await replica(api)
        assert status["state"] == "away" and status["reads"] == "primary", status
        assert await gauge(api, "omniroute_replica_up") == 0
        export = await api.get("/v1/contacts", customer_id=after["customer_id"], format="csv")
        assert export.status == 200 and after["contact_id"] in await export.text()

        standby_pair.standby.start()
        await caught_up(api)
        who = after["customer_id"]
        await eventually(lambda: listed(api, who), lambda ids: ids == [after["contact_id"]])
        await eventually(lambda: gauge(api, "omniroute_replica_up"), lambda v: v == 1)


async def test_a_stopped_replica_can_refuse_reads_and_never_hangs(
    standby_pair: StandbyPair,
) -> None:
    async with app(standby_pair, replica_fallback="refuse") as api:
        contact = await routed(api, "chat", customer=person())
        who = contact["customer_id"]
        await caught_up(api)
        standby_pair.standby.stop()
        started = time.monotonic()
        status, body = await history(api, contact["customer_id"])
        assert time.monotonic() - started < 10
        assert status == 503, body
        assert body["error"] == "replica_unavailable"
        assert "away" in body["message"]
        await routed(api, "chat")  # routing goes on

        standby_pair.standby.start()
        await caught_up(api)
        await eventually(lambda: listed(api, who), lambda ids: ids == [contact["contact_id"]])


async def test_a_read_the_replica_fails_midway_runs_on_the_primary(
    standby_pair: StandbyPair,
) -> None:
    """The store alone (no job measuring): the replica measured fine, then
    stopped; the next page fails on its pooled connection and is read from
    the primary within the same call."""
    async with app(standby_pair) as api:  # the schema, and one contact
        contact = await routed(api, "chat", customer=person())
        await caught_up(api)
    settings = DatabaseSettings(
        url=standby_pair.primary.url, replica_url=standby_pair.standby.url, pool_min=1
    )
    async with open_store(settings, migrate=False) as store:
        chosen = of_customer(contact["customer_id"])
        await eventually(lambda: store.records.page(chosen, limit=10), lambda rows: len(rows) == 1)
        await eventually(store.replica.measure, lambda s: s.reads == "replica")
        standby_pair.standby.stop()  # (well within STALE of that measurement)
        rows = await store.records.page(chosen, limit=10)
        assert [str(r.contact_id) for r in rows] == [contact["contact_id"]]
        assert store.replica.status.state == "away"


async def test_a_cursor_from_one_server_pages_on_the_other(standby_pair: StandbyPair) -> None:
    customer = person()
    async with (
        app(standby_pair, max_lag_seconds=600) as reading_replica,
        app_on(standby_pair.primary.url, database={"url": standby_pair.primary.url}) as primary,
    ):
        answers = [await routed(primary, "chat", customer=customer) for _ in range(5)]
        ids, who = [a["contact_id"] for a in answers], answers[0]["customer_id"]
        newest_first = list(reversed(ids))
        await caught_up(reading_replica)
        await eventually(lambda: listed(reading_replica, who), lambda got: got == newest_first)
        await eventually(lambda: replica(reading_replica), lambda r: r["reads"] == "replica")

        async def pages(first: Api, then: Api) -> list[str]:
            status, body = await history(first, who, limit=2)
            assert status == 200 and body["next_cursor"], body
            got = [c["contact_id"] for c in body["contacts"]]
            cursor = body["next_cursor"]
            while cursor:
                status, body = await history(then, who, limit=2, cursor=cursor)
                assert status == 200, body
                got += [c["contact_id"] for c in body["contacts"]]
                cursor = body["next_cursor"]
            return got

        assert await pages(reading_replica, primary) == newest_first
        assert await pages(primary, reading_replica) == newest_first


async def test_a_replica_that_stops_answering_costs_one_read_a_few_seconds(
    standby_pair: StandbyPair,
) -> None:
    """A network that drops everything without refusing (a proxy that stops
    forwarding): the read times out, a measurement finds the replica away,
    the read is answered by the primary; the next reads do not wait."""
    async with app(standby_pair) as api:
        contact = await routed(api, "chat", customer=person())
        await caught_up(api)
    proxy = CuttableProxy(standby_pair.standby.url)
    await proxy.start()
    settings = DatabaseSettings(
        url=standby_pair.primary.url,
        replica_url=proxy.url,
        pool_min=1,
        command_timeout=1,
        connect_timeout=1,
    )
    try:
        async with open_store(settings, migrate=False) as store:
            chosen = of_customer(contact["customer_id"])
            await eventually(
                lambda: store.records.page(chosen, limit=10), lambda rows: len(rows) == 1
            )
            await eventually(store.replica.measure, lambda s: s.reads == "replica")
            proxy.stall()
            started = time.monotonic()
            rows = await store.records.page(chosen, limit=10)
            assert [str(r.contact_id) for r in rows] == [contact["contact_id"]]
            assert time.monotonic() - started < 6
            assert store.replica.status.state == "away"
            started = time.monotonic()
            assert len(await store.records.page(chosen, limit=10)) == 1
            assert time.monotonic() - started < 1

            proxy.flow()
            await eventually(store.replica.measure, lambda s: s.reads == "replica", timeout=20)
    finally:
        await proxy.close()


async def test_a_read_replay_cancels_is_answered_by_the_primary(
    standby_pair: StandbyPair,
) -> None:
    """A recovery conflict: the primary takes a lock the replica's reader
    holds a weaker one of, and the replica (``max_standby_streaming_delay =
    0``) cancels the read to replay it; the read is answered by the primary."""
    async with app(standby_pair) as api:  # the schema
        await caught_up(api)
    standby = await asyncpg.connect(standby_pair.standby.url)
    primary = await asyncpg.connect(standby_pair.primary.url)
    settings = DatabaseSettings(
        url=standby_pair.primary.url, replica_url=standby_pair.standby.url, pool_min=1
    )
    try:
        await standby.execute("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        await standby.execute("SELECT pg_reload_conf()")
        async with open_store(settings, migrate=False) as store:
            await eventually(store.replica.measure, lambda s: s.reads == "replica")
            servers: list[bool] = []

            async def slow_read(pool: asyncpg.Pool) -> int:
                servers.append(await pool.fetchval("SELECT pg_is_in_recovery()"))
                found: int = await pool.fetchval(
                    "SELECT count(*) FROM omniroute.rulesets, pg_sleep(2)"
                )
                return found

            async def lock_on_the_primary() -> None:
                await asyncio.sleep(0.5)
                async with primary.transaction():
                    await primary.execute("LOCK TABLE omniroute.rulesets IN ACCESS EXCLUSIVE MODE")

            with capture_logs() as logs:
                found, _ = await asyncio.gather(store.replica.run(slow_read), lock_on_the_primary())
            assert found >= 1
            assert servers == [True, False]  # the replica first, then the primary
            assert any(e["event"] == "replica_read_cancelled" for e in logs)
            assert store.replica.status.state == "ok"  # not away: it is there
    finally:
        await standby.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        await standby.execute("SELECT pg_reload_conf()")
        await standby.close()
        await primary.close()


async def test_a_replica_behind_the_primarys_schema_sends_the_read_to_the_primary(
    standby_pair: StandbyPair,
) -> None:
    """During an upgrade the primary has run a migration the replica has not
    replayed yet: a read naming the new column is answered by the primary,
    not with a 500; once replayed, the replica answers it on the same session
    (a standby's session sees replayed DDL at its next statement)."""
    async with app(standby_pair) as api:  # the schema
        await caught_up(api)
    primary = await asyncpg.connect(standby_pair.primary.url)
    settings = DatabaseSettings(
        url=standby_pair.primary.url,
        replica_url=standby_pair.standby.url,
        pool_min=1,
        replica_pool_max=1,  # one session on the replica
    )
    try:
        async with open_store(settings, migrate=False) as store:
            await eventually(store.replica.measure, lambda s: s.reads == "replica")
            await replay(standby_pair, "pause")
            await primary.execute("ALTER TABLE omniroute.rulesets ADD COLUMN upgrade_probe int")
            servers: list[bool] = []

            sessions: list[int] = []

            async def new_column(pool: asyncpg.Pool) -> int:
                async with pool.acquire() as con:
                    servers.append(await con.fetchval("SELECT pg_is_in_recovery()"))
                    sessions.append(await con.fetchval("SELECT pg_backend_pid()"))
                    found: int = await con.fetchval(
                        "SELECT count(upgrade_probe) FROM omniroute.rulesets"
                    )
                    return found

            with capture_logs() as logs:
                assert await store.replica.run(new_column) == 0
            assert servers == [True, False]  # the replica first, then the primary
            assert any(e["event"] == "replica_schema_behind" for e in logs)

            await replay(standby_pair, "resume")
            await eventually(store.replica.measure, lambda s: s.lag_bytes == 0)
            with capture_logs() as logs:
                assert await store.replica.run(new_column) == 0
            assert servers[2:] == [True]  # the replica, on the session that failed
            assert sessions[2] == sessions[0]
            assert not any(e["event"] == "replica_schema_behind" for e in logs)
    finally:
        await primary.execute("ALTER TABLE omniroute.rulesets DROP COLUMN IF EXISTS upgrade_probe")
        await primary.close()


async def test_a_replica_measured_caught_up_has_every_acknowledged_commit(
    standby_pair: StandbyPair,
) -> None:
    """A commit acknowledged before a measurement that finds the replica 0
    bytes behind is on the replica, an asynchronous one too (the pair's
    primary runs ``synchronous_commit = off``, as deliveries and imports do:
    the commit is acknowledged while its record still waits in the WAL
    buffers, before ``pg_current_wal_lsn()`` has moved past it)."""
    primary = await asyncpg.connect(standby_pair.primary.url)
    standby = await asyncpg.connect(standby_pair.standby.url)
    settings = DatabaseSettings(
        url=standby_pair.primary.url, replica_url=standby_pair.standby.url, pool_min=1
    )
    try:
        await primary.execute("CREATE TABLE public.acknowledged (n int)")
        await primary.execute("SET synchronous_commit = off")
        async with open_store(settings, migrate=False) as store:
            for n in range(20):
                await primary.execute("INSERT INTO public.acknowledged VALUES ($1)", n)
                await eventually(store.replica.measure, lambda s: s.lag_bytes == 0)
                assert await standby.fetchval("SELECT max(n) FROM public.acknowledged") == n
    finally:
        await primary.execute("DROP TABLE IF EXISTS public.acknowledged")
        await primary.close()
        await standby.close()
