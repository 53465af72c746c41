"""Deciding: order, continue rules, actions, overflow, rollouts, traces."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.models import CHANNELS, Contact, CustomerContext, Decision, LastContact, OverflowStep
from router.rules import Evaluation, Ruleset, load_ruleset_text
from router.rules.engine import rollout_for
from router.rules.fields import Catalog, Kind
from tests.support.rules import BASE, NOW, contact, customer

ROUTING = """\
rules:
  - name: repeat
    continue: true
    when: {customer.contacts_24h: {gte: 2}}
    route: {tags: [repeat], priority_boost: 10, skills: [patience]}
  - name: email-tag
    continue: true
    when: {contact.channel: email}
    route: {tags: [mail, repeat]}
  - name: vip
    when: {customer.tier: vip}
    route:
      queue: vip
      priority: 95
      sla: 2m
      skills: [senior]
      preferred_agent: {from: customer.attributes.account_manager, fallback: team-lead}
      overflow:
        - {after: 1m, priority_boost: 10}
        - {after: 3m, queue: general, drop_skills: [vip, senior], priority: 60}
  - name: back-again
    when: {customer.last.at: {within: 24h}}
    route: {queue: {from: customer.last.queue, fallback: returns}, priority_boost: -60}
  - name: billing
    when: {contact.subject: {contains_any: [invoice]}}
    route: {queue: billing, preferred_agent: agent-7}
