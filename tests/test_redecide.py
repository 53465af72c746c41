"""A stored contact decided again: from the record's snapshots, at the moment it
was received, with a trace or without; erased and unreadable records refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from router import replays as replay
from router.errors import RouterError
from router.models import Contact, CustomerContext
from router.redecide import Erased, NotRedecidable, Unreadable, redecide, refuse_erased
from router.rules import Ruleset, load_ruleset_text
from router.store import Snapshot

RULES = """\
queues: {general: {}, vip: {}, office: {}}
calendars:
  hours:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
defaults: {queue: general}
rules:
  - name: gold-to-vip
    when: {customer.tier: gold}
    route: {queue: vip}
  - name: open-hours
    when: {within: hours}
    route: {queue: office}
"""

#: a Monday, 12:00 and 20:00 in Berlin
OPEN = datetime(2026, 3, 2, 11, tzinfo=UTC)
CLOSED = datetime(2026, 3, 2, 19, tzinfo=UTC)


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset_text(RULES, "test.yaml")


def stored(tier: str | None = None, **contact: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The snapshots as a record keeps them: the models' JSON, read back."""
    seen = Contact.model_validate(
        {"channel": "chat", "provider": "test", "external_id": "x-1", **contact}
    )
    customer = CustomerContext(customer_id=uuid.UUID(int=1), known=True, tier=tier)
    return orjson.loads(seen.model_dump_json()), orjson.loads(customer.model_dump_json())


def test_decided_again_at_the_moment_received(ruleset: Ruleset) -> None:
    contact, context = stored()
    at_noon = redecide(ruleset, contact=contact, context=context, received_at=OPEN)
    assert (at_noon.decision.queue, at_noon.decision.rule) == ("office", "open-hours")
    at_night = redecide(ruleset, contact=contact, context=context, received_at=CLOSED)
    assert (at_night.decision.queue, at_night.decision.rule) == ("general", None)
    contact, context = stored(tier="gold")
    gold = redecide(ruleset, contact=contact, context=context, received_at=CLOSED)
    assert (gold.decision.queue, gold.decision.rule) == ("vip", "gold-to-vip")
    assert gold.decision.ruleset == ruleset.version


def test_the_trace_is_opt_out(ruleset: Ruleset) -> None:
    contact, context = stored()
    traced = redecide(ruleset, contact=contact, context=context, received_at=OPEN)
    assert [entry["rule"] for entry in traced.trace] == ["gold-to-vip", "open-hours"]
    assert [entry["matched"] for entry in traced.trace] == [False, True]
    bulk = redecide(ruleset, contact=contact, context=context, received_at=OPEN, explain=False)
    assert bulk.decision == traced.decision
    assert [entry["rule"] for entry in bulk.trace] == ["open-hours"]


def test_erased_records_are_refused(ruleset: Ruleset) -> None:
    # what erasure leaves of a contact: it would still read as a contact
    erased = {"channel": "chat", "provider": "test", "external_id": "x-1", "erased": True}
    context = {"known": True, "tier": None, "erased": True}
    with pytest.raises(Erased, match="personal data was erased"):
        redecide(ruleset, contact=erased, context=context, received_at=OPEN)
    contact, context = stored()
    redacted = {**contact, "redacted": True}
    with pytest.raises(Erased, match="personal data of an erased customer was removed"):
        redecide(ruleset, contact=redacted, context=context, received_at=OPEN)
    with pytest.raises(Erased):
        refuse_erased(redacted)
    refuse_erased(contact)  # a whole record passes


def test_unreadable_snapshots_are_refused(ruleset: Ruleset) -> None:
    contact, context = stored()
    with pytest.raises(Unreadable, match="^the stored snapshot no longer reads: "):
        redecide(ruleset, contact={**contact, "channel": "fax"}, context=context, received_at=OPEN)
    with pytest.raises(Unreadable):
        redecide(ruleset, contact=contact, context={"known": True}, received_at=OPEN)


def test_refusals_are_router_errors() -> None:
    assert issubclass(Erased, NotRedecidable) and issubclass(Unreadable, NotRedecidable)
    assert issubclass(NotRedecidable, RouterError)


async def test_replay_counts_what_it_cannot_decide(
    ruleset: Ruleset,
) -> None:
    contact, context = stored()
    gold_contact, gold_context = stored(tier="gold")
    decision = redecide(ruleset, contact=contact, context=context, received_at=OPEN).decision
    old = orjson.loads(decision.model_dump_json())
    erased = {"channel": "chat", "provider": "test", "external_id": "x-1", "erased": True}
    rows = [
        (contact, context, old),  # unchanged
        (gold_contact, gold_context, old),  # office -> vip
        (erased, {"known": True, "erased": True}, {"queue": 7}),  # erased wins
        ({**contact, "redacted": True}, context, old),
        ({**contact, "channel": "fax"}, context, old),  # snapshot unreadable
        (contact, context, {"queue": 7}),  # stored decision unreadable
    ]

    async def received() -> AsyncIterator[Snapshot]:
        for n, (c, x, d) in enumerate(rows):
            yield Snapshot(
                contact_id=uuid.UUID(int=n), received_at=OPEN, contact=c, context=x, decision=d
            )

    report = await replay.decide_again(received(), ruleset)
    assert (report.total, report.unchanged, report.changed) == (6, 1, 1)
    assert (report.erased, report.unreadable) == (2, 2)
    assert report.moves == {("office", "vip"): 1}
