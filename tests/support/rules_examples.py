"""Rules documents the schema is held against: the shipped rules, every YAML
example in docs/rules.md, and a set of mistakes, each with where it is and what
an editor should say about it.

A docs example that is not a whole rules file (a ``when:`` or ``route:``
block, a list of rules) is wrapped into one, and its lines are counted from
the wrapped document's first line. ``BASE`` (from tests.support.rules) goes before
every mistake, so that the engine reports the mistake and nothing else.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.support.rules import BASE

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "rules.md"
SHIPPED = sorted((ROOT / "rules").glob("*.yaml"))
SECTIONS = ("queues", "calendars", "defaults", "rules", "tests")
RULE_KEYS = ("when", "route", "name", "rollout", "continue", "enabled", "description")


@dataclass(frozen=True)
class Example:
    """A rules document: its name (``docs/rules.md:131``) and text."""

    name: str
    text: str


def _fenced(text: str, language: str) -> list[tuple[int, str]]:
    """(line after the fence, content) of every ```language block (also indented ones,
    in a list)."""
    blocks = []
    fence = rf"^( *)```{language}\n(.*?)^\1```$"
    for match in re.finditer(fence, text, re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, textwrap.dedent(match.group(2))))
    return blocks


def as_document(block: str) -> str | None:
    """A docs block as a whole rules file; None for a block with no YAML in it."""
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return None
    first = lines[0]
    if first.split(":")[0] in SECTIONS:
        return block
    if first.startswith("- "):
        return "rules:\n" + textwrap.indent(block, "  ")
    if first.split(":")[0] in RULE_KEYS:
        body = "".join(f"    {line}\n" if line else "\n" for line in block.splitlines())
        return "rules:\n  - name: example\n" + body
    raise AssertionError(f"a new kind of YAML example in docs/rules.md: {first!r}; wrap it here")


def docs_examples() -> list[Example]:
    """Every ```yaml block of docs/rules.md that holds YAML, as a rules document."""
    found = []
    for line, block in _fenced(DOCS.read_text(), "yaml"):
        document = as_document(block)
        if document is not None:
            found.append(Example(f"docs/rules.md:{line}", document))
    return found


def operator_examples() -> list[Example]:
    """The examples column of the operators table in docs/rules.md, each in a rule."""
    found = []
    text = DOCS.read_text()
    table = text[text.index("| operator | holds when the value … | example |") :]
    table = table[: table.index("\n\n")]
    for n, row in enumerate(table.splitlines()[2:]):
        code = re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2])
        for entry in code:
            document = f"rules:\n  - name: example\n    when:\n      {entry}\n"
            found.append(Example(f"docs/rules.md operators row {n + 1}: {entry}", document))
    return found


def modeline() -> str:
    """The modeline docs/rules.md gives (a ```yaml block with only a comment in it)."""
    for _, block in _fenced(DOCS.read_text(), "yaml"):
        if block.startswith("# yaml-language-server:"):
            return block.strip()
    raise AssertionError("docs/rules.md shows no yaml-language-server modeline")


def vscode_settings() -> dict[str, object]:
    """The ``.vscode/settings.json`` docs/rules.md gives."""
    for _, block in _fenced(DOCS.read_text(), "json"):
        if '"yaml.schemas"' in block:
            settings: dict[str, object] = json.loads(block)
            return settings
    raise AssertionError("docs/rules.md shows no yaml.schemas setting")


def shipped() -> list[Example]:
    return [Example(f"rules/{path.name}", path.read_text()) for path in SHIPPED]


@dataclass(frozen=True)
class Mistake:
    """``snippet`` (after BASE) has one mistake: on the line where ``line_text`` (or
    else ``covered``) first appears, an editor underlines ``covered`` and says ``says``
    (every piece); the engine reports an error on that line."""

    name: str
    snippet: str
    covered: str
    says: tuple[str, ...]
    line_text: str | None = None
    base: str = BASE

    @property
    def text(self) -> str:
        return self.base + self.snippet

    @property
    def line(self) -> int:
        """1-based line of the mistake in ``text``."""
        offset = self.snippet.index(self.line_text or self.covered)
        return self.base.count("\n") + self.snippet.count("\n", 0, offset) + 1


#: BASE without its calendars, for mistakes in a calendar
NO_CALENDARS = re.sub(r"calendars:\n(  .*\n)+", "", BASE)


def _when(entry: str) -> str:
    return f"rules:\n  - name: r\n    when:\n      {entry}\n"


MISTAKES = [
    Mistake("unknown top-level key", "rule: []\n", "rule", ("rule", "Did you mean rules?")),
    Mistake(
        "unknown route key",
        "rules:\n  - name: r\n    route: {queue: vip, colour: red}\n",
        "colour",
        ("Property colour is not allowed",),
    ),
    Mistake(
        "route key one typo away",
        "rules:\n  - name: r\n    route: {queu: vip}\n",
        "queu",
        ("Property queu is not allowed", "Did you mean queue?"),
    ),
    Mistake(
        "priority as text",
        'rules:\n  - name: r\n    route: {priority: "high"}\n',
        '"high"',
        ("whole number from 0 to 100",),
    ),
    Mistake(
        "priority quoted",
        'rules:\n  - name: r\n    route: {priority: "90"}\n',
        '"90"',
        ("whole number from 0 to 100",),
    ),
    Mistake(
        "priority out of range",
        "rules:\n  - name: r\n    route: {priority: 150}\n",
        "150",
        ("above the maximum of 100",),
    ),
    Mistake(
        "sla not a duration",
        "rules:\n  - name: r\n    route: {sla: 5 minutes}\n",
        "5 minutes",
        ("Not a duration", "90s, 5m, 24h"),
    ),
    Mistake(
        "queue neither text nor from",
        "rules:\n  - name: r\n    route: {queue: [vip]}\n",
        "[vip]",
        ("Expected a declared queue, or {from: field",),
    ),
    Mistake(
        "from misspelt",
        "rules:\n  - name: r\n    route:\n      queue: {form: customer.last.queue}\n",
        "form",
        ("Property form is not allowed", "Did you mean from?"),
    ),
    Mistake(
        "skills not a list",
        "rules:\n  - name: r\n    route: {skills: vip}\n",
        "vip",
        ("array",),
        line_text="skills",
    ),
    Mistake(
        "continue rule decides",
        "rules:\n  - name: c\n    continue: true\n    route: {queue: vip, tags: [x]}\n",
        "queue",
        ("continue: true only adds tags, skills and priority_boost",),
    ),
    Mistake(
        "continue as yes",
        "rules:\n  - name: r\n    continue: yes\n",
        "yes",
        ("Expected true or false",),
    ),
    Mistake(
        "enabled as no",
        "rules:\n  - name: r\n    enabled: no\n",
        "no",
        ("Expected true or false",),
    ),
    Mistake(
        "rollout not a percentage",
        "rules:\n  - name: r\n    rollout: 20 percent\n",
        "20 percent",
        ("Not a share of customers",),
    ),
    Mistake(
        "rule without a name",
        "rules:\n  - when: {contact.channel: chat}\n",
        "w",
        ('Missing property "name"',),
        line_text="when",
    ),
    Mistake(
        "overflow after not a duration",
        "rules:\n  - name: r\n    route:\n      overflow: [{after: soon}]\n",
        "soon",
        ("Not a duration",),
    ),
    Mistake(
        "overflow with priority and boost",
        "rules:\n  - name: r\n    route:\n"
        "      overflow: [{after: 60, priority: 1, priority_boost: 2}]\n",
        "2",
        ("Give priority or priority_boost, not both",),
        line_text="overflow",
    ),
    Mistake(
        "unknown field, one typo away",
        _when("customer.tierr: vip"),
        "customer.tierr",
        ("Property customer.tierr is not allowed", "Did you mean customer.tier?"),
    ),
    Mistake(
        "field without its prefix",
        _when("tier: vip"),
        "tier",
        ("Property tier is not allowed", "Did you mean customer.tier?"),
    ),
    Mistake(
        "unknown operator",
        _when("customer.contacts_24h: {gte: 2, frobnicate: 1}"),
        "frobnicate",
        ("Property frobnicate is not allowed",),
    ),
    Mistake(
        "operator one typo away",
        _when("contact.subject: {startswith: re}"),
        "startswith",
        ("Property startswith is not allowed", "Did you mean starts_with?"),
    ),
    Mistake(
        "operator that does not apply",
        _when("customer.tier: {gt: 3}"),
        "gt",
        ("gt does not apply to text", "this field takes: eq, ne, in"),
    ),
    Mistake(
        "operator on records",
        _when("customer.journeys: {contains: x}"),
        "contains",
        ("contains does not apply to a list", "this field takes: exists, empty"),
    ),
    Mistake(
        "unknown operator below attributes",
        _when("contact.attributes.ivr_digits: {gte: 3, frob: 1}"),
        "frob",
        ("Property frob is not allowed",),
    ),
    Mistake(
        "channel that does not exist",
        _when("contact.channel: emial"),
        "emial",
        ("contact.channel: expected one of chat, email, voice, social",),
    ),
    Mistake(
        "channel in a list that does not exist",
        _when("contact.channel: [chat, fax]"),
        "fax",
        ("one of chat, email, voice, social",),
    ),
    Mistake(
        "weekday spelt out",
        _when("time.weekday: monday"),
        "monday",
        ("one of mon, tue, wed, thu, fri, sat, sun",),
    ),
    Mistake(
        "true/false field given yes",
        _when("customer.known: yes"),
        "yes",
        ("customer.known: expected true or false",),
    ),
    Mistake(
        "number field given text",
        _when('customer.contacts_24h: "3"'),
        '"3"',
        ("customer.contacts_24h: expected a number",),
    ),
    Mistake(
        "number operand given text",
        _when("customer.contacts_24h: {gte: many}"),
        "many",
        ("gte takes a number",),
    ),
    Mistake(
        "time compared with equality",
        _when("customer.last.at: vip"),
        "vip",
        ("customer.last.at is a time: test it with operators",),
    ),
    Mistake(
        "list compared with equality",
        _when("contact.identifier_kinds: email"),
        "email",
        ("contact.identifier_kinds is a list: test it with operators",),
    ),
    Mistake(
        "time operand not a time",
        _when("customer.last.at: {gt: yesterday}"),
        "yesterday",
        ("Not a time",),
    ),
    Mistake(
        "duration operand not a duration",
        _when("customer.last.at: {within: soon}"),
        "soon",
        ("Not a duration",),
    ),
    Mistake(
        "no operators",
        _when("customer.tier: {}"),
        "{}",
        ("Give at least one operator",),
    ),
    Mistake(
        "no words",
        _when("contact.subject: {contains_any: []}"),
        "[]",
        ("too few items",),
    ),
    Mistake(
        "any of nothing",
        _when("any: {}"),
        "{}",
        ("Give 'any' at least one condition",),
    ),
    Mistake(
        "not given a list",
        _when("not: [a]"),
        "[a]",
        ("'not' takes a mapping of conditions",),
    ),
    Mistake(
        "calendar given a number",
        _when("within: 5"),
        "5",
        ("Expected the name of a calendar",),
        line_text="within",
    ),
    Mistake(
        "when given a list",
        "rules:\n  - name: r\n    when: [contact.channel]\n",
        "[contact.channel]",
        ("Expected a mapping of conditions",),
    ),
    Mistake(
        "hours not hours",
        "calendars:\n  late:\n    timezone: UTC\n    hours: {mon-fri: 9-17}\n",
        "9-17",
        ('Expected hours like "09:00-17:00"',),
        base=NO_CALENDARS,
    ),
    Mistake(
        "day not a day",
        'calendars:\n  late:\n    timezone: UTC\n    hours: {weekend: "10:00-12:00"}\n',
        "weekend",
        ("Expected a day (mon … sun)",),
        base=NO_CALENDARS,
    ),
    Mistake(
        "holiday not a date",
        "calendars:\n  late:\n    timezone: UTC\n    holidays: [tomorrow]\n",
        "tomorrow",
        ("Expected a date like 2026-12-24",),
        base=NO_CALENDARS,
    ),
    Mistake(
        "test of a channel that does not exist",
        "tests:\n  - name: t\n    contact: {channel: fax}\n    expect: {queue: general}\n",
        "fax",
        ('"chat", "email", "voice", "social"',),
    ),
    Mistake(
        "test at a time that is not one",
        "tests:\n  - name: t\n    contact: {channel: chat}\n    now: tomorrow\n"
        "    expect: {queue: general}\n",
        "tomorrow",
        ("Not a time",),
    ),
    Mistake(
        "test expecting an unknown key",
        "tests:\n  - name: t\n    contact: {channel: chat}\n    expect: {colour: red}\n",
        "colour",
        ("Property colour is not allowed",),
    ),
]

#: the mistakes of the table in docs/rules.md, Editor support: what the row shows
DOCUMENTED = {
    "customer.tierr: vip": "unknown field, one typo away",
    "tier: vip": "field without its prefix",
    "customer.contacts_24h: {gte: 2, frobnicate: 1}": "unknown operator",
    "contact.subject: {startswith: re}": "operator one typo away",
    "customer.tier: {gt: 3}": "operator that does not apply",
    "contact.channel: emial": "channel that does not exist",
    "customer.known: yes": "true/false field given yes",
    "sla: 5 minutes": "sla not a duration",
    "customer.last.at: {gt: yesterday}": "time operand not a time",
    'priority: "high"': "priority as text",
    "priority: 150": "priority out of range",
    "rollout: 20 percent": "rollout not a percentage",
    "queue: vip": "continue rule decides",
    "mon-fri: 9-17": "hours not hours",
}


def documented_rows() -> list[tuple[list[str], list[str]]]:
    """(code in the first column, pieces of the messages in the second) of each row of
    the table in docs/rules.md, Editor support; a row may show several codes."""
    text = DOCS.read_text()
    table = text[text.index("| you write | the editor says") :]
    table = table[: table.index("\n\n")]
    rows = []
    for row in table.splitlines()[2:]:
        first, said = row.strip("|").split(" | ", 1)
        code = re.findall(r"`([^`]+)`", first)
        sentences = re.split(r"…|;|(?<=[.?])\s+(?=[A-Z])", said.strip(" |"))
        rows.append((code, [p.strip(" .") for p in sentences if p.strip(" .")]))
    return rows
