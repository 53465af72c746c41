"""Assembling the customer context the rules see from what the store returns:
pure functions, no I/O."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from router.models import CHANNELS, CustomerContext

REPEAT_WINDOW = timedelta(hours=24)
SWITCH_WINDOW = timedelta(days=7)


_validate = CustomerContext.__pydantic_validator__.validate_python
_validate_json = CustomerContext.__pydantic_validator__.validate_json
_NO_COUNTS: dict[str, Any] = {}
_ZERO_CHANNELS = dict.fromkeys(CHANNELS, _NO_COUNTS)


def build_context(
    customer_id: uuid.UUID,
    known: bool,
    raw: str | dict[str, Any],
    *,
    channel: str,
    at: datetime,
) -> CustomerContext:
    """The context from the resolve function's JSON (its text, as the store
    reads it, or decoded), with the derived fields (totals, channels used,
    repeat, channel switch) computed for this contact.

    The JSON is validated in one call (the counts per channel too); the
    derived fields are then written into the model just built (nobody else
    holds it yet): cheaper than building the counts first, or a copy.
    The text is validated as it is, the customer's id and ``known`` added
    at its end (the last of a name counts, as ``{**raw, ...}`` does): no
    decoding into Python objects first. Text that this refuses (a ``null``
    for the attributes, say) is decoded and validated as a dict would be."""
    if isinstance(raw, str):
        context = _from_text(customer_id, known, raw)
    else:
        context = _from_dict(customer_id, known, raw)
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


def _from_text(customer_id: uuid.UUID, known: bool, text: str) -> CustomerContext:
    head = text.rstrip()
    if head.endswith("}"):
        head = head[:-1].rstrip()
    if head.startswith("{") and not head.endswith("{"):  # an object with members
        try:
            context: CustomerContext = _validate_json(
                f'{head},"customer_id":"{customer_id}","known":{"true" if known else "false"}}}'
            )
            return context
        except ValidationError:
            pass  # refused as it is: as a dict, which says why if it is refused again
    return _from_dict(customer_id, known, orjson.loads(text))


def _from_dict(customer_id: uuid.UUID, known: bool, raw: dict[str, Any]) -> CustomerContext:
    counts = raw.get("per_channel") or {}
    context: CustomerContext = _validate(
        {
            **raw,
            "customer_id": customer_id,
            "known": known,
            "attributes": raw.get("attributes") or {},
            # every channel named: none is left to a default factory (a Python call)
            "per_channel": {c: counts[c] if c in counts else _NO_COUNTS for c in CHANNELS},
            "journeys": raw.get("journeys") or [],
        }
    )
    return context


def anonymous_context(customer_id: uuid.UUID) -> CustomerContext:
    """The context of a contact without identifiers: a customer nobody knows,
    under an id of its own."""
    context: CustomerContext = _validate(
        {"customer_id": customer_id, "known": False, "per_channel": _ZERO_CHANNELS}
    )
    return context
