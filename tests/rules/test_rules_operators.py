"""Every operator, on typed fields and on free-form attributes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from router.models import Contact, CustomerContext, LastContact
from router.rules import Ruleset
from tests.support.rules import NOW, contact, customer


def matches(
    rules: Callable[[str], Ruleset],
    when: str,
    c: Contact | None = None,
    cu: CustomerContext | None = None,
) -> bool:
    ruleset = rules(f"rules:\n  - name: hit\n    when: {{{when}}}\n    route: {{queue: vip}}\n")
    evaluation = ruleset.decide(c or contact(), cu or customer(), NOW)
    fast = ruleset.decide(c or contact(), cu or customer(), NOW, explain=False)
    assert fast.decision == evaluation.decision  # the traced and the fast path agree
    return evaluation.decision.rule == "hit"


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # equality: text is case-insensitive; numbers and text compare by value
    ("customer.tier: vip", {}, {"tier": "VIP"}, True),
    ("customer.tier: vip", {}, {"tier": "gold"}, False),
    ("customer.tier: vip", {}, {}, False),
    ("customer.tier: {eq: vip}", {}, {"tier": "vip"}, True),
    ("customer.tier: {ne: vip}", {}, {"tier": "gold"}, True),
    ("customer.tier: {ne: vip}", {}, {}, True),  # missing is not vip
    ("customer.tier: null", {}, {}, True),
    ("customer.known: true", {}, {"known": True}, True),
    ("customer.known: false", {}, {"known": True}, False),
    ("customer.contacts_24h: 2", {}, {"contacts_24h": 2}, True),
    ("contact.attributes.ivr_digits: 1", {"attributes": {"ivr_digits": "1"}}, {}, True),
    ("contact.attributes.ivr_digits: '1'", {"attributes": {"ivr_digits": 1}}, {}, True),
    ("contact.attributes.public: true", {"attributes": {"public": True}}, {}, True),
    ("contact.attributes.public: true", {"attributes": {"public": 1}}, {}, False),
    ("contact.attributes.public: true", {}, {}, False),
    ("contact.channel: CHAT", {}, {}, True),
    # sets
    ("customer.tier: [gold, vip]", {}, {"tier": "Gold"}, True),
    ("customer.tier: {in: [gold, vip]}", {}, {"tier": "silver"}, False),
    ("customer.tier: {not_in: [gold, vip]}", {}, {"tier": "silver"}, True),
    ("contact.channel: {not_in: [email, voice]}", {}, {}, True),
    (
        "contact.attributes.to: {any_of: [b2b@x.org, c@x.org]}",
        {"attributes": {"to": ["B2B@x.org"]}},
        {},
        True,
    ),
    (
        "contact.attributes.to: {any_of: [b2b@x.org]}",
        {"attributes": {"to": ["me@x.org"]}},
        {},
        False,
    ),
    (
        "contact.attributes.to: {contains: b2b@x.org}",
        {"attributes": {"to": ["b2b@x.org"]}},
        {},
        True,
    ),
    (
        "contact.identifier_kinds: {contains: email}",
        {"identifiers": [{"kind": "email", "value": "a@b.c"}]},
        {},
        True,
    ),
    (
        "contact.identifier_kinds: {any_of: [phone]}",
        {"identifiers": [{"kind": "email", "value": "a@b.c"}]},
        {},
        False,
    ),
    # numbers and ranges
    ("customer.contacts_24h: {gt: 2}", {}, {"contacts_24h": 3}, True),
    ("customer.contacts_24h: {gt: 3}", {}, {"contacts_24h": 3}, False),
    ("customer.contacts_24h: {gte: 3}", {}, {"contacts_24h": 3}, True),
    ("customer.contacts_24h: {lt: 3}", {}, {"contacts_24h": 3}, False),
    ("customer.contacts_24h: {lte: 3}", {}, {"contacts_24h": 3}, True),
    ("customer.contacts_24h: {between: [2, 4]}", {}, {"contacts_24h": 4}, True),
    ("customer.contacts_24h: {between: [2, 4]}", {}, {"contacts_24h": 5}, False),
    ("customer.contacts_24h: {gte: 1, lt: 3}", {}, {"contacts_24h": 2}, True),
    (
        "contact.attributes.queue_seconds: {gte: 300}",
        {"attributes": {"queue_seconds": 301}},
        {},
        True,
    ),
    (
        "contact.attributes.queue_seconds: {gte: 300}",
        {"attributes": {"queue_seconds": "450"}},
        {},
        True,
    ),
    (
        "contact.attributes.queue_seconds: {gte: 300}",
        {"attributes": {"queue_seconds": "n/a"}},
        {},
        False,
    ),
    (
        "contact.attributes.queue_seconds: {gte: 300}",
        {"attributes": {"queue_seconds": True}},
        {},
        False,
    ),
    ("time.hour: {between: [9, 17]}", {}, {}, True),  # 12:00 in Berlin
    ("time.weekday: mon", {}, {}, True),
    ("time.hour: 12", {}, {}, True),  # defaults.timezone is Europe/Berlin
    ("time.date: 2026-03-02", {}, {}, True),
    ("time.now: {gte: 2026-03-02T11:00:00Z}", {}, {}, True),
    ("time.now: {lt: 2026-03-02T12:00:01}", {}, {}, True),  # naive: Berlin time
    ("time.now: {lt: 2026-03-02T11:59:59}", {}, {}, False),
    # text
    ("contact.subject: {contains: refund}", {"subject": "Need a REFUND"}, {}, True),
    ("contact.subject: {contains: refund}", {"subject": "Delivery"}, {}, False),
    ("contact.subject: {contains: refund}", {}, {}, False),
    (
        "contact.subject: {contains_any: [refund, money back]}",
        {"subject": "I want my Money  back"},
        {},
        True,
    ),
    ("contact.subject: {contains_any: [return]}", {"subject": "returning customer"}, {}, False),
    ("contact.subject: {contains_any: ['return*']}", {"subject": "returning customer"}, {}, True),
    ("contact.subject: {contains_any: [return]}", {"subject": "Re: return."}, {}, True),
    ("contact.subject: {starts_with: 're:'}", {"subject": "RE: hello"}, {}, True),
    ("contact.subject: {starts_with: 'fw:'}", {"subject": "RE: hello"}, {}, False),
    ("contact.subject: {ends_with: '?'}", {"subject": "where?"}, {}, True),
    (r"contact.text: {matches: '\b\d{3}-\d{7}\b'}", {"text": "order 302-1234567 pls"}, {}, True),
    (r"contact.text: {matches: '^\d+$'}", {"text": "order 302"}, {}, False),
    ("contact.text: {matches: 'ORDER'}", {"text": "my order"}, {}, True),  # case-insensitive
    (
        "contact.attributes.ivr_speech: {contains_any: [refund]}",
        {"attributes": {"ivr_speech": "a refund"}},
        {},
        True,
    ),
    ("contact.attributes.ivr_speech: {matches: x}", {"attributes": {"ivr_speech": 5}}, {}, False),
    # presence and emptiness
    ("contact.subject: {exists: true}", {"subject": ""}, {}, True),
    ("contact.subject: {exists: false}", {}, {}, True),
    ("contact.subject: {empty: true}", {"subject": "  "}, {}, True),
    ("contact.subject: {empty: false}", {"subject": "x"}, {}, True),
    (
        "contact.attributes.attachments: {empty: false}",
        {"attributes": {"attachments": [1]}},
        {},
        True,
    ),
    (
        "contact.attributes.attachments: {empty: false}",
        {"attributes": {"attachments": []}},
        {},
        False,
    ),
    ("contact.attributes.attachments: {empty: true}", {}, {}, True),
    ("customer.last: {exists: false}", {}, {}, True),
    ("customer.attributes.deep.er: {exists: true}", {}, {"attributes": {"deep": {"er": 0}}}, True),
    ("customer.attributes.deep.er: {exists: true}", {}, {"attributes": {"deep": 3}}, False),
    # groups
    (
        "any: [{customer.tier: vip}, {customer.contacts_24h: {gte: 5}}]",
        {},
        {"contacts_24h": 5},
        True,
    ),
    ("any: {customer.tier: vip, customer.segment: b2b}", {}, {"segment": "B2B"}, True),
    ("any: {customer.tier: vip, customer.segment: b2b}", {}, {}, False),
    ("all: [{customer.tier: vip}, {customer.known: true}]", {}, {"tier": "vip"}, True),
    ("not: {customer.tier: vip}", {}, {"tier": "vip"}, False),
    ("not: {customer.tier: vip}", {}, {}, True),
    ("not: {customer.tier: vip, customer.known: true}", {}, {"tier": "vip", "known": False}, True),
    # calendars: Monday 12:00 in Berlin is within office hours
    ("within: office", {}, {}, True),
    ("outside: office", {}, {}, False),
]


@pytest.mark.parametrize(("when", "contact_fields", "customer_fields", "expected"), CASES)
def test_operator(
    rules: Callable[[str], Ruleset],
    when: str,
    contact_fields: dict[str, Any],
    customer_fields: dict[str, Any],
    expected: bool,
) -> None:
    assert matches(rules, when, contact(**contact_fields), customer(**customer_fields)) is expected


@pytest.mark.parametrize(
    ("when", "ago", "expected"),
    [
        ("customer.last.at: {within: 24h}", timedelta(hours=23), True),
        ("customer.last.at: {within: 24h}", timedelta(hours=25), False),
        ("customer.last.at: {older_than: 3d}", timedelta(days=4), True),
        ("customer.last.at: {older_than: 3d}", timedelta(days=2), False),
        ("customer.last.at: {within: 1h30m}", timedelta(minutes=89), True),
        ("customer.last.at: {gte: 2026-03-01T00:00:00Z}", timedelta(hours=1), True),
        ("customer.last.at: {between: [2026-01-01, 2026-02-01]}", timedelta(hours=1), False),
    ],
)
def test_durations_on_times(
    rules: Callable[[str], Ruleset], when: str, ago: timedelta, expected: bool
) -> None:
    last = LastContact(at=NOW - ago, channel="chat", queue="returns")
    assert matches(rules, when, contact(), customer(last=last)) is expected


def test_durations_on_missing_and_naive_times(rules: Callable[[str], Ruleset]) -> None:
    assert not matches(rules, "customer.last.at: {within: 24h}", contact(), customer())
    naive = LastContact(at=(NOW - timedelta(hours=1)).replace(tzinfo=None), channel="chat")
    assert matches(rules, "customer.last.at: {within: 24h}", contact(), customer(last=naive))
    sent = contact(attributes={"opened": (NOW - timedelta(minutes=5)).isoformat()})
    assert matches(rules, "contact.attributes.opened: {within: 10m}", sent, customer())
    assert not matches(rules, "contact.attributes.opened: {within: 10m}", contact(), customer())


def test_lists_of_records_only_take_presence_tests() -> None:
    from router.rules.conditions import _OPERATORS, Invalid
    from router.rules.fields import Field, Kind

    records = Field("customer.journeys", Kind.LIST, lambda i: [], (), Kind.OBJECT)
    for op in ("contains", "contains_any", "any_of"):
        kinds, build = _OPERATORS[op]
        with pytest.raises(Invalid, match="is a list of records"):
            build(None, records, ["x"])  # type: ignore[arg-type]
