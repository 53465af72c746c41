"""Which configured destinations receive an event, and the event as they
receive it. Computed in Python before the record's statement, so the outbox
rows go in with the record in one round trip.

The event body (Standard Webhooks' recommended shape)::

    {"type": "contact.routed", "timestamp": "2026-01-31T12:00:00.123Z",
     "data": {"contact_id", "customer_id", "adapter", "channel",
              "external_id", "decision": {...}}}

Contacts of the ``zendesk`` adapter whose conversation names its ticket
also carry ``data.ticket_id`` (what the ``zendesk`` destination updates).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.models import uuid7
from router.settings import DestinationSettings
from router.store import NewRecord
from router.store.deliveries import Outgoing


def _time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Filter:
    name: str
    adapters: frozenset[str] | None
    channels: frozenset[str] | None
    queues: frozenset[str] | None
    events: frozenset[str] | None

    def matches(self, event_type: str, adapter: str, channel: str, queue: str | None) -> bool:
        return (
            (self.events is None or event_type in self.events)
            and (self.adapters is None or adapter in self.adapters)
            and (self.channels is None or channel in self.channels)
            and (self.queues is None or queue in self.queues)
        )


def _set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


class Destinations:
    """The configured destinations' filters; ``routed`` and ``events`` give
    the outbox rows of an event, one per matching destination."""

    def __init__(self, destinations: Sequence[DestinationSettings]) -> None:
        self._filters = [
            _Filter(
                d.name,
                _set(d.adapters),
                _set(d.channels),
                _set(d.queues),
                _set(d.events),
            )
            for d in destinations
        ]

    def __bool__(self) -> bool:
        return bool(self._filters)

    def events(
        self,
        event_type: str,
        *,
        adapter: str,
        channel: str,
        queue: str | None,
        contact_id: uuid.UUID | None,
        data: dict[str, Any],
        at: datetime,
        event_id: uuid.UUID | None = None,
    ) -> list[Outgoing]:
        """The outbox rows of one event: one per destination whose filters
        match, each with an id of its own (uuid5 of ``event_id`` and the
        destination when given, so writing the same event twice is idempotent)."""
        payload = {"type": event_type, "timestamp": _time(at), "data": data}
        return [
            Outgoing(
                uuid7(at) if event_id is None else uuid.uuid5(event_id, f.name),
                f.name,
                event_type,
                contact_id,
                payload,
            )
            for f in self._filters
            if f.matches(event_type, adapter, channel, queue)
        ]

    def routed(self, record: NewRecord) -> list[Outgoing]:
        """The ``contact.routed`` rows of a record about to be written."""
        if not self._filters:
            return []
        data: dict[str, Any] = {
            "contact_id": str(record.contact_id),
            "customer_id": None if record.customer_id is None else str(record.customer_id),
            "adapter": record.adapter,
            "channel": record.contact.channel,
            "external_id": record.contact.external_id,
            "decision": record.decision.model_dump(mode="json"),
        }
        ticket = record.contact.attributes.get("ticket_id")
        if record.contact.provider == "zendesk" and isinstance(ticket, str):
            data["ticket_id"] = ticket  # the zendesk destination's ticket to update
        return self.events(
            "contact.routed",
            adapter=record.adapter,
            channel=record.contact.channel,
            queue=record.decision.queue,
            contact_id=record.contact_id,
            data=data,
            at=record.received_at,
        )
