"""A routed contact's record as the database keeps it: the JSON values the
insert passes as one document land in their columns as each model's own JSON
(the contact, context, decision, trace, timings, the decision's skills and
tags, the open row's steps), and a record without a trace keeps none."""

from __future__ import annotations

import asyncio
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


def distinct_record(
    tag: str, *, known: bool, since: timedelta | None, switch: bool, degraded: bool, assign: bool
) -> NewRecord:
    """A record whose every field in ``record_row`` has a value of its own:
    the texts, numbers and times all differ, and the booleans follow the
    arguments (three such records give each boolean field its own pattern)."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    channel = "email"
    last = (
        None
        if since is None
        else LastContact(at=at - since, channel="social" if switch else channel)
    )
    return NewRecord(
        contact_id=uuid7(at),
        received_at=at,
        adapter=unique(f"adapter-{tag}"),
        contact=Contact(
            channel=channel,
            provider=f"provider-{tag}",
            external_id=unique(f"external-{tag}"),
            thread_id=f"thread-{tag}",
        ),
        customer_id=uuid.uuid4(),
        context=CustomerContext(
            customer_id=uuid.uuid4(), known=known, tier=f"tier-{tag}", last=last
        ),
        decision=Decision(
            queue=unique(f"queue-{tag}"),
            priority=37,
            sla_seconds=121,
            preferred_agent=f"decided-agent-{tag}",
            overflow=(OverflowStep(after_seconds=86400, priority=40),),
            rule=f"rule-{tag}",
            ruleset=f"ruleset-{tag}",
        ),
        trace=None,
        timings={"total_ms": 1.875},
        context_degraded=degraded,
        lifetime=3 * 86400,
        assign=assign,
        preferred_agent=f"offered-agent-{tag}",
        preferred_until=at + timedelta(seconds=90),
        rollout=f"rollout-{tag}:in",
    )


async def test_every_field_of_the_row_lands_in_its_own_column(api: Api, database_url: str) -> None:
    """Each value of the insert's row reaches the column named for it: a field
    written into another of the same type (two texts, two times, two
    booleans swapped) fails here. Each record goes in a batch of its own, so
    that the assigners' NOTIFY tells its ``assign``."""
    cases = {
        # known, within 24 h, within 7 d, channel switch, degraded, assign
        "a": distinct_record(
            "a", known=True, since=timedelta(hours=30), switch=True, degraded=False, assign=False
        ),
        "b": distinct_record(
            "b", known=False, since=timedelta(hours=2), switch=False, degraded=True, assign=False
        ),
        "c": distinct_record("c", known=True, since=None, switch=False, degraded=True, assign=True),
    }
    expected_flags = {
        "a": (True, False, True, "social", True, False, False),
        "b": (False, True, True, "email", False, True, False),
        "c": (True, False, False, None, False, True, True),
    }
    woke: list[str] = []

    def wake(*args: Any) -> None:
        woke.append(args[3])

    async with pool(database_url) as p, p.acquire() as con:
        await con.add_listener("omniroute_assign", wake)
        try:
            for tag, new in cases.items():
                before = len(woke)
                assert await records.insert_many(con, [new]) == [None]
                await con.fetchval("SELECT 1")  # the commit's notification has been read
                await asyncio.sleep(0)
                rec = await con.fetchrow(
                    "SELECT * FROM contacts WHERE contact_id = $1 AND received_at = $2",
                    new.contact_id,
                    new.received_at,
                )
                opened = await con.fetchrow(
                    "SELECT * FROM open_contacts WHERE contact_id = $1", new.contact_id
                )
                logged = await con.fetchrow(
                    "SELECT * FROM lifecycle_log WHERE contact_id = $1", new.contact_id
                )
                at = new.received_at
                assert {
                    k: rec[k]
                    for k in (
                        "contact_id",
                        "received_at",
                        "adapter",
                        "provider",
                        "channel",
                        "external_id",
                        "thread_id",
                        "customer_id",
                        "queue",
                        "priority",
                        "sla_seconds",
                        "preferred_agent",
                        "rule",
                        "ruleset",
                        "tier",
                        "routing_ms",
                        "rollout",
                    )
                } == {
                    "contact_id": new.contact_id,
                    "received_at": at,
                    "adapter": new.adapter,
                    "provider": f"provider-{tag}",
                    "channel": "email",
                    "external_id": new.contact.external_id,
                    "thread_id": f"thread-{tag}",
                    "customer_id": new.customer_id,
                    "queue": new.decision.queue,
                    "priority": 37,
                    "sla_seconds": 121,
                    "preferred_agent": f"decided-agent-{tag}",
                    "rule": f"rule-{tag}",
                    "ruleset": f"ruleset-{tag}",
                    "tier": f"tier-{tag}",
                    "routing_ms": 1.875,
                    "rollout": f"rollout-{tag}:in",
                }, tag
                flags = (
                    rec["known_customer"],
                    rec["repeat_24h"],
                    rec["repeat_7d"],
                    rec["previous_channel"],
                    rec["channel_switch"],
                    rec["context_degraded"],
                    len(woke) > before,
                )
                assert flags == expected_flags[tag], tag
                assert {
                    k: opened[k]
                    for k in (
                        "received_at",
                        "adapter",
                        "channel",
                        "queue",
                        "priority",
                        "sla_seconds",
                        "expires_at",
                        "next_step_at",
                        "preferred_agent",
                        "preferred_until",
                    )
                } == {
                    "received_at": at,
                    "adapter": new.adapter,
                    "channel": "email",
                    "queue": new.decision.queue,
                    "priority": 37,
                    "sla_seconds": 121,
                    "expires_at": at + timedelta(days=3),
                    "next_step_at": at + timedelta(days=1),
                    "preferred_agent": f"offered-agent-{tag}",
                    "preferred_until": at + timedelta(seconds=90),
                }, tag
                assert (logged["kind"], logged["queue"], logged["channel"]) == (
                    "routed",
                    new.decision.queue,
                    "email",
                )
                assert {k: v for k, v in logged["data"].items() if k != "received_at"} == {
                    "adapter": new.adapter,
                    "priority": 37,
                    "rule": f"rule-{tag}",
                    "ruleset": f"ruleset-{tag}",
                    "open": True,
                }, tag
        finally:
            await con.remove_listener("omniroute_assign", wake)


