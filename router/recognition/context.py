"""Assembling the customer context the rules see from what the store returns:
pure functions, no I/O."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from router.models import CHANNELS, CustomerContext

REPEAT_WINDOW = timedelta(hours=24)
SWITCH_WINDOW = timedelta(days=7)


_validate = CustomerContext.__pydantic_validator__.validate_python


def build_context(
    customer_id: uuid.UUID, known: bool, raw: dict[str, Any], *, channel: str, at: datetime
) -> CustomerContext:
    """The context from the resolve function's JSON, with the derived fields
    (totals, channels used, repeat, channel switch) computed for this contact.

    The JSON is validated in one call (the counts per channel too); the
    derived fields are then written into the model just built (nobody else
    holds it yet): cheaper than building the counts first, or a copy."""
    counts = raw.get("per_channel") or {}
    context: CustomerContext = _validate(
        {
            **raw,
            "customer_id": customer_id,
            "known": known,
            "attributes": raw.get("attributes") or {},
            "per_channel": {c: counts[c] for c in CHANNELS if c in counts},
            "journeys": raw.get("journeys") or [],
        }
    )
    fields = context.__dict__
    per_channel = context.per_channel.__dict__
    each = [per_channel[c] for c in CHANNELS]
    fields["contacts_24h"] = sum(c.contacts_24h for c in each)
    fields["contacts_7d"] = sum(c.contacts_7d for c in each)
    fields["contacts_30d"] = sum(c.contacts_30d for c in each)
    fields["channels_7d"] = [c for c, n in zip(CHANNELS, each, strict=True) if n.contacts_7d]
    journeys = fields["journeys"]
    fields["journey"] = journeys[0] if journeys else None
    last = fields["last"]
    if last is not None:
        fields["repeat"] = at - last.at <= REPEAT_WINDOW
        fields["channel_switch"] = at - last.at <= SWITCH_WINDOW and last.channel != channel
    return context


def anonymous_context(customer_id: uuid.UUID) -> CustomerContext:
    """The context of a contact without identifiers: a customer nobody knows,
    under an id of its own."""
    context: CustomerContext = _validate({"customer_id": customer_id, "known": False})
    return context
