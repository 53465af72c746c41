"""What every adapter shares: the answer to a routed delivery."""

from __future__ import annotations

import uuid

import orjson
from asyncpg.pgproto.pgproto import UUID as DriverUUID

from adapters import AdapterSpec, build
from adapters.base import Parsed
from router.models import Decision, OverflowStep, Routed


def routed(decision: Decision, customer: uuid.UUID | None) -> Routed:
    return Routed(
        contact_id=uuid.uuid4(),
        customer_id=customer,
        duplicate=customer is None,
        decision=decision,
        external_id="ext-1",
    )


def test_the_answer_is_each_routed_contact_as_its_model_dumps_it_but_the_external_id() -> None:
    adapter = build(AdapterSpec(name="chat", kind="chat", secrets=("s",)))
    full = Decision(
        queue="vip \u00e9\u6f22",
        priority=90,
        skills=("de", "billing"),
        sla_seconds=120,
        tags=("vip", 'quote"s'),
        preferred_agent="agent-7",
        overflow=(
            OverflowStep(after_seconds=60, queue="general", drop_skills=("de",), priority=50),
            OverflowStep(after_seconds=300),
        ),
        rule="vip",
        ruleset="r-1a2b3c",
    )
    bare = Decision(queue="general", priority=0, ruleset="r-1a2b3c")
    # a customer id read from the database is the driver's UUID (a subclass)
    contacts = [routed(full, DriverUUID(str(uuid.uuid4()))), routed(bare, None)]
    reply = adapter.reply(contacts, Parsed(contacts=[], ignored=2))
    expected = {
        "contacts": [r.model_dump(mode="json", exclude={"external_id"}) for r in contacts],
        "ignored": 2,
    }
    assert reply.body == orjson.dumps(expected)
    assert (reply.status, reply.content_type) == (200, "application/json")


def test_the_answer_names_every_field_of_routed_and_of_decision() -> None:
    # the answer is built from the fields by name: a new field must show up in it
    decision = Decision(queue="general", priority=0, ruleset="r")
    assert list(decision.__dict__) == list(Decision.model_fields)
    adapter = build(AdapterSpec(name="chat", kind="chat", secrets=("s",)))
    reply = adapter.reply([routed(decision, uuid.uuid4())], Parsed(contacts=[]))
    [answer] = orjson.loads(reply.body)["contacts"]
    assert list(answer) == [f for f in Routed.model_fields if f != "external_id"]
