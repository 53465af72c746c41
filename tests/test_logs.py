"""Log lines are JSON, one a line, whatever values an event carries."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from router.logs import Logger, _Stamp, configure, per_iteration
from router.settings import LogSettings


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure(LogSettings(level="info", format="json"))
    yield
    structlog.reset_defaults()


def test_a_log_line_is_one_json_object(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    contact_id = uuid.uuid4()
    log = structlog.get_logger("omniroute.test")
    log.info(
        "contact_routed",
        contact_id=contact_id,
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        duration_ms=1.25,
        odd={1: "a key that is not text"},
        thing=object(),
    )
    log.debug("not_logged")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["event"] == "contact_routed"
    assert line["level"] == "info"
    assert line["contact_id"] == str(contact_id)
    assert line["at"].startswith("2026-01-02T03:04:05")
    assert line["duration_ms"] == 1.25
    assert line["odd"] == {"1": "a key that is not text"}
    assert line["thing"].startswith("<object object")
    assert "timestamp" in line


def test_a_logger_keeps_its_methods_only_while_loggers_are_cached(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Logger("omniroute.test")
    log.info("first", n=1)
    assert "info" in vars(log)  # configured: cached on first use, kept
    log.info("second", n=2)
    assert [json.loads(x)["event"] for x in capsys.readouterr().err.splitlines()] == [
        "first",
        "second",
    ]
    structlog.reset_defaults()  # structlog's defaults: not cached
    uncached = Logger("omniroute.test")
    uncached.info("third")
    assert "info" not in vars(uncached)
    assert "third" in capsys.readouterr().out


def test_the_line_keeps_its_keys_in_order_and_the_timestamp_its_format(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = structlog.get_logger("omniroute.test")
    before = datetime.now(UTC)
    log.info("contact_routed", queue="q", priority=5)
    log.warning("slow", stack_info=True)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", path="/x")
    after = datetime.now(UTC)
    routed, slow, failed = (json.loads(x) for x in capsys.readouterr().err.splitlines())
    assert list(routed) == ["queue", "priority", "event", "level", "timestamp"]
    stamp = routed["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp), stamp
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert list(slow) == ["event", "level", "timestamp", "stack"]
    assert slow["level"] == "warning"
    assert "test_logs.py" in slow["stack"] and "router/logs.py" not in slow["stack"]
    assert list(failed) == ["path", "event", "level", "timestamp", "exception"]
    assert failed["level"] == "error" and "ValueError: boom" in failed["exception"]


@pytest.mark.parametrize("ns", [1_764_556_800_000_000_000, 1_764_556_858_363_419_000])
def test_the_timestamp_is_what_isoformat_writes(ns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a whole second has no fraction, as datetime.isoformat() writes it
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    stamped = _Stamp()(None, "info", {})["timestamp"]
    expected = datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
    assert stamped == expected


class _Writes:
    """A stderr that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


async def test_lines_of_one_loop_iteration_go_out_in_one_write(
    json_logs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = _Writes()
    monkeypatch.setattr("sys.stderr", err)
    log = structlog.get_logger("omniroute.test")
    loop = asyncio.get_running_loop()
    with per_iteration(loop):
        log.info("one")
        log.info("two")
        assert err.writes == []  # held until the iteration ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(err.writes) == 1
        assert [json.loads(x)["event"] for x in err.writes[0].splitlines()] == ["one", "two"]
        # another thread's line is not held
        await asyncio.to_thread(log.info, "from_a_thread")
        assert json.loads(err.writes[-1])["event"] == "from_a_thread"
        log.info("three")
    # what is held when the block ends is written then
    assert json.loads(err.writes[-1])["event"] == "three"
    log.info("four")  # outside the block: at once
    assert json.loads(err.writes[-1])["event"] == "four"
    assert all(w.endswith("\n") for w in err.writes)


def test_a_plain_event_is_written_as_the_processors_write_it(
    json_logs: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a plain event goes to its line in one step; an event with a bound
    # context takes structlog's processors: the two lines are the same
    monkeypatch.setattr(time, "time_ns", lambda: 1_764_556_858_363_419_000)
    fields: dict[str, object] = {
        "contact_id": uuid.UUID("01938a6e-8f00-7000-8000-0123456789ab"),
        "known": True,
        "priority": 50,
        "duration_ms": 1.23,
        "rule": None,
        "odd": {1: "a key that is not text"},
        "thing": _Shown(),
    }
    log = structlog.get_logger("omniroute.test")
    for extra in ({}, {"big": 2**70}):  # orjson's line, and the standard library's
        log.info("contact_routed", **fields, **extra)
        log.bind(first="bound").info("contact_routed", **fields, **extra)
        log.warning("slow", **fields, **extra)
        log.bind().warning("slow", **fields, **extra)
    lines = capsys.readouterr().err.splitlines()
    for plain, bound, warned, warned_bound in (lines[:4], lines[4:]):
        assert bound.replace('"first":"bound",', "").replace('"first": "bound", ', "") == plain
        assert warned == warned_bound
    line = json.loads(lines[0])
    assert line["timestamp"] == "2025-12-01T02:40:58.363419Z"
    assert (line["odd"], line["thing"]) == ({"1": "a key that is not text"}, "shown")
    assert json.loads(lines[4])["big"] == 2**70


class _Shown:
    def __structlog__(self) -> str:
        return "shown"


def test_captured_logs_see_every_event(json_logs: None) -> None:
    log = structlog.get_logger("omniroute.test")
    log.info("before")  # the logger made (and kept) under the JSON lines
    with structlog.testing.capture_logs() as captured:
        log.info("contact_routed", queue="q")
    assert captured == [{"queue": "q", "event": "contact_routed", "log_level": "info"}]
