"""``omniroute rules …``: exit codes and output, in-process and as a module."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from router.commands.rules import main
from router.rules import load_ruleset
from router.rules.testing import run_cases
from tests.support.rules import BASE

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules"


def test_shipped_rules_check_and_pass_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ruleset ") and "0 warnings" in out
    ruleset = load_ruleset([SHIPPED])
    count, failed = run_cases(ruleset)
    assert failed == []
    assert count >= len([r for r in ruleset.rules if r.enabled])  # about one test per rule
    tested = {case.expect.rule for case in ruleset.cases}
    untested = {r.name for r in ruleset.rules if r.enabled and not r.cont} - tested
    assert untested == set()
    assert main(["test", str(SHIPPED)]) == 0
    assert capsys.readouterr().out.endswith(
        f"{count} passed, 0 failed (ruleset {ruleset.version})\n"
    )


def test_check_reports_errors_and_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        BASE + "rules:\n  - {name: a, route: {queue: vip}}\n  - {name: b}\n"
        "  - {name: c, route: {queue: nope}}\n"
    )
    assert main(["check", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{bad}:22:30: rule 'c': queue 'nope' is not declared under queues: (declared:"
        " after-hours, billing, chat-q, general, returns, vip)",
        f"{bad}:21:12: warning: rule 'b': never reached: rule 'a' ({bad}:20) comes first"
        " and always matches",
        "1 error, 1 warning",
    ]
    bad.write_text(BASE + "rules:\n  - {name: a, route: {queue: vip}}\n  - {name: b}\n")
    assert main(["check", str(bad)]) == 0  # warnings only
    out = capsys.readouterr().out
    assert "warning: rule 'b': never reached" in out and out.endswith("1 warning\n")


def test_test_command_reports_failures_with_locations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "r.yaml"
    file.write_text(
        BASE + "rules:\n"
        "  - {name: vip, when: {customer.tier: vip}, route: {queue: vip, tags: [v]}}\n"
        "tests:\n"
        "  - name: vip goes to vip\n"
        "    contact: {channel: chat}\n"
        "    customer: {tier: vip}\n"
        "    expect: {queue: vip, rule: vip, tags: [v], priority: 50}\n"
        "  - name: wrong on purpose\n"
        "    contact: {channel: voice}\n"
        "    expect: {queue: vip, priority: 10}\n"
    )
    assert main(["test", str(file)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{file}:26:5: test 'wrong on purpose': expected queue 'vip', got 'general';"
        " expected priority 10, got 50; (decided by defaults)",
        "1 passed, 1 failed (ruleset " + load_ruleset([file]).version + ")",
    ]


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["simulate", "rules"]) == 2  # --input is required
    assert main(["--help"]) == 0
    capsys.readouterr()
    assert main(["check", "does/not/exist"]) == 1
    assert "does/not/exist:1:1: no such file or directory" in capsys.readouterr().out


def test_schema_is_json_schema_with_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {"queues", "calendars", "defaults", "rules", "tests"}
    condition = schema["$defs"]["Condition"]
    offered = condition["propertyNames"]["allOf"][0]["anyOf"][0]["enum"]
    assert "customer.tier" in offered and offered.count("all") == 1
    assert any(r"contact\.attributes" in key for key in condition["patternProperties"])
    rule = schema["$defs"]["RuleSpec"]["properties"]
    assert "continue" in rule and rule["when"]["then"] == {"$ref": "#/$defs/Condition"}
    route = schema["$defs"]["RouteSpec"]["properties"]
    assert {"queue", "priority", "priority_boost", "overflow", "preferred_agent"} <= set(route)


def _lines(count: int) -> list[bytes]:
    out = []
    for n in range(count):
        channel = ("chat", "email", "voice", "social")[n % 4]
        line = {
            "contact": {
                "channel": channel,
                "subject": "Refund please" if n % 8 == 1 else "hello",
                "attributes": {"ivr_digits": str(n % 4), "public": n % 3 == 0},
                "text": "worst service, refund now" if n % 2 else "hi",
            },
            "customer": {"tier": "vip" if n % 10 == 0 else None, "contacts_24h": n % 3},
            "now": f"2026-03-0{2 + n % 7}T{n % 24:02d}:30:00+00:00",
        }
        if n % 5 == 0:
            line["customer"]["id"] = str(uuid.UUID(int=n + 1))  # type: ignore[index]
        out.append(orjson.dumps(line))
    return out


def test_simulate_writes_one_decision_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _lines(400)
    lines[10] = b"{not json"
    lines[20] = b'{"contact": {"channel": "fax"}}'
    lines[30] = b'{"customer": {}}'
    lines[40] = b""
    source = tmp_path / "contacts.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    target = tmp_path / "out.ndjson"
    code = main(["simulate", str(SHIPPED), "--input", str(source), "--output", str(target)])
    assert code == 1  # bad lines make the run fail, after all others are done
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 11: not JSON:")
    assert err[1].startswith("line 21: contact.channel: Input should be 'chat'")
    assert err[2] == "line 31: missing 'contact' (an object with at least a channel)"
    assert err[3].startswith("396 decided, 3 bad lines")
    decisions = [orjson.loads(x) for x in target.read_bytes().splitlines()]
    assert len(decisions) == 396
    assert decisions[0]["line"] == 1 and decisions[-1]["line"] == 400
    ruleset = load_ruleset([SHIPPED])
    assert {d["ruleset"] for d in decisions} == {ruleset.version}
    assert {d["queue"] for d in decisions} <= set(ruleset.queues)
    assert {"vip", "public-complaint", "after-hours-voice", None} <= {d["rule"] for d in decisions}
    first = decisions[0]
    assert set(first) == {
        "line",
        "external_id",
        "channel",
        "queue",
        "priority",
        "skills",
        "sla_seconds",
        "tags",
        "preferred_agent",
        "overflow",
        "rule",
        "ruleset",
        "rollout",
    }
    assert first["external_id"] == "line-1"
    # the same input decides the same way on every run (customer ids from the line)
    again = tmp_path / "again.ndjson"
    main(["simulate", str(SHIPPED), "--input", str(source), "--output", str(again), "--trace"])
    capsys.readouterr()
    traced = [orjson.loads(x) for x in again.read_bytes().splitlines()]
    assert [{k: v for k, v in d.items() if k != "trace"} for d in traced] == decisions
    assert all(d["trace"] for d in traced)


def test_simulate_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "contacts.ndjson"
    source.write_bytes(b"\n".join(_lines(8)))
    assert main(["simulate", str(SHIPPED), "--input", str(source)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 8
    assert "\r" not in captured.err  # no progress indicator when stderr is not a terminal


def test_module_runs_as_a_program() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "router.commands.rules", "check", "rules/"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: ruleset ")