"""


def test_first_matching_rule_decides_with_defaults_filling_in(
    rules: Callable[[str], Ruleset],
) -> None:
    ruleset = rules(ROUTING)
    evaluation = ruleset.decide(contact("email", subject="Invoice 12"), customer(), NOW)
    assert evaluation.decision == Decision(
        queue="billing",
        priority=50,
        sla_seconds=3600,
        tags=("mail", "repeat"),
        preferred_agent="agent-7",
        rule="billing",
        ruleset=ruleset.version,
    )
    assert evaluation.rollout is None


def test_defaults_per_channel(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(ROUTING)
    chat = ruleset.decide(contact("chat"), customer(), NOW)
    assert (chat.decision.queue, chat.decision.sla_seconds, chat.decision.rule) == (
        "chat-q",
        120,
        None,
    )
    voice = ruleset.decide(contact("voice"), customer(), NOW).decision
    assert (voice.queue, voice.skills, voice.priority) == ("general", ("basic",), 50)
    assert chat.trace[-1] == {"rule": None, "matched": True, "why": "defaults for chat"}


def test_continue_rules_add_tags_skills_and_boosts(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(ROUTING)
    cu = customer(tier="vip", contacts_24h=3, attributes={"account_manager": "agent-1"})
    evaluation = ruleset.decide(contact("email", subject="hi"), cu, NOW)
    decision = evaluation.decision
    assert decision.rule == "vip"
    assert decision.priority == 100  # 95 + 10, capped
    assert decision.tags == ("repeat", "mail")
    assert decision.skills == ("vip", "senior", "patience")  # queue, rule, continue rules
    assert decision.preferred_agent == "agent-1"
    assert decision.overflow == (
        OverflowStep(after_seconds=60, priority=100),
        OverflowStep(
            after_seconds=180, queue="general", drop_skills=("vip", "senior"), priority=60
        ),
    )
    assert [(t["rule"], t["matched"], t.get("continue")) for t in evaluation.trace] == [
        ("repeat", True, True),
        ("email-tag", True, True),
        ("vip", True, None),
    ]


def test_preferred_agent_fallback_and_overflow_relative_to_priority(
    rules: Callable[[str], Ruleset],
) -> None:
    decision = rules(ROUTING).decide(contact("chat"), customer(tier="vip"), NOW).decision
    assert decision.preferred_agent == "team-lead"
    assert decision.overflow[0].priority == 100  # 95 + 10 (capped at 100)
    assert decision.priority == 95


def test_queue_from_context_with_fallback(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(ROUTING)

    def last(queue: str | None) -> CustomerContext:
        return customer(last=LastContact(at=NOW - timedelta(hours=2), channel="chat", queue=queue))

    first = ruleset.decide(contact("chat"), last("billing"), NOW).decision
    assert (first.queue, first.rule, first.priority) == ("billing", "back-again", 0)
    assert ruleset.decide(contact("chat"), last("gone-queue"), NOW).decision.queue == "returns"
    assert ruleset.decide(contact("chat"), last(None), NOW).decision.queue == "returns"


def test_trace_says_why(rules: Callable[[str], Ruleset]) -> None:
    evaluation = rules(ROUTING).decide(contact("chat", subject="an invoice"), customer(), NOW)
    assert evaluation.trace == [
        {"rule": "repeat", "matched": False, "why": "customer.contacts_24h >= 2"},
        {"rule": "email-tag", "matched": False, "why": "contact.channel = email"},
        {"rule": "vip", "matched": False, "why": "customer.tier = vip"},
        {"rule": "back-again", "matched": False, "why": "customer.last.at within 24h"},
        {"rule": "billing", "matched": True, "why": "contact.subject contains any [invoice]"},
    ]
    orjson.dumps(evaluation.trace)


def test_rollout_is_stable_and_splits_customers(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(
        "rules:\n"
        "  - name: new-flow\n"
        "    rollout: 25%\n"
        "    when: {contact.channel: email}\n"
        "    route: {queue: returns}\n"
    )
    inside = 0
    for n in range(4000):
        cu = customer(customer_id=uuid.UUID(int=n * 7919 + 13))
        first = ruleset.decide(contact("email"), cu, NOW)
        again = ruleset.decide(contact("email"), cu, NOW + timedelta(days=3), explain=False)
        assert first.decision.queue == again.decision.queue  # always the same side
        assert first.rollout == again.rollout
        if first.rollout == "new-flow:in":
            inside += 1
            assert first.decision.rule == "new-flow"
            assert first.trace[0]["rollout"] == "in"
        else:
            assert first.rollout == "new-flow:out"
            assert first.decision.rule is None
            assert first.trace[0] == {
                "rule": "new-flow",
                "matched": False,
                "why": "rollout 25%: customer not in it",
                "rollout": "out",
            }
    assert 900 <= inside <= 1100  # 25% of 4000, give or take
    # contacts the rule would not match are not counted on either side
    assert ruleset.decide(contact("chat"), customer(), NOW).rollout is None


def test_rollout_buckets_depend_on_the_rule_name() -> None:
    ids = [uuid.UUID(int=n) for n in range(1, 2001)]
    a = {i for i in ids if rollout_for("a", 50).includes(i)}
    b = {i for i in ids if rollout_for("b", 50).includes(i)}
    assert a != b
    assert all(rollout_for("a", 100).includes(i) for i in ids)
    assert not any(rollout_for("a", 0).includes(i) for i in ids)


def test_disabled_rules_are_skipped_but_described(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(
        "rules:\n"
        "  - {name: off, enabled: false, route: {queue: vip}}\n"
        "  - {name: on, when: {contact.channel: chat}, route: {queue: billing}}\n"
    )
    evaluation = ruleset.decide(contact("chat"), customer(), NOW)
    assert evaluation.decision.rule == "on"
    assert [t["rule"] for t in evaluation.trace] == ["on"]
    described = ruleset.describe()
    assert [r["name"] for r in described["rules"]] == ["off", "on"]
    assert described["rules"][0]["enabled"] is False


def test_describe_is_json(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules(ROUTING)
    described = orjson.loads(orjson.dumps(ruleset.describe()))
    assert described["version"] == ruleset.version
    assert described["queues"]["general"] == {"description": None, "skills": ["basic"]}
    assert described["calendars"]["office"]["hours"]["mon"] == "09:00-17:00"
    assert described["defaults"]["chat"]["sla_seconds"] == 120
    vip = described["rules"][2]
    assert (vip["name"], vip["file"], vip["line"]) == ("vip", "test.yaml", 28)
    assert vip["when"] == {"customer.tier": "vip"}
    assert vip["route"]["queue"] == "vip"
    assert ruleset.sources == {"test.yaml": ruleset.sources["test.yaml"]}


def test_naive_now_is_utc(rules: Callable[[str], Ruleset]) -> None:
    ruleset = rules("rules:\n  - {name: open, when: {within: office}, route: {queue: vip}}\n")
    # 16:30 UTC is 17:30 in Berlin: closed
    assert ruleset.decide(contact(), customer(), datetime(2026, 3, 2, 16, 30)).decision.rule is None
    assert (
        ruleset.decide(contact(), customer(), datetime(2026, 3, 2, 15, 30)).decision.rule == "open"
    )


def test_field_catalog_follows_the_models() -> None:
    catalog = Catalog(UTC)
    names = set(catalog.names())
    for name in CustomerContext.model_fields:
        expected = "customer.id" if name == "customer_id" else f"customer.{name}"
        assert expected in names or f"{expected}.*" in names
    for name in LastContact.model_fields:
        assert f"customer.last.{name}" in names
    for name in Contact.model_fields:
        if name != "identifiers":
            assert f"contact.{name}" in names or f"contact.{name}.*" in names
    assert catalog.fields["contact.channel"].choices == CHANNELS
    assert catalog.fields["customer.contacts_24h"].kind is Kind.NUMBER
    assert catalog.fields["customer.last.at"].kind is Kind.TIME
    assert catalog.fields["customer.known"].kind is Kind.BOOL
    assert catalog.fields["contact.identifier_kinds"].item_kind is Kind.TEXT
    assert catalog.lookup("customer.attributes.a.b") is not None
    assert catalog.lookup("customer.attributes.") is None
    assert catalog.lookup("customer.nope") is None


SHIPPED_LIKE = (
    ROUTING
    + """\
  - name: everything
    when:
      any:
        - contact.text: {contains_any: [help, 'refund*'], matches: 'x+'}
        - contact.attributes.n: {between: [1, 9]}
        - contact.attributes.to: {any_of: [a]}
        - customer.last.at: {older_than: 1d}
        - contact.sent_at: {within: 1h}
        - customer.segment: {starts_with: b, ends_with: c}
        - contact.attributes.x: {empty: true}
        - outside: office
    route: {queue: vip}
