"""Resolving a batch of contacts in one statement (``resolve_batch``, set-based)
gives what resolving them one after the other (``resolve_contact``) gives:
the same customers, contexts, identities and conflicts; contacts of one batch
sharing an identifier, a retried delivery in the batch and concurrent batches
keep one customer per identifier."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from router.models import Identifier, now_ms, uuid7
from router.store import customers, migrations
from router.store.customers import Resolution, ResolveKey
from router.store.records import EarlierDelivery
from tests.support.databases import service_connection
from tests.support.examples import unique
from tests.support.seed import Row, seed


@pytest.fixture
async def con(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the service's to the module's database, migrated."""
    async with service_connection(own_database) as c:
        await migrations.migrate(c)
        yield c


def contact(
    *ids: tuple[str, str] | tuple[str, str, bool],
    at: datetime,
    thread: str | None = None,
    external_id: str | None = None,
) -> ResolveKey:
    return ResolveKey(
        adapter="chat",
        external_id=external_id or uuid.uuid4().hex,
        thread_id=thread,
        identifiers=[
            Identifier(kind=i[0], value=i[1], verified=bool(i[2:3] and i[2])) for i in ids
        ],
        contact_id=uuid7(at),
        at=at,
    )


def batch_json(keys: list[ResolveKey]) -> list[dict[str, Any]]:
    """The batch, with its new customer ids drawn once for both ways."""
    return [
        {
            "a": x.adapter,
            "e": x.external_id,
            "k": [i.kind for i in x.identifiers],
            "v": [i.value for i in x.identifiers],
            "f": [i.verified for i in x.identifiers],
            "n": str(uuid7(x.at)),
            "c": str(x.contact_id),
            "t": x.at.isoformat(),
            "h": x.thread_id,
        }
        for x in keys
    ]


async def state(con: asyncpg.Connection, values: set[str]) -> dict[str, Any]:
    """The identities and conflicts of ``values``, and their customers."""
    idents = await con.fetch(
        """SELECT kind, value, customer_id, verified FROM identities
            WHERE value = ANY($1::text[]) ORDER BY kind, value""",
        sorted(values),
    )
    conflicts = await con.fetch(
        """SELECT contact_id, adapter, external_id, customer_id, other_customer_id, kind, value
             FROM identity_conflicts WHERE value = ANY($1::text[])
            ORDER BY contact_id, kind, value""",
        sorted(values),
    )
    people = await con.fetch(
        "SELECT customer_id, origin FROM customers WHERE customer_id = ANY($1::uuid[])",
        [r["customer_id"] for r in idents],
    )
    return {
        "identities": [tuple(r) for r in idents],
        "conflicts": [tuple(r) for r in conflicts],
        "customers": sorted(tuple(r) for r in people),
    }


