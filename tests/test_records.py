"""A routed contact's record as the database keeps it: the JSON values the
insert passes as one document land in their columns as each model's own JSON
(the contact, context, decision, trace, timings, the decision's skills and
tags, the open row's steps), and a record without a trace keeps none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from router.models import (
    Contact,
    CustomerContext,
    Decision,
    Identifier,
    LastContact,
    OverflowStep,
    uuid7,
)
from router.store import NewRecord, records
from tests.support.api import Api
from tests.support.examples import unique
from tests.support.seed import pool


def record(
    adapter: str, *, trace: list[dict[str, Any]] | None, lifetime: float | None
) -> NewRecord:
    # received now, its steps and expiry far off: the app's jobs leave it alone
    at = datetime.now(UTC).replace(microsecond=0)
    contact = Contact(
        channel="email",
        provider="generic",
        external_id=unique("x"),
        thread_id="thread-1",
        identifiers=(Identifier(kind="email", value="ann@example.com", verified=True),),
        subject="Où est ma commande ?",
        text='quote " and \\ backslash, emoji \U0001f600',
        sent_at=at - timedelta(seconds=3),
        attributes={"attachments": 2, "deep": {"list": [1, 2.5, None, True, "x"]}},
    )
    customer_id = uuid.uuid4()
    context = CustomerContext(
        customer_id=customer_id,
        known=True,
        tier="vip",
        attributes={"account_manager": "ag-7"},
        contacts_24h=2,
        last=LastContact(at=at - timedelta(hours=2), channel="chat", queue="general"),
        repeat=True,
        channel_switch=True,
    )
    decision = Decision(
        queue=unique("q"),  # a queue of its own: no other test counts its open contacts
        priority=95,
        skills=("vip", "fr"),
        sla_seconds=120,
        tags=("vip", "repeat"),
        preferred_agent="ag-7",
        overflow=(
            OverflowStep(after_seconds=86400, priority=100),
            OverflowStep(after_seconds=172800, queue="general", drop_skills=("vip",)),
        ),
        rule="vip",
        ruleset="test-v1",
    )
    return NewRecord(
        contact_id=uuid7(at),
        received_at=at,
        adapter=adapter,
        contact=contact,
        customer_id=customer_id,
        context=context,
        decision=decision,
        trace=trace,
        timings={"parse_ms": 0.125, "context_ms": 1.5, "rules_ms": 0.25, "total_ms": 1.875},
        lifetime=lifetime,
    )


def as_json(model: Any) -> Any:
    return orjson.loads(model.model_dump_json())


async def test_the_json_columns_hold_each_models_json(api: Api, database_url: str) -> None:
    adapter = unique("rec")
    traced = record(adapter, trace=[{"rule": "vip", "matched": True}], lifetime=7 * 86400)
    untraced = record(adapter, trace=None, lifetime=None)
    async with pool(database_url) as p:
        assert await records.insert_many(p, [traced, untraced]) == [None, None]
        one = await records.fetch_one(p, traced.contact_id)
        other = await records.fetch_one(p, untraced.contact_id)
        opened = await p.fetch(
            "SELECT contact_id, skills, overflow FROM open_contacts WHERE adapter = $1", adapter
        )
        columns = await p.fetchrow(
            "SELECT skills, tags FROM contacts WHERE contact_id = $1 AND received_at = $2",
            traced.contact_id,
            traced.received_at,
        )
    assert one is not None and other is not None
    assert one.contact == as_json(traced.contact)
    assert one.context == as_json(traced.context)
    assert one.decision == as_json(traced.decision)
    assert one.trace == [{"rule": "vip", "matched": True}]
    assert one.timings == traced.timings
    assert one.routing_ms == traced.timings["total_ms"]
    assert (one.repeat_24h, one.repeat_7d, one.previous_channel, one.channel_switch) == (
        True,
        True,
        "chat",
        True,
    )
    assert (list(columns["skills"]), list(columns["tags"])) == (["vip", "fr"], ["vip", "repeat"])
    assert other.trace is None  # no trace: NULL, not JSON null
    # only the record with a lifetime is open, with the decision's steps
    [row] = opened
    assert row["contact_id"] == traced.contact_id
    assert list(row["skills"]) == ["vip", "fr"]
    assert row["overflow"] == [as_json(s) for s in traced.decision.overflow]


async def _has_lz4(p: Any) -> bool:
    try:
        async with p.acquire() as con, con.transaction():
            await con.execute("SET LOCAL default_toast_compression = 'lz4'")
    except asyncpg.PostgresError:
        return False
    return True


async def test_a_large_record_is_compressed_with_lz4_and_reads_back(
    api: Api, database_url: str
) -> None:
    # an e-mail body (or trace) that takes the row over the TOAST threshold:
    # its JSON values are compressed at insert, with lz4 where the server has it
    big = record(
        unique("big"),
        trace=[{"rule": f"r{n}", "matched": False} for n in range(300)],
        lifetime=None,
    )
    async with pool(database_url) as p:
        assert await records.insert_many(p, [big]) == [None]
        one = await records.fetch_one(p, big.contact_id)
        method = await p.fetchval(
            """SELECT pg_column_compression(trace) FROM contacts
                WHERE contact_id = $1 AND received_at = $2""",
            big.contact_id,
            big.received_at,
        )
        lz4 = await _has_lz4(p)
    assert one is not None
    assert one.trace == big.trace and one.contact == as_json(big.contact)
    assert method == ("lz4" if lz4 else "pglz")
