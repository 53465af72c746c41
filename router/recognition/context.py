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
    context: CustomerContext = _validate(
        {
            **raw,
            "customer_id": customer_id,
            "known": known,
            "attributes": raw.get("attributes") or {},
            # a channel left out is the one shared (frozen) count of nothing
            "per_channel": raw.get("per_channel") or {},
            "journeys": raw.get("journeys") or [],
        }
    )
    fields = context.__dict__
    per_channel = context.per_channel.__dict__
    n24 = n7 = n30 = 0
    used: list[str] = []
    for c in CHANNELS:
        each = per_channel[c]
        n24 += each.contacts_24h
        n30 += each.contacts_30d
        if each.contacts_7d:
            n7 += each.contacts_7d
            used.append(c)
    fields["contacts_24h"] = n24
    fields["contacts_7d"] = n7
    fields["contacts_30d"] = n30
    fields["channels_7d"] = used
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
