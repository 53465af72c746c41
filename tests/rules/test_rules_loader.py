"""Loading: every problem at once, each at its exact file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import RulesError
from router.rules import load_ruleset, load_ruleset_text
from tests.support.rules import BASE


def problems(text: str, name: str = "r.yaml") -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_ruleset_text(text, name)
    return caught.value.problems


def test_every_problem_is_reported_with_its_location() -> None:
    text = BASE + (
        "rules:\n"  # line 19
        "  - name: first\n"
        "    when:\n"
        "      customer.tierr: vip\n"  # 22: unknown field, at the key
        "      contact.subject: {matches: '(unclosed'}\n"  # 23: bad regex
        "    route: {queue: nowhere}\n"  # 24: undeclared queue
        "  - name: second\n"
        "    when: {contact.channel: chat}\n"
        "    route: {queue: vip, colour: red}\n"  # 27: unknown key
    )
    found = problems(text)
    assert len(found) == 4
    assert found[0].startswith("r.yaml:22:7: rule 'first': unknown field 'customer.tierr';")
    assert "did you mean 'customer.tier'?" in found[0]
    assert "valid fields: contact.attributes.*, contact.channel," in found[0]
    assert found[1].startswith("r.yaml:23:34: rule 'first': contact.subject matches: bad regular")
    assert found[2] == (
        "r.yaml:24:20: rule 'first': queue 'nowhere' is not declared under queues:"
        " (declared: after-hours, billing, chat-q, general, returns, vip)"
    )
    assert found[3].startswith("r.yaml:27:25: rule 'second': unknown key 'colour' (allowed: queue,")


def test_a_rule_without_name_is_counted() -> None:
    found = problems(BASE + "rules:\n  - when: {contact.channel: chat}\n")
    assert found == ["r.yaml:20:5: rule #1: missing 'name'"]


def test_yaml_syntax_error_has_a_location() -> None:
    found = problems("queues:\n  a: [1, 2\n")
    assert len(found) == 1 and found[0].startswith("r.yaml:3:1: invalid YAML")


def test_impossible_date_is_a_problem_not_a_crash() -> None:
    text = BASE.replace("holidays: [2026-12-25]", "holidays: [2026-13-25]")
    assert problems(text) == [
        "r.yaml:12:16: calendar 'office': '2026-13-25' is not a date like 2026-12-25"
    ]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("customer.contacts_24h: {gte: many}", "customer.contacts_24h gte: expected a number"),
        ("customer.tier: {gt: 3}", "'gt' does not apply to customer.tier, which is a text"),
        ("customer.known: yes", "customer.known: customer.known is true or false; yes is not"),
        ("contact.channel: fax", "'fax' is never a value of contact.channel"),
        ("contact.channel: [chat, fax]", "'fax' is never a value of contact.channel"),
        ("time.weekday: monday", "'monday' is never a value of time.weekday"),
        ("customer.last.at: {within: soon}", "'soon' is not a duration"),
        ("customer.last.at: {contains: x}", "'contains' does not apply to customer.last.at"),
        ("contact.subject: {between: [1, 2]}", "'between' does not apply to contact.subject"),
        ("contact.subject: {contains_any: []}", "expected a list of words or phrases"),
        ("contact.subject: {startswith: x}", "unknown operator 'startswith'; did you mean"),
        ("contact.attributes.n: {between: [5, 1]}", "low 5 is above high 1"),
        ("tier: vip", "unknown condition 'tier'; did you mean 'customer.tier'?"),
        ("within: nights", "unknown calendar 'nights' (calendars: office)"),
        ("any: {}", "'any' needs a list of conditions"),
        ("not: [a]", "expected a mapping of conditions"),
        ("contact.identifier_kinds: email", "'eq' does not apply to contact.identifier_kinds"),
        ("customer.last: {exists: maybe}", "expected true or false"),
    ],
)
def test_condition_mistakes(when: str, message: str) -> None:
    found = problems(BASE + f"rules:\n  - name: r\n    when: {{{when}}}\n")
    assert len(found) == 1, found
    assert message in found[0]
    assert found[0].startswith("r.yaml:21:")


def test_route_mistakes() -> None:
    text = BASE + (
        "rules:\n"
        "  - name: r\n"
        "    route:\n"
        "      queue: {from: customer.contacts_24h}\n"
        "      priority: 300\n"
        "      sla: soon\n"
        "      overflow: [{after: 60, queue: nope}, {after: 30, priority: 1, priority_boost: 2}]\n"
        "  - name: c\n"
        "    continue: true\n"
        "    route: {queue: vip, tags: [x]}\n"
    )
    found = problems(text)
    assert any("r.yaml:23:17: rule 'r': priority: Input should be less than" in p for p in found)
    assert any("r.yaml:24:12: rule 'r': sla: 'soon' is not a duration" in p for p in found)
    assert any("r.yaml:28:13: rule 'c': a rule with continue: true only adds" in p for p in found)
    # the route of the invalid rule is not checked further, the continue rule's is
    assert len(found) == 3, found


def test_route_mistakes_in_a_valid_rule() -> None:
    text = BASE + (
        "rules:\n"
        "  - name: r\n"
        "    route:\n"
        "      queue: {from: customer.contacts_24h, fallback: nope}\n"
        "      overflow: [{after: 60, queue: nope}, {after: 30, priority: 1, priority_boost: 2}]\n"
    )
    found = problems(text)
    assert found == [
        "r.yaml:22:21: rule 'r': customer.contacts_24h is a number, not text",
        "r.yaml:22:54: rule 'r': queue 'nope' is not declared under queues: (declared:"
        " after-hours, billing, chat-q, general, returns, vip)",
        "r.yaml:23:37: rule 'r': queue 'nope' is not declared under queues: (declared:"
        " after-hours, billing, chat-q, general, returns, vip)",
        "r.yaml:23:44: rule 'r': give priority or priority_boost, not both",
        "r.yaml:23:52: rule 'r': overflow steps must come in time order",
    ]


def test_duplicates_and_defaults_are_checked() -> None:
    text = BASE + "rules:\n  - name: a\n  - name: a\n"
    assert problems(text) == [
        "r.yaml:21:11: rule 'a': the name is already used by the rule at r.yaml:20"
        " (names identify rules in traces and rollouts)"
    ]
    assert problems("queues: {a: {}}\n") == [
        "r.yaml:1:1: no defaults: one file must have a defaults: section with at least a queue"
    ]
    found = problems("queues: {a: {}}\ndefaults: {chat: {queue: a}}\n")
    assert found[0] == (
        "r.yaml:2:11: defaults: no default queue for email: set defaults.queue or email.queue"
    )


def test_unknown_top_level_key_and_time_zone() -> None:
    found = problems(
        BASE.replace("timezone: Europe/Berlin", "timezone: Europe/Berlni", 1) + "rule: []\n"
    )
    assert found == [
        "r.yaml:10:15: calendar 'office': unknown time zone 'Europe/Berlni'"
        " (e.g. Europe/Berlin, UTC)",
        "r.yaml:19:1: unknown key 'rule'; did you mean 'rules'? (allowed: queues, calendars,"
        " defaults, rules, tests)",
    ]


def test_unreachable_rules_are_warnings() -> None:
    ruleset = load_ruleset_text(
        BASE + "rules:\n"
        "  - name: vip\n"
        "    when: {customer.tier: vip}\n"
        "    route: {queue: vip}\n"
        "  - name: vip-again\n"
        "    when: {customer.tier: vip}\n"
        "    route: {queue: billing}\n"
        "  - name: catch-all\n"
        "    route: {queue: general}\n"
        "  - name: after\n"
        "    route: {queue: billing}\n",
        "w.yaml",
    )
    assert ruleset.warnings == [
        "w.yaml:23:11: rule 'vip-again': never reached: rule 'vip' (w.yaml:20) comes first"
        " and has the same conditions",
        "w.yaml:28:11: rule 'after': never reached: rule 'catch-all' (w.yaml:26) comes first"
        " and always matches",
    ]


def test_rollout_and_disabled_rules_do_not_shadow() -> None:
    ruleset = load_ruleset_text(
        BASE + "rules:\n"
        "  - {name: pilot, rollout: 10%, route: {queue: vip}}\n"
        "  - {name: off, enabled: false, route: {queue: vip}}\n"
        "  - {name: rest, route: {queue: billing}}\n",
    )
    assert ruleset.warnings == []


def test_several_files_make_one_ruleset(tmp_path: Path) -> None:
    (tmp_path / "00-base.yaml").write_text(BASE)
    (tmp_path / "20-late.yml").write_text("rules:\n  - {name: late, route: {queue: billing}}\n")
    (tmp_path / "10-early.yaml").write_text("rules:\n  - {name: early, route: {queue: vip}}\n")
    (tmp_path / "notes.txt").write_text("not rules")
    ruleset = load_ruleset([tmp_path])
    assert [r.name for r in ruleset.rules] == ["early", "late"]
    assert sorted(ruleset.sources) == ["00-base.yaml", "10-early.yaml", "20-late.yml"]
    assert ruleset.rules[0].file.endswith("10-early.yaml") and ruleset.rules[0].line == 2
    # files given one by one are ordered by name as well
    again = load_ruleset(sorted(tmp_path.glob("*.y*ml"), reverse=True))
    assert again.version == ruleset.version
    assert len(ruleset.version) == 12


def test_version_is_the_content_hash(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(BASE)
    first = load_ruleset([tmp_path]).version
    (tmp_path / "rules.yaml").write_text(BASE + "\n# a comment\n")
    assert load_ruleset([tmp_path]).version != first
    assert load_ruleset_text(BASE, "rules.yaml").version == first


def test_problems_across_files_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text("queues:\n  general: {}\ndefaults: {queue: general}\n")
    with pytest.raises(RulesError) as caught:
        load_ruleset([tmp_path, tmp_path / "missing.yaml"])
    shown = str(tmp_path)
    assert caught.value.problems == [
        f"{shown}/missing.yaml:1:1: no such file or directory",
        f"{shown}/b.yaml:2:3: queue 'general': queue 'general' is already declared at"
        f" {shown}/a.yaml:2",
        f"{shown}/b.yaml:3:1: defaults: defaults are already given in {shown}/a.yaml",
    ]
    assert caught.value.message == "the rules have 3 problems"


def test_tests_in_files_are_checked_at_load() -> None:
    found = problems(
        BASE + "tests:\n"
        "  - name: t\n"
        "    contact: {channel: fax}\n"
        "    customer: {contacts_24h: lots}\n"
        "    expect: {queue: nowhere, rule: nothing, colour: red}\n"
    )
    assert found == [
        "r.yaml:23:45: test 't': unknown key 'colour' (allowed: queue, rule, priority, skills,"
        " sla, tags, preferred_agent, rollout)",
    ]
    found = problems(
        BASE + "tests:\n"
        "  - name: t\n"
        "    contact: {channel: fax}\n"
        "    customer: {contacts_24h: lots}\n"
        "    expect: {queue: nowhere, rule: nothing}\n"
    )
    assert found == [
        "r.yaml:21:24: test 't': contact.channel: Input should be 'chat', 'email', 'voice'"
        " or 'social'",
        "r.yaml:22:30: test 't': customer.contacts_24h: Input should be a valid integer, unable"
        " to parse string as an integer",
        "r.yaml:23:21: test 't': queue 'nowhere' is not declared",
        "r.yaml:23:36: test 't': there is no rule 'nothing'",
    ]


def test_the_same_condition_in_several_rules() -> None:
    """Conditions compiled once per ruleset are still checked, and reported, in each rule."""
    found = problems(
        BASE + "rules:\n"
        "  - {name: a, when: {customer.tierr: vip}}\n"
        "  - {name: b, when: {customer.tierr: vip}}\n"
    )
    assert [p.split(": rule")[0] for p in found] == ["r.yaml:20:22", "r.yaml:21:22"]
    ruleset = load_ruleset_text(
        BASE + "rules:\n"
        "  - {name: a, when: {customer.tier: vip, contact.channel: chat}, route: {queue: vip}}\n"
        "  - {name: b, when: {customer.tier: vip}, route: {queue: billing}}\n"
        "  - {name: c, when: {customer.tier: 1}, route: {queue: returns}}\n"
    )
    assert [r.checks[0].text for r in ruleset.rules] == [
        "customer.tier = vip",
        "customer.tier = vip",
        "customer.tier = 1",
    ]
    assert ruleset.rules[0].checks[0] is ruleset.rules[1].checks[0]
