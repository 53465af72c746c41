"""The outbox rows of events, byte for byte: the ids are ``uuid.uuid5`` of
what they always were, the timestamps ``isoformat`` to the millisecond with
``Z``, the payloads the documented shape, and the JSON text written for an
event's rows the payload's ``orjson`` encoding (made once per event)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from router.models import (
    Contact,
    CustomerContext,
    Decision,
    Identifier,
    OverflowStep,
    uuid7,
    uuid_of_int,
)
from router.outbound import Destinations
from router.outbound.destinations import EVENTS, _time, event_id
from router.settings import WebhookDestination
from router.store import NewRecord
from router.store.deliveries import columns
from router.store.offers import Made

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def dest(name: str, **filters: Any) -> WebhookDestination:
    return WebhookDestination.model_validate(
        {"name": name, "url": "http://127.0.0.1:9/hook", "secrets": [SECRET], **filters}
    )


def reference_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_event_ids_are_uuid5_of_the_contact_and_what_changed() -> None:
    rand = random.Random(7)
    whats = ["expired", "step/0", "step/12", "assigned", "é/ü", ""]
    for n in range(5000):
        contact_id = uuid.UUID(int=rand.getrandbits(128)) if n % 2 else uuid7()
        what = rand.choice(whats) if n % 3 else f"offer/{uuid.UUID(int=rand.getrandbits(128))}"
        made = event_id(contact_id, what)
        expected = uuid.uuid5(EVENTS, f"{contact_id}/{what}")
        assert made == expected and made.bytes == expected.bytes
        assert (made.version, made.variant, made.is_safe) == (5, uuid.RFC_4122, expected.is_safe)
        assert str(made) == str(expected) and hash(made) == hash(expected)


def test_uuid_of_int_is_uuid_of_its_int() -> None:
    for value in (0, 1, (1 << 128) - 1, random.Random(3).getrandbits(128)):
        assert uuid_of_int(value) == uuid.UUID(int=value)
        assert uuid_of_int(value).is_safe is uuid.SafeUUID.unknown


def test_timestamps_are_utc_to_the_millisecond_truncated_with_z() -> None:
    rand = random.Random(11)
    zones = [UTC, timezone(timedelta(hours=-3, minutes=-30)), ZoneInfo("Europe/Paris")]
    base = datetime(2026, 3, 29, 0, 59, 58, tzinfo=UTC)  # Paris changes its offset at 1:00
    times = [
        datetime(1, 1, 2, 0, 0, 1, 999, tzinfo=UTC),
        datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 1, 0, tzinfo=UTC),
    ]
    times += [base + timedelta(microseconds=rand.randrange(0, 10**8)) for _ in range(3000)]
    times += [  # far apart: more seconds than the texts kept
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rand.randrange(0, 2**57))
        for _ in range(3000)
    ]
    for at in times:
        for zone in zones:
            local = at.astimezone(zone)
            assert _time(local) == reference_time(local)
        assert _time(at) == reference_time(at)  # again: from the kept text


def record(*, provider: str = "chat", attributes: dict[str, Any] | None = None) -> NewRecord:
    at = datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)
    return NewRecord(
        contact_id=uuid7(at),
        received_at=at,
        adapter="chat",
        contact=Contact(
            channel="chat",
            provider=provider,
            external_id="chat-1",
            identifiers=(Identifier(kind="email", value="ann@example.com"),),
            text="où est ma commande",
            attributes=attributes or {},
        ),
        customer_id=uuid.UUID(int=42),
        context=CustomerContext(customer_id=uuid.UUID(int=42), known=True),
        decision=Decision(
            queue="support",
            priority=60,
            skills=("fr",),
            tags=("chat",),
            overflow=(OverflowStep(after_seconds=90, queue="general"),),
            rule="default",
            ruleset="v1",
        ),
        trace=None,
        timings={},
        lifetime=3600.0,
    )


def test_routed_rows_hold_the_documented_payload_encoded_once() -> None:
    r = record(provider="zendesk", attributes={"ticket_id": "T-9"})
    rows = Destinations([dest("one"), dest("two"), dest("mail", channels=["email"])]).routed(r)
    assert [x.destination for x in rows] == ["one", "two"]
    expected = {
        "type": "contact.routed",
        "timestamp": "2026-03-01T12:00:05.123Z",
        "data": {
            "contact_id": str(r.contact_id),
            "customer_id": "00000000-0000-0000-0000-00000000002a",
            "adapter": "chat",
            "channel": "chat",
            "external_id": "chat-1",
            "decision": r.decision.model_dump(mode="json"),
            "ticket_id": "T-9",
        },
    }
    for x in rows:
        assert (x.event_type, x.contact_id, x.payload) == ("contact.routed", r.contact_id, expected)
        assert list(x.payload["data"]) == list(expected["data"])  # the keys' order too
        assert x.body == orjson.dumps(expected).decode()
        assert x.delivery_id.version == 7
    assert rows[0].delivery_id != rows[1].delivery_id
    assert columns(rows)[4] == [orjson.dumps(expected).decode()] * 2


def test_offered_rows_have_their_ids_and_payload() -> None:
    at = datetime(2026, 3, 1, 12, 0, 5, 987654, tzinfo=UTC)
    m = Made(
        offer_id=uuid.UUID("0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        contact_id=uuid7(at),
        agent_id="ann",
        queue="support",
        channel="chat",
        units=2,
        offered_at=at,
        expires_at=at + timedelta(seconds=30, microseconds=12_500),
        adapter="chat",
        offers=3,
        customer_id=None,
        external_id="chat-7",
    )
    rows = Destinations([dest("one"), dest("two"), dest("steps", events=["contact.step"])]).offered(
        [m, m]
    )
    assert [x.destination for x in rows] == ["one", "two", "one", "two"]
    event = uuid.uuid5(EVENTS, f"{m.contact_id}/offer/{m.offer_id}")
    expected = {
        "type": "contact.offered",
        "timestamp": "2026-03-01T12:00:05.987Z",
        "data": {
            "contact_id": str(m.contact_id),
            "customer_id": None,
            "adapter": "chat",
            "channel": "chat",
            "external_id": "chat-7",
            "agent": "ann",
            "offer_id": "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "queue": "support",
            "units": 2,
            "offered_at": "2026-03-01T12:00:05.987Z",
            "expires_at": "2026-03-01T12:00:36.000Z",
            "offer": 3,
        },
    }
    for x in rows:
        assert x.delivery_id == uuid.uuid5(event, x.destination)
        assert x.payload == expected and list(x.payload["data"]) == list(expected["data"])
        assert x.body == orjson.dumps(expected).decode()


def test_events_rows_take_ids_from_the_given_event_id() -> None:
    given = uuid.uuid4()
    rows = Destinations([dest("one"), dest("two")]).events(
        "contact.step",
        adapter="chat",
        channel="chat",
        queue="support",
        contact_id=None,
        data={"n": 1},
        at=datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=2))),
        event_id=given,
    )
    assert [x.delivery_id for x in rows] == [uuid.uuid5(given, "one"), uuid.uuid5(given, "two")]
    assert rows[0].payload["timestamp"] == "2026-02-28T22:00:00.000Z"
    assert rows[0].body == orjson.dumps(rows[0].payload).decode()


def test_a_decisions_own_json_is_orjsons_of_its_dump() -> None:
    # the routed event puts the decision's model_dump_json in its text as it is
    rand = random.Random(5)
    odd = [chr(c) for c in range(0x80)] + ["\u2028", "\ufeff", "é", "\U0001f600", '"', "\\"]
    for _ in range(300):
        text = "".join(rand.choice(odd) for _ in range(12))
        decision = Decision(
            queue=text,
            priority=rand.randrange(-(2**40), 2**40),
            skills=(text, "fr"),
            sla_seconds=rand.choice([None, 0, 86400]),
            tags=(text[::-1],),
            preferred_agent=rand.choice([None, text]),
            overflow=(OverflowStep(after_seconds=5, queue=text, drop_skills=("fr",)),),
            rule=None,
            ruleset=text,
        )
        expected = orjson.dumps(decision.model_dump(mode="json")).decode()
        assert decision.model_dump_json() == expected
