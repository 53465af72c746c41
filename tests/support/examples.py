"""Test data: unique ids, the shipped example payloads (``examples/*.json``)
with changes, and people no other test uses."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from tests.support.settings import ROOT

#: The generic adapters' example payloads, one per channel.
EXAMPLES = ("chat", "email", "voice", "social")


def unique(prefix: str = "x") -> str:
    """``prefix`` and 12 random hex digits: an id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def example(name: str, **changes: Any) -> dict[str, Any]:
    """``examples/<name>.json`` with top-level fields replaced by ``changes``."""
    data: dict[str, Any] = orjson.loads((ROOT / "examples" / f"{name}.json").read_bytes())
    data.update(changes)
    return data


def person() -> dict[str, str]:
    """A customer no other test uses."""
    tag = unique("p")
    return {"email": f"{tag}@example.com", "visitor_id": tag}


def phone() -> str:
    """A US phone number (E.164) no other test uses, most likely."""
    digits = str(int(unique("")[1:], 16) % 10_000_000).zfill(7)
    return f"+1415{digits}"


def order_chat() -> dict[str, Any]:
    """A first chat quoting an order number: decided by chat-order-page."""
    return {"customer": person(), "text": "Where is 302-1234567?", "page_url": None}


def invoice_mail() -> dict[str, Any]:
    """A first email about an invoice, with an attachment: has-attachment, email-invoice."""
    who = person()
    return {"from": {"address": who["email"]}, "subject": "Question about INV-123456"}
