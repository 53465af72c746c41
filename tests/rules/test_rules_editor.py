"""The editor agrees with the engine: yaml-language-server (the engine of VS Code's
YAML support, pinned in tests/rules/editor/package.json), given the schema
``omniroute rules schema`` prints and set up as docs/rules.md says,

* reports nothing on the shipped rules and on every example in docs/rules.md;
* reports each known mistake on its line, underlining the offending key or
  value, with a message that says what is wrong (and the table of messages in
  docs/rules.md is what it says);
* completes keys once each, in block style and inside ``{…}``.

The server runs under Node.js, installed by ``npm ci`` from the lock file;
without Node.js and npm the tests are skipped.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.commands.rules import main
from tests.support.editor import Diagnostic, LanguageServer, install, running
from tests.support.rules_examples import (
    DOCUMENTED,
    MISTAKES,
    Example,
    Mistake,
    docs_examples,
    documented_rows,
    modeline,
    operator_examples,
    shipped,
    vscode_settings,
)

VALID = shipped() + docs_examples() + operator_examples()


def _file(name: str) -> str:
    """A document name as a file in rules/ (where the settings apply the schema)."""
    return "rules/" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + ".yaml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the schema saved as docs/rules.md says."""
    root = tmp_path_factory.mktemp("workspace")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    (root / "rules.schema.json").write_text(out.getvalue())
    (root / "rules").mkdir()
    return root


@pytest.fixture(scope="module")
def editor(workspace: Path) -> Iterator[LanguageServer]:
    """The language server with the workspace settings docs/rules.md gives."""
    server = install()
    settings: dict[str, Any] = {
        "yaml": {
            "schemas": vscode_settings()["yaml.schemas"],
            "validate": True,
            "completion": True,
            "hover": True,
        },
        "http": {},
        "[yaml]": {},
        "editor": {},
    }
    yield from running(server, workspace, settings)


@pytest.fixture(scope="module")
def published(editor: LanguageServer) -> dict[str, list[Diagnostic]]:
    """What the server says about every valid document and every mistake, by name."""
    uris = {example.name: editor.open(_file(example.name), example.text) for example in VALID}
    uris |= {mistake.name: editor.open(_file(mistake.name), mistake.text) for mistake in MISTAKES}
    found = editor.diagnostics(list(uris.values()))
    return {name: found[uri] for name, uri in uris.items()}


@pytest.mark.parametrize("example", VALID, ids=[e.name for e in VALID])
def test_what_the_engine_accepts_the_editor_accepts(
    example: Example, published: dict[str, list[Diagnostic]]
) -> None:
    assert [str(d) for d in published[example.name]] == []


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_the_editor_names_each_mistake(
    mistake: Mistake, published: dict[str, list[Diagnostic]]
) -> None:
    found = published[mistake.name]
    shown = [str(d) for d in found]
    assert found, "the editor says nothing"
    assert {d.line + 1 for d in found} == {mistake.line}, shown
    assert any(d.covered == mistake.covered for d in found), shown
    for piece in mistake.says:
        assert any(piece in d.message for d in found), (piece, shown)


def test_docs_show_what_the_editor_says(published: dict[str, list[Diagnostic]]) -> None:
    rows = documented_rows()
    assert len(rows) >= 10
    for codes, pieces in rows:
        # the first code of a row names the mistake; "in a ... rule" says where it is
        mistakes = [DOCUMENTED[code] for code in codes if code in DOCUMENTED]
        assert mistakes, f"no mistake shows {codes}"
        said = " ".join(d.message for name in mistakes for d in published[name])
        for piece in pieces:
            assert piece in said, (codes, piece, said)


def test_the_modeline_applies_the_schema(editor: LanguageServer) -> None:
    """A file outside rules/ is checked with the modeline docs/rules.md gives, and only
    with it."""
    mistake = "rules:\n  - name: r\n    route: {queu: vip}\n"
    with_line = editor.open("drafts/with-modeline.yaml", f"{modeline()}\n{mistake}")
    without = editor.open("drafts/without.yaml", mistake)
    valid = editor.open("drafts/valid.yaml", f"{modeline()}\n{shipped()[1].text}")
    found = editor.diagnostics([with_line, without, valid])
    assert {d.message for d in found[with_line]} == {
        "Property queu is not allowed.",
        "Did you mean queue?",
    }
    assert {d.line for d in found[with_line]} == {3}
    assert found[without] == [] and found[valid] == []


def _labels(editor: LanguageServer, name: str, text: str) -> list[str]:
    """Completion labels at the ``|`` in ``text``."""
    before, _ = text.split("|")
    line, col = before.count("\n"), len(before.rsplit("\n", 1)[-1])
    uri = editor.open(_file(name), text.replace("|", ""))
    editor.diagnostics([uri], quiet=0.2)
    return [item["label"] for item in editor.completion(uri, line, col)]


def _once(labels: list[str]) -> list[str]:
    twice = [label for label, n in Counter(labels).items() if n > 1]
    assert twice == [], f"offered more than once: {twice}"
    return labels


def test_completion_offers_each_condition_once(editor: LanguageServer) -> None:
    block = _labels(editor, "complete-when", "rules:\n  - name: r\n    when:\n      |\n")
    flow = _labels(editor, "complete-when-flow", "rules:\n  - name: r\n    when: {|}\n")
    for labels in (block, flow):
        offered = set(_once(labels))
        assert {"all", "any", "not", "within", "outside"} <= offered
        assert {"contact.channel", "customer.tier", "customer.last.at", "time.hour"} <= offered
    assert {"contact.attributes.…", "customer.attributes.…"} <= set(block)


def test_completion_offers_the_operators_of_the_field(editor: LanguageServer) -> None:
    text = _labels(
        editor, "complete-text", "rules:\n  - name: r\n    when:\n      customer.tier: {|}\n"
    )
    number = _labels(
        editor,
        "complete-number",
        "rules:\n  - name: r\n    when:\n      customer.contacts_24h:\n        |\n",
    )
    time = _labels(
        editor, "complete-time", "rules:\n  - name: r\n    when: {customer.last.at: {gte: 2h, |}}\n"
    )
    assert set(_once(text)) == {
        "eq", "ne", "in", "not_in", "any_of", "contains", "contains_any",
        "starts_with", "ends_with", "matches", "exists", "empty",
    }  # fmt: skip
    assert set(_once(number)) == {
        "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "exists", "empty",
    }  # fmt: skip
    assert set(_once(time)) == {"gt", "lt", "lte", "between", "exists", "empty", "within",
                                "older_than"}  # fmt: skip


def test_completion_offers_the_route_keys(editor: LanguageServer) -> None:
    route = _labels(editor, "complete-route", "rules:\n  - name: r\n    route:\n      |\n")
    assert set(_once(route)) == {
        "queue", "priority", "priority_boost", "skills", "sla", "tags", "preferred_agent",
        "overflow",
    }  # fmt: skip


def test_hovering_a_key_says_what_it_is(editor: LanguageServer) -> None:
    text = (
        "rules:\n  - name: r\n    when:\n      contact.channel: chat\n"
        "      customer.last.at: {within: 24h}\n    route: {sla: 5m}\n"
    )
    uri = editor.open(_file("hover"), text)
    assert editor.diagnostics([uri], quiet=0.2)[uri] == []
    assert "contact.channel: text: chat, email, voice, social" in editor.hover(uri, 3, 10)
    assert "customer.last.at: a time" in editor.hover(uri, 4, 10)
    assert "(a time) is at most this long before now" in editor.hover(uri, 4, 27)
    assert "a duration like 90s, 5m" in editor.hover(uri, 5, 13)
