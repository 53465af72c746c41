"""The outbox's leases (migration 0033): a claim leases its rows in a column
no index covers, so it is a HOT update; a leased row is not claimed again
before its lease runs out, by this release or the previous one, and is once
it has; a release, an outcome and a retry by hand end the lease; and the
migration takes a database holding the previous release's pending and
leased rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from router.settings import DatabaseSettings
from router.store import deliveries, migrations, open_store
from router.store.deliveries import Mark
from tests.support.apps import app_on
from tests.support.databases import connection, new_database
from tests.support.receivers import destination, receiver

#: Events as routing writes them, ``$1`` of them for destination ``$2``.
_ROWS = """
INSERT INTO deliveries (delivery_id, destination, event_type, contact_id, payload)
SELECT gen_random_uuid(), $2, 'contact.routed', gen_random_uuid(),
       jsonb_build_object('type', 'contact.routed', 'data', repeat(md5(n::text), 16))
  FROM generate_series(1, $1) AS n
"""

#: The previous release's claim (before 0033), word for word but for the
#: synchronous_commit CTE: it leased by moving next_attempt_at.
_OLD_CLAIM = """
UPDATE deliveries d
   SET attempts = d.attempts + 1,
       next_attempt_at = now() + make_interval(secs => $3)
 WHERE d.delivery_id IN (
        SELECT delivery_id FROM deliveries
         WHERE status = 'pending' AND destination = $1 AND next_attempt_at <= now()
         ORDER BY next_attempt_at
         LIMIT $2
           FOR UPDATE SKIP LOCKED)
RETURNING d.delivery_id, d.attempts
"""

_HOT = """SELECT pg_stat_get_xact_tuples_updated('deliveries'::regclass) AS updated,
                 pg_stat_get_xact_tuples_hot_updated('deliveries'::regclass) AS hot"""


@pytest.fixture
async def outbox_url(server_url: str) -> AsyncIterator[str]:
    """A database of its own with the schema."""
    async with new_database(server_url, "omniroute_leases") as url:
        async with open_store(DatabaseSettings(url=url, pool_min=1, pool_max=1)):
            pass  # the schema
        yield url


@pytest.fixture
async def outbox(outbox_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to that database."""
    async with connection(outbox_url) as con:
        yield con


async def claim(con: asyncpg.Connection, dest: str, limit: int, lease: float) -> list[uuid.UUID]:
    rows = await deliveries.claim(con, dest, limit=limit, lease=lease)  # type: ignore[arg-type]
    return [r.delivery_id for r in rows]


async def test_a_claim_is_a_hot_update(outbox: asyncpg.Connection) -> None:
    """Every row a claim leases gets its new version on its own page: no
    index entry is written (the lease is in no index; the table leaves room)."""
    await outbox.execute(_ROWS, 200, "hook")
    async with outbox.transaction():
        before = await outbox.fetchrow(_HOT)  # (with this backend's counts not yet sent)
        claimed = await claim(outbox, "hook", 32, 30)
        claimed += await claim(outbox, "hook", 32, 30)
        after = await outbox.fetchrow(_HOT)
    assert len(set(claimed)) == 64
    assert (after["updated"] - before["updated"], after["hot"] - before["hot"]) == (64, 64)


async def test_a_leased_row_is_not_claimed_again_until_its_lease_runs_out(
    outbox: asyncpg.Connection, outbox_url: str
) -> None:
    await outbox.execute(_ROWS, 40, "hook")
    first = await claim(outbox, "hook", 32, 0.5)
    # another dispatcher (its own connection) steps over the leased rows
    async with connection(outbox_url) as other:
        second = await claim(other, "hook", 32, 0.5)
        assert len(first) == 32 and len(second) == 8 and not set(first) & set(second)
        assert await claim(other, "hook", 32, 0.5) == []  # everything is leased
        await asyncio.sleep(0.7)
        again = await deliveries.claim(other, "hook", limit=64, lease=30)  # type: ignore[arg-type]
    # the lease ran out: the same rows (their ids), their second attempt
    assert sorted(r.delivery_id for r in again) == sorted(first + second)
    assert {r.attempts for r in again} == {2}


