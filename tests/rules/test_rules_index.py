"""The rule index: which rules a contact tries, and that it never changes a decision."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.models import CHANNELS, Contact, CustomerContext
from router.rules import Ruleset, load_ruleset_text
from router.rules.fields import Input
from tests.support.rules import BASE, NOW, contact, customer

INDEXED = """\
rules:
  - {name: mark, continue: true, when: {customer.contacts_24h: {gte: 2}}, route: {tags: [again]}}
  - {name: off, enabled: false, when: {customer.tier: vip}, route: {queue: returns}}
  - name: vip-chat
    when: {contact.channel: chat, customer.tier: [vip, platinum], contact.language: de}
    route: {queue: vip}
  - name: vip-mail
    when: {contact.channel: [email, social], customer.tier: vip}
    route: {queue: vip}
  - name: german
    when: {contact.language: {in: [de, de-at]}, not: {contact.channel: voice}}
    route: {queue: returns}
  - name: not-voice
    when: {contact.channel: {ne: voice}, customer.tier: gold}
    route: {queue: billing}
  - {name: digits, when: {contact.attributes.digits: "3"}, route: {queue: billing}}
"""


def tried(ruleset: Ruleset, c: Contact, cu: CustomerContext) -> list[str]:
    return [rule.name for rule, _ in ruleset.index.candidates(Input(c, cu, NOW))]


def test_a_contact_tries_only_the_rules_its_values_can_match(
    rules: Callable[[str], Ruleset],
) -> None:
    ruleset = rules(INDEXED)
    assert set(ruleset.index.fields) == {"contact.channel", "customer.tier", "contact.language"}
    # disabled rules are not indexed; rules without indexed tests are always tried
    assert tried(ruleset, contact("chat"), customer()) == ["mark", "digits"]
    assert tried(ruleset, contact("chat", language="DE"), customer(tier="VIP")) == [
        "mark",
        "vip-chat",
        "german",
        "digits",
    ]
    # a condition inside not (or any) is never used to leave a rule out
    assert tried(ruleset, contact("voice", language="de"), customer(tier="vip")) == [
        "mark",
        "german",
        "digits",
    ]
    assert tried(ruleset, contact("social"), customer(tier="gold")) == [
        "mark",
        "not-voice",
        "digits",
    ]
    # the same values give the same (remembered) list
    first = ruleset.index.candidates(Input(contact("email"), customer(tier="vip"), NOW))
    again = ruleset.index.candidates(Input(contact("email"), customer(tier="vip"), NOW))
    assert first is again


def test_index_keeps_continue_rules_and_decisions(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(INDEXED)
    c, cu = contact("chat", language="de"), customer(tier="platinum", contacts_24h=3)
    fast = ruleset.decide(c, cu, NOW, explain=False)
    slow = ruleset.decide(c, cu, NOW)
    assert fast.decision == slow.decision
    assert (fast.decision.rule, fast.decision.tags) == ("vip-chat", ("again",))
    # the trace still lists every enabled rule tried, in order
    assert [t["rule"] for t in slow.trace] == ["mark", "vip-chat"]


def test_unhashable_and_numeric_values(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(
        INDEXED
        + "  - {name: code, when: {contact.attributes.digits: [1, x]}, route: {queue: vip}}\n"
    )
    assert "contact.attributes.digits" in ruleset.index.fields
    for value, rule in [
        (3, "digits"),
        ("3", "digits"),
        (1, "code"),
        ("X", "code"),
        (3.0, "digits"),
    ]:
        c = contact("voice", attributes={"digits": value})
        assert ruleset.decide(c, customer(), NOW, explain=False).decision.rule == rule
    for value in ([3], {"a": 3}, None, True):
        c = contact("voice", attributes={"digits": value})
        assert ruleset.decide(c, customer(), NOW, explain=False).decision.rule is None


def test_no_indexable_tests_means_every_rule_is_tried(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(
        "rules:\n"
        "  - {name: a, when: {customer.contacts_24h: {gte: 2}}, route: {queue: vip}}\n"
        "  - {name: b, route: {queue: billing}}\n"
    )
    assert ruleset.index.fields == ()
    assert tried(ruleset, contact(), customer()) == ["a", "b"]


# -- indexed and unindexed decisions agree, on random rules and inputs -----------------

QUEUES = ["general", "chat-q", "vip", "returns", "billing"]
TIERS = ["vip", "VIP", "gold", "silver", ""]
LANGUAGES = ["de", "DE", "en", "fr"]
CODES = ["1", 1, 2, "x", True]

one = st.sampled_from
tests_of: dict[str, st.SearchStrategy[Any]] = {
    "contact.channel": one(CHANNELS)
    | st.lists(one(CHANNELS), min_size=1, max_size=3)
    | st.builds(lambda c: {"ne": c}, one(CHANNELS))
    | st.builds(lambda c: {"not_in": c}, st.lists(one(CHANNELS), min_size=1, max_size=2)),
    "customer.tier": one([*TIERS, None]) | st.lists(one([*TIERS, None]), min_size=1, max_size=3),
    "contact.language": one(LANGUAGES)
    | st.builds(lambda v: {"in": v}, st.lists(one(LANGUAGES), min_size=1, max_size=2))
    | st.builds(lambda v: {"starts_with": v}, one(["d", "e"])),
    "customer.known": st.booleans(),
    "customer.contacts_24h": st.integers(0, 3)
    | st.builds(lambda n: {"gte": n}, st.integers(0, 3))
    | st.lists(st.integers(0, 3), min_size=1, max_size=2),
    "contact.attributes.code": one(CODES) | st.lists(one(CODES), min_size=1, max_size=2),
    "time.weekday": one(["mon", "tue", "sat"]) | st.lists(one(["mon", "sun"]), min_size=1),
    "not": st.builds(lambda t: {"customer.tier": t}, one(TIERS)),
    # the same field tested twice in one rule: both tests must hold
    "all": st.builds(
        lambda t, c: [{"customer.tier": t}, {"contact.channel": c}],
        st.lists(one(TIERS), min_size=1, max_size=3),
        st.lists(one(CHANNELS), min_size=1, max_size=3),
    ),
    "any": st.builds(
        lambda c, t: [{"contact.channel": c}, {"customer.tier": t}], one(CHANNELS), one(TIERS)
    ),
}
whens = st.dictionaries(one(sorted(tests_of)), st.just(None), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: tests_of[k] for k in keys})
)
rule_specs = st.fixed_dictionaries(
    {
        "when": whens,
        "continue": st.booleans(),
        "rollout": st.none() | st.integers(0, 100),
        "enabled": st.sampled_from([True, True, True, False]),
        "queue": one(QUEUES),
        "priority": st.integers(0, 100),
    }
)


def rules_text(specs: list[dict[str, Any]]) -> str:
    rules = []
    for n, spec in enumerate(specs):
        rule: dict[str, Any] = {"name": f"r{n}", "enabled": spec["enabled"]}
        if spec["when"]:
            rule["when"] = spec["when"]
        if spec["rollout"] is not None:
            rule["rollout"] = spec["rollout"]
        if spec["continue"]:
            rule.update({"continue": True, "route": {"tags": [f"t{n}"], "priority_boost": 3}})
        else:
            rule["route"] = {"queue": spec["queue"], "priority": spec["priority"]}
        rules.append(rule)
    return BASE + "rules: " + orjson.dumps(rules).decode() + "\n"


inputs = st.tuples(
    st.builds(
        lambda channel, language, code: contact(
            channel, language=language, attributes={} if code == "-" else {"code": code}
        ),
        one(CHANNELS),
        one([*LANGUAGES, None]),
        one([*CODES, "-", None, [1], {"a": 1}, 1.0, "X"]),
    ),
    st.builds(
        lambda tier, known, n, cid: customer(
            tier=tier, known=known, contacts_24h=n, customer_id=uuid.UUID(int=cid)
        ),
        one([*TIERS, None, "Gold"]),
        st.booleans(),
        st.integers(0, 3),
        st.integers(0, 2**64),
    ),
    one([NOW, datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 8, 9, tzinfo=UTC)]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(rule_specs, min_size=1, max_size=10),
    cases=st.lists(inputs, min_size=1, max_size=25),
)
def test_indexed_and_unindexed_decisions_are_the_same(
    specs: list[dict[str, Any]], cases: list[tuple[Contact, CustomerContext, datetime]]
) -> None:
    ruleset = load_ruleset_text(rules_text(specs), "random.yaml")
    for c, cu, now in cases:
        indexed = ruleset.decide(c, cu, now, explain=False)
        every_rule = ruleset.decide(c, cu, now)  # the traced path tries every rule in order
        assert indexed.decision == every_rule.decision
        assert indexed.rollout == every_rule.rollout
        # a rule the index leaves out has a condition that fails
        i = Input(c, cu, now)
        kept = {rule.name for rule, _ in ruleset.index.candidates(i)}
        for rule in ruleset.rules:
            if rule.enabled and rule.name not in kept:
                assert not all(check.test(i) for check in rule.checks), rule.name
