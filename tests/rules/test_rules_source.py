"""Reading rules files: the fast reader (libyaml) and the exact one (ruamel round trip)
give the same data and the same places, so line and column numbers do not depend on
which one read a file."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from router.rules.loader import build
from router.rules.source import FAST, Path, Source, parse, read_fast
from tests.support.rules import BASE
from tests.support.rules_examples import MISTAKES, docs_examples, shipped

pytestmark = pytest.mark.skipif(not FAST, reason="PyYAML without libyaml: one reader only")


def _places(source: Source) -> dict[Path, tuple[Any, ...]]:
    """Every path in the data with its key and value places and both positions."""
    found: dict[Path, tuple[Any, ...]] = {}

    def walk(node: Any, path: Path) -> None:
        found[path] = (
            source.places.find(path),
            source.position(path),
            source.position(path, at_key=True),
        )
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, (*path, n))

    walk(source.data, ())
    found[("no", "such", 3)] = (source.position(("no", "such", 3)),)
    return found


def assert_same_reading(text: str) -> None:
    exact, exact_syntax = parse("f.yaml", "f.yaml", text, exact=True)
    fast, fast_syntax = parse("f.yaml", "f.yaml", text)
    assert fast_syntax == exact_syntax
    assert fast.data == exact.data
    assert _places(fast) == _places(exact)


TRICKY = [
    "a: 2026-12-24 10:00:00\nb: 2026-1-2\n2026-12-24: x\n",
    "a: &x {b: 1}\nc: *x\nd: &y 2\ne: *y\n",
    "a:\nb:   # comment\nc: ~\nd: \ne: null\n",
    "- a\n-\n- c\n-   # x\n",
    "a: {b: , c: d}\n",
    "a: [1, , 2]\n",
    "a: |\n  x\n  y\nb: >\n  p\n\n  q\nc: |-\n  z\n",
    "x: {description: Müller ✓, skills: [x]}\ny: 😀\n",
    "a: 'q''s'\n\"b\": \"t\\u00e9\\n\"\n",
    "a: 1\r\nb:\r\n  - 2\r\n",
    "\ufeffa: 1\n",
    "a:\n  - b: 1\n    c: 2\n  -\n    d: 3\n",
    "a: -5\nb: 1.5\nc: +5\nd: 0o17\ne: 0x1F\nf: 1_000\ng: 1e3\nh: .inf\ni: 007\nj: -0\n",
    "? a\n: 1\n? [b]\n: 2\n",
    "a: b\n  c\n",
    "a:\n\n\n  b: 1\n",
    "a: ''\nb: \"\"\n",
    "%YAML 1.1\n---\na: yes\n",
    "a: 1\na: 2\n",
    "a: !!str 5\nb: !custom x\n",
    "<<: {a: 1}\nb: 2\n",
    "base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n",
    "a: yes\nb: no\nc: on\nd: True\ne: FALSE\nf: Null\n",
    "1: a\ntrue: b\n",
    "---\na: 1\n...\n",
    "a: 1\n---\nb: 2\n",
    "",
    "# only a comment\n",
    "just text\n",
    "[1, 2]\n",
    "a:\n\tb: 1\n",
    "a: b: c\n",
    "a: 'unclosed\n",
    "a: [1, 2\n",
    "queues:\n  a: {}\n  - b\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_both_readers_agree_on_tricky_yaml(text: str) -> None:
    assert_same_reading(text)


def test_both_readers_agree_on_every_rules_document() -> None:
    documents = shipped() + docs_examples()
    for text in [e.text for e in documents] + [m.text for m in MISTAKES] + [BASE]:
        assert_same_reading(text)


def test_the_fast_reader_reads_the_rules() -> None:
    for example in shipped() + docs_examples():
        assert read_fast(example.text) is not None, example.name


_KEYS = st.text("abcdef_.-: #'\"0123456789é", min_size=1, max_size=6)
_SCALARS = st.one_of(
    st.text("abc xyz:#-'\"\\{}[],&*!|>%@`\n\té😀0123456789.", max_size=12),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.sampled_from(["yes", "no", "on", "~", "null", "0o17", "1_0", "2026-12-24", "<<", "="]),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, min_size=1, max_size=4)
    ),
    max_leaves=20,
)


def _dump(data: Any, flow: bool | None, indent: int, width: int) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = flow
    yaml.indent(mapping=indent, sequence=indent + 2, offset=indent)
    yaml.width = width
    out: list[str] = []

    class Sink:
        def write(self, text: str | bytes) -> None:
            out.append(text if isinstance(text, str) else text.decode())

    yaml.dump(data, Sink())
    return "".join(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _DOCUMENTS,
    st.sampled_from([False, True, None]),
    st.sampled_from([2, 4]),
    st.sampled_from([20, 80]),
)
def test_both_readers_agree_on_any_document(data: Any, flow: Any, indent: int, width: int) -> None:
    assert_same_reading(_dump({"top": data}, flow, indent, width))


#: the first rules of the shipped file (the round-trip reader is slow on all of it)
_ROUTING = "\n".join(
    next(e.text for e in shipped() if e.name.endswith("10-routing.yaml")).splitlines()[:60]
)


@settings(max_examples=250, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 4))
def test_both_readers_agree_on_broken_rules(rng: random.Random, edits: int) -> None:
    """The shipped rules with a few random edits: the same data and places, or the same
    syntax error."""
    text = _ROUTING
    for _ in range(edits):
        at = rng.randrange(len(text))
        choice = rng.randrange(4)
        if choice == 0:
            text = text[:at] + text[at + rng.randint(1, 12) :]
        elif choice == 1:
            text = text[:at] + rng.choice(":-#{}[],'\"&*!|>% \n\t") + text[at:]
        elif choice == 2:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at) + 1 or len(text)
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:at] + rng.choice(["yes", "~", "0o7", "1.5", "!!str ", "<<: "]) + text[at:]
    assert_same_reading(text)


def test_a_large_ruleset_with_mistakes_gets_the_same_places() -> None:
    """Problems, warnings and rules' lines of a few hundred rules do not depend on the
    reader."""
    rng = random.Random(7)
    lines = [BASE, "rules:"]
    for n in range(300):
        kind = rng.randrange(6)
        when = {
            0: "customer.tierr: vip",
            1: "contact.channel: emial",
            2: "customer.contacts_24h: {gte: many}",
            3: "contact.subject: {matches: '(x'}",
            4: "customer.tier: vip",
            5: "",
        }[kind]
        queue = "nowhere" if n % 7 == 0 else "general"
        lines.append(f"  - name: r{n}")
        if when:
            lines.append(f"    when: {{{when}}}")
        if n % 11 == 0:
            lines.append("    route:\n      queue:")
        else:
            lines.append(f"    route: {{queue: {queue}, sla: {'soon' if n % 13 == 0 else '1h'}}}")
    text = "\n".join(lines) + "\n"
    exact = build([("r.yaml", "r.yaml", text)], exact=True)
    fast = build([("r.yaml", "r.yaml", text)])
    assert len(fast.errors) > 200
    assert fast.errors == exact.errors
    assert fast.warnings == exact.warnings
    valid = text.replace("customer.tierr", "customer.tier").replace("emial", "email")
    valid = valid.replace("many", "2").replace("'(x'", "x").replace("nowhere", "general")
    valid = valid.replace("soon", "1h").replace("      queue:\n", "      queue: vip\n")
    exact_rules = build([("r.yaml", "r.yaml", valid)], exact=True).ruleset
    fast_rules = build([("r.yaml", "r.yaml", valid)]).ruleset
    assert exact_rules is not None and fast_rules is not None
    assert [(r.name, r.line) for r in fast_rules.rules] == [
        (r.name, r.line) for r in exact_rules.rules
    ]
