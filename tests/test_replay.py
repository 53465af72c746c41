"""``omniroute rules simulate RULES --replay``: stored contacts decided again with
candidate rules, end to end against the test database."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from router.commands.replay import moment
from router.commands.rules import main
from router.models import now_ms, uuid7_time
from tests.support.api import Api, routed
from tests.support.examples import invoice_mail, order_chat
from tests.support.settings import ROOT

#: a line the service under test logs meanwhile (an overflow step of an
#: earlier test's contact falling due), not one of the report's
_SERVICE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _report(out: str) -> list[str]:
    """The report's lines of the captured output, their spacing evened."""
    return [" ".join(line.split()) for line in out.splitlines() if not _SERVICE_LINE.match(line)]


MOVED = """\
  - name: order-chats-to-billing
    when:
      contact.channel: chat
      contact.text: {matches: '\\b\\d{3}-\\d{7}\\b'}
    route: {queue: billing}

  - name: chat-order-page
"""

OVERFLOWING = """\
  - name: order-chats-to-billing
    when:
      contact.channel: chat
      contact.text: {matches: '\\b\\d{3}-\\d{7}\\b'}
    route:
      queue: billing
      overflow:
        - {after: 1s, queue: general}
        - {after: 3s, priority_boost: 10}

  - name: chat-order-page
"""


@pytest.fixture
def quiet_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command configures logging for the whole process; not in the test process."""
    monkeypatch.setattr("router.logs.configure", lambda settings: None)


async def replay(rules: Path, config: Path, since: datetime, until: datetime, *extra: str) -> int:
    args = ["simulate", str(rules), "--replay", "--since", since.isoformat()]
    args += ["--until", until.isoformat(), "--config", str(config), *extra]
    # the command runs its own event loop, as it does from the shell
    return await asyncio.to_thread(main, args)


@pytest.mark.usefixtures("quiet_logs")
async def test_replay_reports_what_the_candidate_rules_would_change(
    api: Api, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_bytes(orjson.dumps({"database": {"url": database_url}}))
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "10-routing.yaml"
    routing.write_text(routing.read_text().replace("  - name: chat-order-page\n", MOVED))

    await asyncio.sleep(0.01)  # records of earlier tests stay before the window
    since = now_ms()  # received_at is cut to the millisecond, so is the window's start
    chats = [await routed(api, "chat", **order_chat()) for _ in range(3)]
    await routed(api, "email", **invoice_mail())
    gone = await routed(api, "chat", **order_chat())
    await api.json("DELETE", f"/v1/customers/{gone['customer_id']}")
    until = datetime.now(UTC) + timedelta(seconds=1)

    changes = tmp_path / "changes.ndjson"
    capsys.readouterr()  # the service's own log lines so far
    assert await replay(candidate, config, since, until, "--output", str(changes)) == 0
    lines = _report(capsys.readouterr().out)
    assert lines[0].startswith("replayed 5 contacts received")
    assert {"changed 3", "unchanged 1", "erased 1 (skipped)"} <= set(lines)
    assert "orders -> billing 3" in lines
    assert "chat-order-page -> order-chats-to-billing 3" in lines
    assert "55 -> 50 3" in lines
    written = [orjson.loads(line) for line in changes.read_bytes().splitlines()]
    assert {w["contact_id"] for w in written} == {c["contact_id"] for c in chats}
    for w in written:
        assert (w["old"]["queue"], w["new"]["queue"]) == ("orders", "billing")
        assert w["old"] == next(c["decision"] for c in chats if c["contact_id"] == w["contact_id"])
        assert w["new"]["rule"] == "order-chats-to-billing"

    # the rules that decided them decide them again the same way
    capsys.readouterr()
    assert await replay(ROOT / "rules", config, since, until) == 0
    lines = _report(capsys.readouterr().out)
    assert {"changed 0", "unchanged 4", "erased 1 (skipped)"} <= set(lines)


@pytest.mark.usefixtures("quiet_logs")
async def test_replay_reports_what_would_have_overflowed_by_the_recorded_outcome_times(
    api: Api, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_bytes(orjson.dumps({"database": {"url": database_url}}))
    candidate = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", candidate)
    routing = candidate / "10-routing.yaml"
    routing.write_text(routing.read_text().replace("  - name: chat-order-page\n", OVERFLOWING))

    await asyncio.sleep(0.01)  # records of earlier tests stay before the window
    since = now_ms()  # received_at is cut to the millisecond, so is the window's start
    fast, slow, gone = [(await routed(api, "chat", **order_chat()))["contact_id"] for _ in range(3)]
    await routed(api, "email", **invoice_mail())  # no outcome: still waiting, no overflow
    until = datetime.now(UTC) + timedelta(seconds=1)
    # answered within a second: no step; after two: the first step; abandoned after five: both
    outcomes = [(fast, "answered", 0.5), (slow, "answered", 2), (gone, "abandoned", 5)]
    for cid, type_, after in outcomes:
        at = uuid7_time(uuid.UUID(cid)) + timedelta(seconds=after)
        body = {"type": type_, "at": at.isoformat()}
        await api.json("POST", f"/v1/contacts/{cid}/events", body, status=201)

    capsys.readouterr()
    assert await replay(candidate, config, since, until) == 0
    lines = _report(capsys.readouterr().out)
    assert lines[0].startswith("replayed 4 contacts received")
    assert "overflow (step -> queue):" in lines
    assert "step 0 (1s) -> general 2" in lines
    assert "step 1 (3s) -> general 1" in lines
    summary = next(line for line in lines if line.startswith("would overflow"))
    assert summary.startswith("would overflow 2 ") and "1 without an outcome" in summary

    # the rules that decided them overflow nothing for these contacts
    capsys.readouterr()
    assert await replay(ROOT / "rules", config, since, until) == 0
    out = capsys.readouterr().out
    assert "overflow (step -> queue):" not in out
    assert "would overflow 0 " in " ".join(out.split())


def test_replay_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(ROOT / "rules")
    assert main(["simulate", rules, "--replay"]) == 2
    assert "--replay needs --since" in capsys.readouterr().err
    assert main(["simulate", rules, "--input", "-", "--since", "7d"]) == 2
    assert main(["simulate", rules, "--replay", "--since", "soon"]) == 2
    assert "'soon' is neither a duration" in capsys.readouterr().err
    assert main(["simulate", rules, "--replay", "--since", "1d", "--until", "2d"]) == 2
    assert "--since must be before --until" in capsys.readouterr().err


def test_window_bounds() -> None:
    now = datetime(2026, 3, 8, 12, tzinfo=UTC)
    assert moment("7d", now) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert moment("1h30m", now) == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
    assert moment("2026-03-01T00:00:00Z", now) == datetime(2026, 3, 1, tzinfo=UTC)
    assert moment("2026-03-01", now) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        moment("3600", now)  # a bare number is ambiguous