async def test_concurrent_claims_never_take_the_same_row(
    outbox: asyncpg.Connection, outbox_url: str
) -> None:
    await outbox.execute(_ROWS, 300, "hook")
    pool = await asyncpg.create_pool(
        outbox_url, min_size=4, max_size=4, server_settings={"search_path": "omniroute"}
    )
    try:
        batches = await asyncio.gather(
            *(deliveries.claim(pool, "hook", limit=16, lease=30) for _ in range(24))
        )
    finally:
        await pool.close()
    ids = [r.delivery_id for batch in batches for r in batch]
    assert len(ids) == len(set(ids)) == 300


async def test_an_outcome_a_release_and_a_retry_by_hand_end_the_lease(
    outbox: asyncpg.Connection, outbox_url: str
) -> None:
    await outbox.execute(_ROWS, 4, "hook")
    rows = await deliveries.claim(outbox, "hook", limit=4, lease=300)  # type: ignore[arg-type]
    a, b, c, d = sorted(rows, key=lambda r: r.delivery_id)
    took = await deliveries.mark(
        outbox, [Mark(a.delivery_id, a.attempts), Mark(b.delivery_id, b.attempts, "HTTP 503", 0.0)]
    )
    assert took == [True, True]
    # given back, due now: claimed again at once, the attempt not counted
    await deliveries.release(
        outbox,  # type: ignore[arg-type]
        [(c.delivery_id, c.attempts)],
        due=await outbox.fetchval("SELECT now()"),
    )
    again = await deliveries.claim(outbox, "hook", limit=4, lease=300)  # type: ignore[arg-type]
    assert sorted((r.delivery_id, r.attempts) for r in again) == sorted(
        [(b.delivery_id, 2), (c.delivery_id, 1)]
    )
    # a retry by hand of a leased row: due now, claimed by the next claim
    async with asyncpg.create_pool(
        outbox_url, min_size=1, max_size=1, server_settings={"search_path": "omniroute"}
    ) as pool:
        listed = await deliveries.retry(pool, d.delivery_id)
    assert listed is not None and listed.status == "pending"
    assert await claim(outbox, "hook", 4, 300) == [d.delivery_id]
    # the API shows a leased row's next attempt once its lease runs out
    shown = await deliveries.one(outbox, d.delivery_id)  # type: ignore[arg-type]
    leased = await outbox.fetchval(
        "SELECT leased_until FROM deliveries WHERE delivery_id = $1", d.delivery_id
    )
    assert shown is not None and shown.next_attempt_at == leased
    status = await outbox.fetchval(
        "SELECT status FROM deliveries WHERE delivery_id = $1", a.delivery_id
    )
    assert status == "delivered"
    left = await outbox.fetchval("SELECT count(*) FROM deliveries WHERE leased_until IS NULL")
    assert left == 1  # the delivered row; the other three are leased again


async def test_the_previous_release_does_not_claim_a_row_this_one_leased(
    outbox: asyncpg.Connection,
) -> None:
    await outbox.execute(_ROWS, 6, "hook")
    ours = await claim(outbox, "hook", 4, 300)
    async with outbox.transaction():
        theirs = await outbox.fetch(_OLD_CLAIM, "hook", 10, 300)
    assert len(theirs) == 2 and not {r["delivery_id"] for r in theirs} & set(ours)
    attempts = await outbox.fetch(
        "SELECT attempts FROM deliveries WHERE delivery_id = any($1)", ours
    )
    assert [r["attempts"] for r in attempts] == [1, 1, 1, 1]
    # and this release does not claim the rows the previous one leased
    assert await claim(outbox, "hook", 10, 300) == []