async def set_based(con: asyncpg.Connection, items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """``resolve_batch`` with the arrays ``customers.resolve_many`` passes."""
    rows = await con.fetch(
        """SELECT * FROM resolve_batch($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[],
                                      $6::timestamptz[], $7::int[], $8::text[], $9::text[],
                                      $10::bool[]) ORDER BY idx""",
        [x["a"] for x in items],
        [x["e"] for x in items],
        [x["h"] for x in items],
        [uuid.UUID(x["n"]) for x in items],
        [uuid.UUID(x["c"]) for x in items],
        [datetime.fromisoformat(x["t"]) for x in items],
        [n for n, x in enumerate(items) for _ in x["k"]],
        [k for x in items for k in x["k"]],
        [v for x in items for v in x["v"]],
        [f for x in items for f in x["f"]],
    )
    return [tuple(r) for r in rows]


async def one_by_one(con: asyncpg.Connection, items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for n, item in enumerate(items):
        for r in await con.fetch(
            """SELECT * FROM resolve_contact($1, $2, $3::text[], $4::text[], $5::boolean[],
                                             $6::uuid, $7::uuid, $8::timestamptz, $9)""",
            item["a"],
            item["e"],
            item["k"],
            item["v"],
            item["f"],
            uuid.UUID(item["n"]),
            uuid.UUID(item["c"]),
            datetime.fromisoformat(item["t"]),
            item["h"],
        ):
            out.append((n, *r))
    return out


async def test_a_batch_resolves_as_its_contacts_one_after_the_other(
    con: asyncpg.Connection,
) -> None:
    at = now_ms()
    tag = unique("rb")
    mail = {name: f"{name}.{tag}@example.com" for name in "abcdefghijk"}
    phone = {name: f"+1555{abs(hash((tag, name))) % 10**7:07d}" for name in "abcd"}
    ids = {name: uuid7(at - timedelta(days=200)) for name in "abcd"}
    # a: a customer with history on three channels and an open thread
    # b: contacts only long ago (the "last contact" before the last 30 days)
    # c: from the CRM, no contact yet, an open journey
    # d: a phone number, one contact last week
    for name, origin in (("a", "contact"), ("b", "contact"), ("c", "crm"), ("d", "contact")):
        await con.execute(
            "INSERT INTO customers (customer_id, origin, tier) VALUES ($1, $2, 'gold')",
            ids[name],
            origin,
        )
    await con.executemany(
        "INSERT INTO identities (kind, value, customer_id, verified) VALUES ($1, $2, $3, $4)",
        [
            ("email", mail["a"], ids["a"], True),
            ("phone", phone["a"], ids["a"], False),
            ("email", mail["b"], ids["b"], False),
            ("email", mail["c"], ids["c"], True),
            ("phone", phone["d"], ids["d"], False),
            ("social", f"tw-{tag}", ids["b"], False),
        ],
    )
    await con.execute(
        """INSERT INTO journeys (customer_id, ref, type, step, data)
           VALUES ($1, 'order-1', 'order', 'shipped', '{"n": 1}')""",
        ids["c"],
    )
    thread = f"thread-{tag}"
    await seed(
        con,
        [
            Row(at - timedelta(hours=2), "chat", "chat", customer=ids["a"], thread_id=thread),
            Row(at - timedelta(hours=30), "chat", "email", customer=ids["a"], agent="ann"),
            Row(at - timedelta(days=10), "chat", "voice", customer=ids["a"], thread_id=thread),
            Row(at - timedelta(days=45), "chat", "voice", customer=ids["a"]),
            Row(at - timedelta(days=75), "chat", "email", customer=ids["b"], rule="old"),
            Row(at - timedelta(days=120), "chat", "chat", customer=ids["b"]),
            Row(at - timedelta(days=6), "chat", "voice", customer=ids["d"]),
        ],
    )
    earlier = contact(("email", mail["a"]), at=at - timedelta(hours=2))
    await con.execute(
        """INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
           SELECT 'chat', $1, contact_id, received_at FROM contacts
            WHERE customer_id = $2 AND thread_id = $3 AND received_at > $4""",
        earlier.external_id,
        ids["a"],
        thread,
        at - timedelta(hours=3),
    )
    shared_key = uuid.uuid4().hex
    gone = uuid.uuid4().hex  # a key whose record is gone (erased, expired): resolved anew
    await con.execute(
        """INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
           VALUES ('chat', $1, $2, $3)""",
        gone,
        uuid7(at - timedelta(days=3)),
        at - timedelta(days=3),
    )
    keys = [
        contact(("email", mail["a"]), at=at, thread=thread),  # known, thread, 3 channels
        contact(("email", mail["b"]), at=at),  # only old contacts
        contact(("email", mail["c"]), at=at),  # the CRM's
        contact(("email", mail["e"]), ("phone", phone["d"]), at=at),  # a new e-mail to d
        contact(("email", mail["a"]), ("phone", phone["d"]), at=at),  # conflict: d's phone
        contact(("email", mail["f"]), ("phone", phone["b"], True), at=at),  # all new
        contact(at=at),  # anonymous
        contact(("email", mail["a"]), at=at, external_id=earlier.external_id),  # retried
        contact(("email", mail["g"]), ("phone", phone["a"], True), at=at),  # a's phone verified
        contact(("email", mail["h"]), at=at),  # a new identifier twice in the batch
        contact(("phone", phone["c"]), ("email", mail["h"], True), at=at),
        contact(("email", mail["i"]), at=at, external_id=shared_key),  # a delivery twice
        contact(("email", mail["i"]), at=at, external_id=shared_key),
        contact(("email", mail["j"]), ("email", mail["j"]), at=at),  # the same one twice
        contact(("email", mail["b"]), ("phone", phone["d"]), at=at, thread="nowhere"),
        contact(("email", mail["c"]), ("social", f"tw-{tag}"), at=at),  # conflict: b's
        contact(("email", mail["k"]), at=at, external_id=gone),
    ]
    values = set(mail.values()) | set(phone.values()) | {f"tw-{tag}"}

    items = batch_json(keys)  # the same new customer ids for both runs
    reference = con.transaction()
    await reference.start()
    loop = await one_by_one(con, items)
    loop_state = await state(con, values)
    await reference.rollback()

    run = con.transaction()
    await run.start()
    together = await set_based(con, items)
    together_state = await state(con, values)
    await run.rollback()

    # the earlier release's call (the batch as JSON), kept for rolling upgrades
    upgrade = con.transaction()
    await upgrade.start()
    as_json = [
        tuple(r)
        for r in await con.fetch(
            "SELECT * FROM resolve_many($1::text::jsonb) ORDER BY idx", json.dumps(items)
        )
    ]
    json_state = await state(con, values)
    await upgrade.rollback()

    assert together == loop
    assert together_state == loop_state
    assert as_json == loop
    assert json_state == loop_state
    by_idx = {r[0]: r for r in together}
    assert by_idx[7][1] is not None  # the retried delivery: its earlier record
    assert 6 not in by_idx  # the anonymous contact has no customer
    assert by_idx[9][4] == by_idx[10][4]  # a new identifier twice: one customer
    assert by_idx[11][4] == by_idx[12][4]
    assert by_idx[3][4] == ids["d"] and by_idx[4][4] == ids["a"]
    assert by_idx[1][6]["last"]["rule"] == "old" and by_idx[1][5] is True
    assert by_idx[2][5] is True and by_idx[2][6]["journeys"][0]["ref"] == "order-1"
    assert by_idx[0][6]["conversation"]["contacts"] == 2
    assert set(by_idx[0][6]["per_channel"]) == {"chat", "email", "voice"}
    assert ("phone", phone["a"], ids["a"], True) in together_state["identities"]
    assert sorted(c[4] for c in together_state["conflicts"]) == sorted([ids["d"]] * 2 + [ids["b"]])
    assert by_idx[15][4] == ids["c"]
    assert by_idx[16][1] is None and by_idx[16][4] is not None


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "shared-in-batch"])
async def test_concurrent_batches_give_one_customer_per_identifier(
    con: asyncpg.Connection, own_database: str, alone: bool
) -> None:
    """The second batch waits for the first one's identifiers: its contact
    with the same new identifier finds the customer the first one made --
    whether it is resolved with the others of its batch or, sharing the
    identifier with another contact of its batch, one by one."""
    tag = unique("rc")
    x, y, p = f"x.{tag}@example.com", f"y.{tag}@example.com", f"+1666{abs(hash(tag)) % 10**7:07d}"
    at = now_ms()
    first = [contact(("email", x), at=at), contact(("email", y), at=at)]
    second = [contact(("phone", p), ("email", x), at=at)]
    if not alone:
        second.append(contact(("email", x), at=at))
    async with service_connection(own_database) as other:

        async def resolve_second() -> list[customers.Resolved]:
            async with other.transaction():
                return await customers.resolve_many(other, second)

        async with con.transaction():
            one = await customers.resolve_many(con, first)
            waiting = asyncio.create_task(resolve_second())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held on x's lock
        two = await waiting
    assert all(isinstance(r, Resolution) for r in one + two)
    owner = {r.customer_id for r in one[:1] + two if isinstance(r, Resolution)}
    assert len(owner) == 1
    assert await con.fetchval("SELECT customer_id FROM identities WHERE value = $1", x) in owner
    assert await con.fetchval("SELECT customer_id FROM identities WHERE value = $1", p) in owner


