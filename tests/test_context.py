"""The customer context built from the resolve function's JSON: the cheaper
construction gives the model the step-by-step validated one gave, field for
field and byte for byte as stored; what the function never writes is refused
as before; and the ids the service makes are valid version-7 UUIDs."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from router.models import (
    CHANNELS,
    ChannelCounts,
    CustomerContext,
    Decision,
    OverflowStep,
    PerChannel,
    Routed,
    trusted,
    uuid7,
    uuid7_time,
)
from router.recognition.context import (
    REPEAT_WINDOW,
    SWITCH_WINDOW,
    anonymous_context,
    build_context,
)

AT = datetime(2026, 3, 2, 11, 0, 0, 123000, tzinfo=UTC)


def reference(
    customer_id: uuid.UUID, known: bool, raw: dict[str, Any], *, channel: str, at: datetime
) -> CustomerContext:
    """The context as it was built before: every part validated on its own,
    the derived fields set through the model."""
    counts = raw.get("per_channel") or {}
    per_channel = PerChannel(**{c: ChannelCounts(**counts[c]) for c in CHANNELS if c in counts})
    each = [getattr(per_channel, c) for c in CHANNELS]
    context = CustomerContext.model_validate(
        {
            **raw,
            "customer_id": customer_id,
            "known": known,
            "attributes": raw.get("attributes") or {},
            "per_channel": per_channel,
            "contacts_24h": sum(c.contacts_24h for c in each),
            "contacts_7d": sum(c.contacts_7d for c in each),
            "contacts_30d": sum(c.contacts_30d for c in each),
            "channels_7d": [c for c in CHANNELS if getattr(per_channel, c).contacts_7d],
            "journeys": raw.get("journeys") or [],
        }
    )
    last = context.last
    context.journey = context.journeys[0] if context.journeys else None
    if last is not None:
        context.repeat = at - last.at <= REPEAT_WINDOW
        context.channel_switch = at - last.at <= SWITCH_WINDOW and last.channel != channel
    return context


def stamp(delta: timedelta) -> str:
    """A time as jsonb writes a timestamptz."""
    return (AT - delta).isoformat()


EMPTY: dict[str, Any] = {"attributes": {}, "per_channel": {}, "journeys": []}
RETURNING: dict[str, Any] = {
    "name": "Ann",
    "tier": "vip",
    "language": "de",
    "segment": "retail",
    "attributes": {"account_manager": "ag-7", "nested": {"a": [1, 2.5, None, True]}},
    "per_channel": {
        "chat": {"contacts_24h": 2, "contacts_7d": 3, "contacts_30d": 9},
        "voice": {"contacts_24h": 0, "contacts_7d": 0, "contacts_30d": 1},
        "fax": {"contacts_24h": 5, "contacts_7d": 5, "contacts_30d": 5},  # not a channel
    },
    "last": {
        "at": stamp(timedelta(hours=3)),
        "channel": "voice",
        "queue": "general",
        "agent": "ag-7",
        "rule": "vip",
    },
    "conversation": {
        "id": "thread-1",
        "started_at": stamp(timedelta(days=2)),
        "last_at": stamp(timedelta(hours=3)),
        "contacts": 3,
        "channels": ["chat", "voice"],
        "last_queue": "general",
        "last_agent": None,
        "open": True,
    },
    "journeys": [
        {
            "ref": "order-1",
            "type": "order",
            "step": "shipped",
            "opened_at": stamp(timedelta(days=4)),
            "updated_at": stamp(timedelta(days=1)),
            "data": {"carrier": "dhl"},
        },
        {
            "ref": "claim-2",
            "type": "claim",
            "step": None,
            "opened_at": stamp(timedelta(days=9)),
            "updated_at": stamp(timedelta(days=8)),
            "data": {},
        },
    ],
}
OLD_CONTACT = {
    **RETURNING,
    "last": {**RETURNING["last"], "at": stamp(timedelta(days=3))},
    "conversation": None,
    "journeys": [],
    "attributes": None,
    "per_channel": None,
}
OFFSET = {  # another session time zone, sparse fractions, keys left out
    "tier": None,
    "per_channel": {"email": {"contacts_30d": 4}},
    "last": {"at": "2026-03-01T12:00:00.5+01:00", "channel": "email"},
}


@pytest.mark.parametrize("raw", [EMPTY, RETURNING, OLD_CONTACT, OFFSET, {}])
@pytest.mark.parametrize("channel", ["chat", "voice"])
def test_the_context_equals_the_one_validated_step_by_step(
    raw: dict[str, Any], channel: str
) -> None:
    customer_id = uuid.uuid4()
    # what the driver hands over: the jsonb decoded afresh for each
    text = orjson.dumps(raw)
    built = build_context(customer_id, True, orjson.loads(text), channel=channel, at=AT)
    expected = reference(customer_id, True, orjson.loads(text), channel=channel, at=AT)
    assert built == expected
    assert built.model_dump() == expected.model_dump()
    assert built.model_dump_json() == expected.model_dump_json()  # as the record stores it


def test_derived_fields() -> None:
    context = build_context(uuid.uuid4(), True, RETURNING, channel="chat", at=AT)
    assert (context.contacts_24h, context.contacts_7d, context.contacts_30d) == (2, 3, 10)
    assert context.channels_7d == ["chat"]
    assert context.repeat and context.channel_switch
    assert context.journey is not None and context.journey.ref == "order-1"
    assert context.last is not None and context.last.at == AT - timedelta(hours=3)


@pytest.mark.parametrize(
    "raw",
    [
        {"per_channel": {"chat": {"contacts_24h": "many"}}},
        {"last": {"channel": "chat"}},
        {"journeys": [{"ref": "x"}]},
        {"attributes": ["not", "an", "object"]},
    ],
)
def test_what_the_function_never_writes_is_refused_as_before(raw: dict[str, Any]) -> None:
    with pytest.raises((ValidationError, TypeError)):
        reference(uuid.uuid4(), True, dict(raw), channel="chat", at=AT)
    with pytest.raises(ValidationError):
        build_context(uuid.uuid4(), True, dict(raw), channel="chat", at=AT)


def test_the_anonymous_context_is_a_customer_nobody_knows() -> None:
    customer_id = uuid.uuid4()
    context = anonymous_context(customer_id)
    assert context == CustomerContext(customer_id=customer_id, known=False)
    assert (
        context.model_dump_json()
        == CustomerContext(customer_id=customer_id, known=False).model_dump_json()
    )


def test_trusted_models_equal_validated_ones() -> None:
    step = OverflowStep(after_seconds=120, priority=55)
    values: dict[str, Any] = {
        "queue": "vip-care",
        "priority": 90,
        "skills": ("vip", "de"),
        "sla_seconds": 120,
        "tags": ("vip",),
        "preferred_agent": "ag-7",
        "overflow": (step,),
        "rule": "vip",
        "ruleset": "v1",
    }
    decision = trusted(Decision, dict(values))
    assert decision == Decision(**values)
    assert decision.model_dump_json() == Decision(**values).model_dump_json()
    assert list(values) == list(Decision.model_fields)  # every field, in order
    routed = {
        "contact_id": uuid7(AT),
        "customer_id": None,
        "duplicate": False,
        "decision": decision,
        "external_id": "x-1",
    }
    assert trusted(Routed, dict(routed)) == Routed(**routed)
    assert list(routed) == list(Routed.model_fields)


def test_uuid7_ids_are_version_7_and_carry_their_time() -> None:
    ids = [uuid7(AT) for _ in range(2000)]  # past one block of random numbers
    assert len(set(ids)) == len(ids)
    for made in ids:
        assert made.version == 7 and made.variant == uuid.RFC_4122
        assert uuid7_time(made) == AT
        assert uuid.UUID(str(made)) == made and hash(uuid.UUID(made.hex)) == hash(made)
        assert made.int >> 128 == 0
    assert abs(uuid7_time(uuid7()) - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    uuid7(AT)  # the parent holds a block of random numbers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, uuid7(AT).bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    os.close(write)
    assert child != uuid7(AT)


def test_now_ms_is_now_cut_to_the_millisecond() -> None:
    import time

    from router.models import now_ms

    before = int(time.time() * 1000)
    seen = [now_ms() for _ in range(2000)]
    after = int(time.time() * 1000)
    assert all(at.tzinfo is UTC and at.microsecond % 1000 == 0 for at in seen)
    assert seen == sorted(seen)
    ms = [round(at.timestamp() * 1000) for at in seen]
    assert before <= ms[0] and ms[-1] <= after
    # within one millisecond every caller gets the same (immutable) value
    assert all(a is b for a, b in zip(seen, seen[1:], strict=False) if a == b)


def test_a_channel_without_contacts_is_one_shared_frozen_count() -> None:
    new = build_context(uuid.uuid4(), False, {}, channel="chat", at=AT)
    returning = build_context(uuid.uuid4(), True, RETURNING, channel="chat", at=AT)
    assert new.per_channel.social is returning.per_channel.social
    assert new.per_channel.voice == ChannelCounts()
    assert anonymous_context(uuid.uuid4()).per_channel.social is new.per_channel.social
    with pytest.raises(ValidationError):
        new.per_channel.voice.contacts_24h = 1  # type: ignore[misc]
    assert PerChannel().chat == ChannelCounts() and new.model_dump()["per_channel"] == {
        c: {"contacts_24h": 0, "contacts_7d": 0, "contacts_30d": 0} for c in CHANNELS
    }
