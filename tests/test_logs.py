"""Log lines are JSON, one a line, whatever values an event carries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from router.logs import configure
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