async def test_an_event_leased_by_a_dead_instance_is_sent_once_its_lease_runs_out(
    outbox_url: str, outbox: asyncpg.Connection
) -> None:
    async with receiver() as r:
        dest = destination(r)
        delivery_id = await outbox.fetchval(
            """INSERT INTO deliveries (delivery_id, destination, event_type, payload,
                                       attempts, leased_until)
               VALUES (gen_random_uuid(), $1, 'contact.routed', '{"type": "contact.routed"}',
                       1, now() + interval '1 second')
               RETURNING delivery_id""",
            dest["name"],
        )
        fast = {"retry_base": 0.1, "retry_max_delay": 0.2, "poll_interval": 0.1}
        async with app_on(outbox_url, destinations=[dest], delivery=fast):
            await asyncio.sleep(0.5)
            assert r.received == []  # still leased
            for _ in range(100):
                if r.received:
                    break
                await asyncio.sleep(0.05)
    assert r.ids == [str(delivery_id)]
    row = await outbox.fetchrow("SELECT * FROM deliveries WHERE delivery_id = $1", delivery_id)
    assert (row["status"], row["attempts"], row["leased_until"]) == ("delivered", 2, None)


async def test_the_migration_takes_the_previous_releases_pending_and_leased_rows(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrations.available()
    async with new_database(server_url, "omniroute_lease_upgrade") as url:
        con = await asyncpg.connect(url)
        try:
            with monkeypatch.context() as m:  # the schema of the previous release
                m.setattr(migrations, "available", lambda: [x for x in every if x[0] < 33])
                await migrations.migrate(con)
            await con.execute("SET search_path = omniroute")
            await con.execute(_ROWS, 3, "hook")  # pending
            leased = await con.fetch(_OLD_CLAIM, "hook", 2, 300)  # leased by it
            applied = await migrations.migrate(con)
            assert "0033_outbox_lease_column.sql" in applied
            claimed = await claim(con, "hook", 10, 30)
            assert len(claimed) == 1 and claimed[0] not in {r["delivery_id"] for r in leased}
        finally:
            await con.close()


async def test_a_mark_finds_its_row_at_the_claimed_address_or_by_its_key(
    outbox: asyncpg.Connection, outbox_url: str
) -> None:
    """A mark carries the address of the version its claim wrote: taken
    there; a row updated since (a retry by hand) or an address that holds
    another row is marked by its primary key, and the other row not at all."""
    await outbox.execute(_ROWS, 4, "hook")
    rows = await deliveries.claim(outbox, "hook", limit=4, lease=300)  # type: ignore[arg-type]
    a, b, c, d = sorted(rows, key=lambda r: r.delivery_id)
    assert all(r.at is not None for r in rows)
    async with asyncpg.create_pool(
        outbox_url, min_size=1, max_size=1, server_settings={"search_path": "omniroute"}
    ) as pool:
        await deliveries.retry(pool, b.delivery_id)  # b moved: a new version, elsewhere
    async with outbox.transaction():
        before = await outbox.fetchrow(_HOT)  # (with this backend's counts not yet sent)
        took = await deliveries.mark(
            outbox,
            [
                Mark(a.delivery_id, a.attempts, at=a.at),  # where it was claimed
                Mark(b.delivery_id, b.attempts, at=b.at),  # moved since: by its key
                Mark(c.delivery_id, c.attempts, at=d.at),  # d's address: c by its key
                Mark(d.delivery_id, d.attempts + 1, at=d.at),  # not this attempt's row
            ],
        )
        counts = await outbox.fetchrow(_HOT)
    assert took == [True, True, True, False]
    assert counts["updated"] - before["updated"] == 3  # a, b and c: d is not touched
    status = {
        r["delivery_id"]: r["status"]
        for r in await outbox.fetch("SELECT delivery_id, status FROM deliveries")
    }
    assert [status[x.delivery_id] for x in (a, b, c, d)] == [
        "delivered",
        "delivered",
        "delivered",
        "pending",
    ]
