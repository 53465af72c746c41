"""For the rules engine tests: a small base ruleset, a fixed time and builders
of the contact and customer a rule sees."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.models import Contact, CustomerContext

BASE = """\
queues:
  general: {skills: [basic]}
  chat-q: {}
  vip: {skills: [vip]}
  returns: {}
  billing: {}
  after-hours: {}
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
    holidays: [2026-12-25]
    special_days: {2026-12-24: "09:00-12:00"}
defaults:
  queue: general
  timezone: Europe/Berlin
  sla: 1h
  chat: {queue: chat-q, sla: 2m}
"""

#: a Monday, 12:00 in Berlin
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def contact(channel: str = "chat", **fields: Any) -> Contact:
    return Contact.model_validate(
        {"channel": channel, "provider": "test", "external_id": "x-1", **fields}
    )


def customer(**fields: Any) -> CustomerContext:
    fields.setdefault("customer_id", uuid.UUID(int=1))
    fields.setdefault("known", True)
    return CustomerContext.model_validate(fields)


SHIPPED_RULES = Path(__file__).resolve().parents[2] / "rules"


def shipped_queues() -> str:
    """The shipped ``00-queues.yaml`` without its tests (which expect the
    shipped routing): for a rules dir that pairs the queues with other rules."""
    return (SHIPPED_RULES / "00-queues.yaml").read_text().split("\ntests:")[0]