async def test_the_row_type_has_the_fields_the_insert_passes(api: Api, database_url: str) -> None:
    """``record_row`` (migration 0030) has the fields of ``ROW_FIELDS``, in
    its order and with its types: the order ``_row`` writes them in."""
    async with pool(database_url) as p:
        fields = await p.fetch(
            """SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type
                 FROM pg_attribute a
                WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'record_row'::regtype)
                      -- the type's relation: its fields in order
                  AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum"""
        )
        types = [await p.fetchval("SELECT $1::regtype::text", t) for _, t in records.ROW_FIELDS]
    assert [(f["name"], f["type"]) for f in fields] == [
        (name, t) for (name, _), t in zip(records.ROW_FIELDS, types, strict=True)
    ]


def test_the_document_is_what_pydantic_writes() -> None:
    # orjson writes the document; pydantic's serializer wrote it before: the
    # same JSON, for models built by validation and from the store's values
    # (the driver's UUID subclass, pydantic's own time zones); pydantic
    # writes what orjson does not encode (an integer past 64 bits)
    from asyncpg.pgproto.pgproto import UUID as DriverUUID
    from pydantic import TypeAdapter

    r = record("a", trace=[{"rule": "vip", "matched": True}], lifetime=None)
    stored = TypeAdapter(datetime).validate_python("2026-11-29T08:53:08.5+01:00")
    context = CustomerContext.model_validate(
        {
            **r.context.model_dump(),
            "customer_id": DriverUUID(str(r.context.customer_id)),
            "journeys": [
                {"ref": "o-1", "type": "order", "opened_at": stored, "updated_at": stored}
            ],
        }
    )
    for attributes in ({"n": 2.5e-7, "big": 10**12}, {"big": 2**70}):
        contact = r.contact.model_copy(update={"attributes": attributes})
        document: Any = {
            "contact": contact,
            "context": context,
            "decision": r.decision,
            "trace": r.trace,
            "timings": r.timings,
        }
        expected = records._by_pydantic(document)
        assert orjson.loads(records._document(document)) == orjson.loads(expected)
