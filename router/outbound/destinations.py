"""Which configured destinations receive an event, and the event as they
receive it. Computed in Python before the record's statement, so the outbox
rows go in with the record in one round trip; for the lifecycle's changes,
inside their transactions (``steps``, ``expired``, ``moved``, passed down to
the store as functions).

The event body (Standard Webhooks' recommended shape)::

    {"type": "contact.routed", "timestamp": "2026-01-31T12:00:00.123Z",
     "data": {"contact_id", "customer_id", "adapter", "channel",
              "external_id", "decision": {...}}}

Contacts of the ``zendesk`` adapter whose conversation names its ticket
also carry ``data.ticket_id`` (what the ``zendesk`` destination updates).

``contact.step`` carries ``step`` (index, due, at, from, to) and ``placement``
instead of ``decision``; ``contact.expired`` ``state`` and ``placement``;
the outcome events (``contact.assigned``...) ``from``, ``to``, ``event`` and
``placement`` (docs/deliveries.md). Their ids are derived from the contact
(and the step index or the state reached), so writing the same change twice
writes one event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from typing import Any

import orjson

from router.models import uuid7, uuid_of_int, uuid_text
from router.settings import DestinationSettings
from router.store import NewRecord
from router.store.deliveries import Outgoing
from router.store.lifecycle import Expired, StepApplied, Transition
from router.store.offers import Made

#: The namespace of the ids of lifecycle events (``uuid5`` of the contact and what changed).
EVENTS = uuid.UUID("5f0c6f7e-2b6a-4d43-9a57-0c1b2a3e4d5f")
_EVENTS = EVENTS.bytes

#: What ``uuid.UUID(bytes=..., version=5)`` clears and sets in the SHA-1's
#: first 16 bytes: the variant (RFC 4122) and the version.
_V5_CLEAR = ~(0xC000 << 48 | 0xF000 << 64)
_V5_SET = 0x8000 << 48 | 5 << 76


def _v5(namespace: bytes, name: bytes) -> int:
    """The integer of ``uuid.uuid5`` of a namespace (its 16 bytes) and a name
    (UTF-8), without ``uuid5``'s import and ``UUID``'s slow path for bytes."""
    return int.from_bytes(sha1(namespace + name).digest()[:16]) & _V5_CLEAR | _V5_SET


def event_id(contact_id: uuid.UUID, what: str) -> uuid.UUID:
    """The id of a lifecycle event about ``contact_id`` (``step/2``, ``expired``):
    ``uuid.uuid5(EVENTS, f"{contact_id}/{what}")``."""
    return uuid_of_int(_v5(_EVENTS, f"{uuid_text(contact_id)}/{what}".encode()))


#: ``YYYY-MM-DDTHH:MM:SS`` of the seconds formatted lately (UTC), by their fields
_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}
#: ``.mmmZ`` of each millisecond
_MILLIS = [f".{n:03d}Z" for n in range(1000)]


def _time(at: datetime) -> str:
    """``at`` in UTC to the millisecond (truncated), ``Z`` for its offset:
    ``at.astimezone(UTC).isoformat(timespec="milliseconds")`` with ``Z``.
    A time in UTC (the driver's and the pipeline's) is put together from its
    second's text, formatted once a second, and its millisecond's."""
    if at.tzinfo is not UTC:
        return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    key = (at.year, at.month, at.day, at.hour, at.minute, at.second)
    second = _SECONDS.get(key)
    if second is None:
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        second = _SECONDS[key] = at.replace(microsecond=0, tzinfo=None).isoformat()
    return second + _MILLIS[at.microsecond // 1000]


@dataclass(frozen=True, slots=True)
class _Filter:
    name: str
    adapters: frozenset[str] | None
    channels: frozenset[str] | None
    queues: frozenset[str] | None
    events: frozenset[str] | None
    #: the name's UTF-8 (the name of the ``uuid5`` of an event's row)
    key: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.name.encode())

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
        self._matches: dict[tuple[str, str, str, str | None], list[_Filter]] = {}

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
        return self._rows(
            self._matching(event_type, adapter, channel, queue),
            event_type,
            contact_id,
            data,
            at,
            None if event_id is None else event_id.bytes,
        )

    def _matching(
        self, event_type: str, adapter: str, channel: str, queue: str | None
    ) -> list[_Filter]:
        """The destinations whose filters take such an event (kept by what
        they depend on: few event types, adapters, channels and queues)."""
        key = (event_type, adapter, channel, queue)
        matching = self._matches.get(key)
        if matching is None:
            if len(self._matches) >= 4096:
                self._matches.clear()
            matching = self._matches[key] = [
                f for f in self._filters if f.matches(event_type, adapter, channel, queue)
            ]
        return matching

    def _rows(
        self,
        matching: list[_Filter],
        event_type: str,
        contact_id: uuid.UUID | None,
        data: dict[str, Any],
        at: datetime,
        event_id: bytes | None,
        timestamp: str | None = None,
    ) -> list[Outgoing]:
        """``events`` for the ``matching`` destinations, with the event's id
        as its 16 bytes and its ``timestamp`` when already formatted. The
        event is encoded once, for all its rows (``data`` may hold
        ``orjson.Fragment``: JSON text already made)."""
        if not matching:
            return []
        payload = {
            "type": event_type,
            "timestamp": _time(at) if timestamp is None else timestamp,
            "data": data,
        }
        body = orjson.dumps(payload).decode()
        return [
            Outgoing(
                uuid7(at) if event_id is None else uuid_of_int(_v5(event_id, f.key)),
                f.name,
                event_type,
                contact_id,
                body,
            )
            for f in matching
        ]

    def routed(self, record: NewRecord) -> list[Outgoing]:
        """The ``contact.routed`` rows of a record about to be written."""
        contact, decision = record.contact, record.decision
        matching = self._matching("contact.routed", record.adapter, contact.channel, decision.queue)
        if not matching:
            return []
        data = _who(
            uuid_text(record.contact_id),
            record.customer_id,
            record.adapter,
            contact.channel,
            contact.external_id,
        )
        # the decision's own JSON, as its model writes it (what
        # ``orjson.dumps(decision.model_dump(mode="json"))`` writes: strings,
        # integers, lists and null), put in the event's text as it is
        data["decision"] = orjson.Fragment(decision.model_dump_json())
        ticket = contact.attributes.get("ticket_id")
        if contact.provider == "zendesk" and isinstance(ticket, str):
            data["ticket_id"] = ticket  # the zendesk destination's ticket to update
        return self._rows(
            matching, "contact.routed", record.contact_id, data, record.received_at, None
        )

    def steps(self, applied: Sequence[StepApplied]) -> list[Outgoing]:
        """The ``contact.step`` rows of overflow steps just applied (filtered
        on the queue the step moved the contact to)."""
        out: list[Outgoing] = []
        for s in applied:
            out += self.events(
                "contact.step",
                adapter=s.adapter,
                channel=s.channel,
                queue=s.after.queue,
                contact_id=s.contact_id,
                data={
                    **_who(
                        uuid_text(s.contact_id), s.customer_id, s.adapter, s.channel, s.external_id
                    ),
                    "step": s.as_json(),
                    "placement": s.after.as_json(),
                },
                at=s.at,
                event_id=event_id(s.contact_id, f"step/{s.step}"),
            )
        return out

    def expired(self, gone: Sequence[Expired]) -> list[Outgoing]:
        """The ``contact.expired`` rows of contacts whose lifetime just ran out."""
        out: list[Outgoing] = []
        for g in gone:
            out += self.events(
                "contact.expired",
                adapter=g.adapter,
                channel=g.channel,
                queue=g.queue,
                contact_id=g.contact_id,
                data={
                    **_who(
                        uuid_text(g.contact_id), g.customer_id, g.adapter, g.channel, g.external_id
                    ),
                    "state": g.state,
                    "placement": g.placement.as_json(),
                },
                at=g.at,
                event_id=event_id(g.contact_id, "expired"),
            )
        return out

    def offered(self, made: Sequence[Made]) -> list[Outgoing]:
        """The ``contact.offered`` rows of offers just made: the agent, the
        offer (accept or reject it by id) and when it expires."""
        out: list[Outgoing] = []
        for m in made:
            matching = self._matching("contact.offered", m.adapter, m.channel, m.queue)
            if not matching:
                continue
            contact_id, offer_id = uuid_text(m.contact_id), uuid_text(m.offer_id)
            offered_at = _time(m.offered_at)  # the event's timestamp as well
            data = _who(contact_id, m.customer_id, m.adapter, m.channel, m.external_id)
            data["agent"] = m.agent_id
            data["offer_id"] = offer_id
            data["queue"] = m.queue
            data["units"] = m.units
            data["offered_at"] = offered_at
            data["expires_at"] = _time(m.expires_at)
            data["offer"] = m.offers
            out += self._rows(
                matching,
                "contact.offered",
                m.contact_id,
                data,
                m.offered_at,
                _v5(_EVENTS, f"{contact_id}/offer/{offer_id}".encode()).to_bytes(16),
                offered_at,
            )
        return out

    def moved(self, change: Transition) -> list[Outgoing]:
        """The rows of an outcome event's lifecycle change: ``contact.assigned``,
        ``contact.answered`` (the open state it moved to), ``contact.abandoned``,
        ``contact.resolved``, ``contact.closed`` (the outcome that closed it)."""
        place = change.placement
        return self.events(
            f"contact.{change.after}",
            adapter=change.adapter,
            channel=change.channel,
            queue=None if place is None else place.queue,
            contact_id=change.contact_id,
            data={
                **_who(
                    uuid_text(change.contact_id),
                    change.customer_id,
                    change.adapter,
                    change.channel,
                    change.external_id,
                ),
                "from": change.before,
                "to": change.after,
                "event": change.type_,
                "placement": None if place is None else place.as_json(),
                **({} if change.agent is None else {"agent": change.agent}),
            },
            at=change.at or datetime.now(UTC),
            event_id=event_id(change.contact_id, change.after),
        )


def _who(
    contact_id: str,
    customer_id: uuid.UUID | None,
    adapter: str,
    channel: str,
    external_id: str | None,
) -> dict[str, Any]:
    """What every event's ``data`` starts with: which contact it is about."""
    return {
        "contact_id": contact_id,
        "customer_id": None if customer_id is None else uuid_text(customer_id),
        "adapter": adapter,
        "channel": channel,
        "external_id": external_id,
    }