"""
)

FUZZED = load_ruleset_text(BASE + SHIPPED_LIKE)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC) | st.none(),
)
contacts = st.builds(
    Contact,
    channel=st.sampled_from(CHANNELS),
    provider=st.text(min_size=1, max_size=5),
    external_id=st.text(min_size=1, max_size=5),
    subject=st.none() | st.text(max_size=20),
    text=st.none() | st.text(max_size=40),
    language=st.none() | st.text(max_size=5),
    sent_at=st.none() | moments,
    attributes=st.dictionaries(
        st.sampled_from(["n", "to", "x", "public"]), json_values, max_size=4
    ),
)
customers = st.builds(
    CustomerContext,
    customer_id=st.uuids(),
    known=st.booleans(),
    tier=st.none() | st.sampled_from(["vip", "gold", ""]),
    segment=st.none() | st.text(max_size=4),
    contacts_24h=st.integers(min_value=0, max_value=10),
    attributes=st.dictionaries(st.sampled_from(["account_manager"]), json_values, max_size=1),
    last=st.none()
    | st.builds(
        LastContact, at=moments, channel=st.text(max_size=5), queue=st.none() | st.text(max_size=8)
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=contacts, cu=customers, now=moments)
def test_decide_never_raises(c: Contact, cu: CustomerContext, now: datetime) -> None:
    ruleset = FUZZED
    evaluation = ruleset.decide(c, cu, now)
    assert isinstance(evaluation, Evaluation)
    assert evaluation.decision.queue in ruleset.queues
    assert 0 <= evaluation.decision.priority <= 100
    assert ruleset.decide(c, cu, now, explain=False).decision == evaluation.decision
    Decision.model_validate(evaluation.decision.model_dump())
    orjson.dumps(evaluation.trace)
