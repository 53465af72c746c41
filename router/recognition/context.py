"""Assembling the customer context the rules see from what the store returns:
pure functions, no I/O."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from router.models import (
    CHANNELS,
    ChannelCounts,
    CustomerContext,
    PerChannel,
)

REPEAT_WINDOW = timedelta(hours=24)
SWITCH_WINDOW = timedelta(days=7)


def build_context(
    customer_id: uuid.UUID, known: bool, raw: dict[str, Any], *, channel: str, at: datetime
) -> CustomerContext:
    """The context from the resolve function's JSON, with the derived fields
    (totals, channels used, repeat, channel switch) computed for this contact."""
    counts = raw.get("per_channel") or {}
    per_channel = PerChannel(**{c: ChannelCounts(**counts[c]) for c in CHANNELS if c in counts})
    each = [getattr(per_channel, c) for c in CHANNELS]
    context = CustomerContext.model_validate(
        {
            **raw,
            "customer_id": customer_id,
            "known": known,
            "attributes": raw.get("attributes") or {},
            "per_channel": per_channel,
            "contacts_24h": sum(c.contacts_24h for c in each),
            "contacts_7d": sum(c.contacts_7d for c in each),
            "contacts_30d": sum(c.contacts_30d for c in each),
            "channels_7d": [c for c in CHANNELS if getattr(per_channel, c).contacts_7d],
            "journeys": raw.get("journeys") or [],
        }
    )
    # set on the model just built (nobody else holds it yet): cheaper than a copy
    last = context.last
    context.journey = context.journeys[0] if context.journeys else None
    if last is not None:
        context.repeat = at - last.at <= REPEAT_WINDOW
        context.channel_switch = at - last.at <= SWITCH_WINDOW and last.channel != channel
    return context