async def test_a_batch_through_the_store_call(con: asyncpg.Connection) -> None:
    """``customers.resolve_many``: each contact's answer in its place."""
    tag = unique("rs")
    at = now_ms()
    keys = [
        contact(("email", f"a.{tag}@example.com"), at=at),
        contact(at=at),
        contact(("email", f"a.{tag}@example.com"), at=at),
        contact(("email", f"b.{tag}@example.com"), at=at),
    ]
    found = await customers.resolve_many(con, keys)
    assert found[1] is None
    first, again, other = found[0], found[2], found[3]
    assert isinstance(first, Resolution) and isinstance(again, Resolution)
    assert isinstance(other, Resolution)
    assert first.customer_id == again.customer_id != other.customer_id
    assert first.known is False and again.known is False  # no contact yet
    assert set(again.context) >= {"per_channel", "last", "journeys", "attributes"}
    assert not isinstance(first, EarlierDelivery)


async def _seq_scans(con: asyncpg.Connection) -> dict[str, int]:
    await con.execute("SELECT pg_stat_force_next_flush()")
    await con.execute("SELECT 1")  # the flush happens at the end of a statement
    await con.execute("SELECT pg_stat_clear_snapshot()")
    rows = await con.fetch(
        """SELECT relname, seq_scan FROM pg_stat_user_tables
            WHERE relname IN ('customers', 'contact_keys', 'identities')"""
    )
    return {r["relname"]: r["seq_scan"] for r in rows}


async def test_plans_made_on_empty_tables_never_scan_them_whole(con: asyncpg.Connection) -> None:
    """The function's plans are generic and kept for the connection's life:
    made while the tables were empty (a new database), they must still look
    rows up by index once the tables have grown, never read them whole."""
    at = now_ms()
    first = [contact(("email", f"{unique('plan')}@example.com"), at=at) for _ in range(3)]
    await customers.resolve_many(con, first)  # plans made now, on empty tables
    await con.execute(
        """INSERT INTO customers (customer_id)
           SELECT gen_random_uuid() FROM generate_series(1, 3000)"""
    )
    await con.execute(
        """INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
           SELECT 'chat', 'seeded-' || n, gen_random_uuid(), now()
             FROM generate_series(1, 3000) n"""
    )
    await con.execute("ANALYZE customers; ANALYZE contact_keys; ANALYZE identities")
    before = await _seq_scans(con)
    known = [contact(*[(i.kind, i.value) for i in k.identifiers], at=at) for k in first]
    new = [contact(("email", f"{unique('plan')}@example.com"), at=at) for _ in range(3)]
    for _ in range(3):
        await customers.resolve_many(con, known + new)
    assert await _seq_scans(con) == before
