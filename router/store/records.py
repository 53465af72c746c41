"""The routed-contact record: write it once (idempotent on adapter + external
id), read one, list many with keyset pagination. What is read comes back as
typed records (``ContactSummary``, ``StoredContact``, ``Snapshot``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypedDict

from router.models import Contact, CustomerContext, Decision, uuid7_time
from router.store import agent_work, deliveries, lifecycle
from router.store.deliveries import Outgoing

#: What events a written record puts in the outbox (the destinations whose
#: filters match it, computed before the statement); none when not given.
Outbox = Callable[["NewRecord"], Sequence[Outgoing]]

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class EarlierDelivery:
    """The record of an earlier delivery with the same (adapter, external id):
    what a retried delivery is answered with."""

    contact_id: uuid.UUID
    customer_id: uuid.UUID | None
    decision: Decision


@dataclass(slots=True)
class NewRecord:
    """A routed contact's record, as the pipeline hands it to the store
    (never changed once made)."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    contact: Contact
    customer_id: uuid.UUID | None
    context: CustomerContext
    decision: Decision
    trace: list[dict[str, Any]] | None
    timings: dict[str, float]
    context_degraded: bool = False
    #: seconds the contact stays open (``docs/lifecycle.md``); ``None``: its
    #: lifecycle is not kept (the adapter or channel opted out)
    lifetime: float | None = None
    #: its queue is assigned by omniroute (``docs/agents.md``): the insert
    #: wakes the assigners (``NOTIFY omniroute_assign``)
    assign: bool = False
    #: the agent offered it first (the decision's, else the customer's last
    #: agent), and until when only that agent is
    preferred_agent: str | None = None
    preferred_until: datetime | None = None
    #: the rollout sides ("rule:in,other:out"; ``Evaluation.rollout``), if any
    rollout: str | None = None


_COLUMNS = [
    # (column, SQL type of its field in ``record_row`` or None when it is
    # taken from the record's document, expression in the SELECT)
    ("contact_id", "uuid", None),
    ("received_at", "timestamptz", None),
    ("adapter", "text", None),
    ("provider", "text", None),
    ("channel", "text", None),
    ("external_id", "text", None),
    ("thread_id", "text", None),
    ("customer_id", "uuid", None),
    ("known_customer", "bool", None),
    ("queue", "text", None),
    ("priority", "int", None),
    ("skills", None, "ARRAY(SELECT jsonb_array_elements_text(i.doc -> 'decision' -> 'skills'))"),
    ("sla_seconds", "int", None),
    ("tags", None, "ARRAY(SELECT jsonb_array_elements_text(i.doc -> 'decision' -> 'tags'))"),
    ("preferred_agent", "text", None),
    ("rule", "text", None),
    ("ruleset", "text", None),
    ("contact", None, "i.doc -> 'contact'"),
    ("context", None, "i.doc -> 'context'"),
    ("decision", None, "i.doc -> 'decision'"),
    ("trace", None, "nullif(i.doc -> 'trace', 'null')"),
    ("timings", None, "i.doc -> 'timings'"),
    ("tier", "text", None),
    ("repeat_24h", "bool", None),
    ("repeat_7d", "bool", None),
    ("previous_channel", "text", None),
    ("channel_switch", "bool", None),
    ("context_degraded", "bool", None),
    ("routing_ms", "real", None),
    ("rollout", "text", None),
]

#: Passed for the contact's open row only (``open_contacts``, see ``lifecycle``).
_OPEN = [
    ("expires_at", "timestamptz"),
    ("next_step_at", "timestamptz"),
    ("offer_first", "text"),
    ("preferred_until", "timestamptz"),
    ("assign", "bool"),
]
#: The fields of one record's row as ``_row`` gives them: the composite type
#: ``record_row`` (migration 0030), whose array is the insert's one argument
#: for the batch (a field added or changed here is a new type: see the
#: migration). The record's JSON values are one document, one JSON text per
#: record (``_Document``): encoded in one call, parsed once.
ROW_FIELDS = [(c, t) for c, t, _ in _COLUMNS if t is not None] + _OPEN + [("document", "text")]


class _Document(TypedDict):
    contact: Contact
    context: CustomerContext
    decision: Decision
    trace: list[dict[str, Any]] | None
    timings: dict[str, float]


_by_pydantic = TypeAdapter(_Document).serializer.to_json


#: The model classes ``_fields`` has met: a class's membership is one set
#: lookup, where ``isinstance(value, BaseModel)`` of a subclass's instance
#: goes through the metaclass's (``ABCMeta``'s) ``__instancecheck__`` in
#: Python, and a record's document holds a dozen models.
_MODELS: set[type] = set()


def _fields(value: Any) -> Any:
    """orjson's ``default`` for the document: a model as its fields (the
    document's models have no aliases nor serializers of their own, so that
    is what pydantic writes), a UUID of a subclass (the driver's) as text."""
    if type(value) in _MODELS:
        return value.__dict__
    if isinstance(value, BaseModel):
        _MODELS.add(type(value))
        return value.__dict__
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _document(document: _Document) -> str:
    """The record's document as JSON: what pydantic's serializer writes (the
    same text for every value but numbers, which PostgreSQL reads into jsonb
    alike), by orjson in about half its time. A value orjson does not
    encode (an integer past 64 bits, a key that is not text) leaves it to
    pydantic."""
    try:
        return orjson.dumps(document, default=_fields, option=orjson.OPT_UTC_Z).decode()
    except TypeError:
        return _by_pydantic(document).decode()


# Many records in one statement (one transaction, one commit): the first
# delivery of each (adapter, external_id) takes the key and writes its record,
# its open row when its lifecycle is kept, and its outbox events; a key
# already taken (earlier, concurrently, or twice in this batch) writes nothing.
# The records arrive as one array of ``record_row`` ($1: a row a record, each
# field to its own encoder), the outbox events as one array a column (they
# are fewer, often none).
_OUTBOX_ARRAYS = ", ".join(f"${1 + n}::{t}[]" for n, t in enumerate(deliveries.INSERT_TYPES, 1))
_INSERT_MANY = f"""
WITH i AS (
    SELECT t.*, t.document::jsonb AS doc
      FROM unnest($1::record_row[]) AS t
), key AS (
    INSERT INTO contact_keys (adapter, external_id, contact_id, received_at)
    SELECT adapter, external_id, contact_id, received_at FROM i
    ON CONFLICT DO NOTHING
    RETURNING contact_id
), rec AS (
    INSERT INTO contacts ({", ".join(c for c, _, _ in _COLUMNS)})
    SELECT {", ".join(e or f"i.{c}" for c, _, e in _COLUMNS)}
      FROM i JOIN key USING (contact_id)
    RETURNING contact_id
), opened AS (
    INSERT INTO open_contacts (contact_id, received_at, adapter, channel, queue, priority,
                               skills, sla_seconds, overflow, next_step_at, expires_at,
                               preferred_agent, preferred_until)
    SELECT i.contact_id, i.received_at, i.adapter, i.channel, i.queue, i.priority,
           ARRAY(SELECT jsonb_array_elements_text(i.doc -> 'decision' -> 'skills')),
           i.sla_seconds, i.doc -> 'decision' -> 'overflow', i.next_step_at, i.expires_at,
           i.offer_first, i.preferred_until
      FROM i JOIN rec USING (contact_id)
     WHERE i.expires_at IS NOT NULL
    RETURNING contact_id
), woke AS (
    -- contacts for an assigned queue wake the assigners (sent at commit, once)
    SELECT pg_notify('{agent_work.CHANNEL}', 'contacts')
     WHERE EXISTS (SELECT 1 FROM i JOIN opened USING (contact_id) WHERE i.assign)
), logged AS (
    -- the live stream's log (``live``): the contact was routed
    INSERT INTO lifecycle_log (contact_id, kind, queue, channel, data)
    SELECT i.contact_id, 'routed', i.queue, i.channel,
           jsonb_build_object('adapter', i.adapter, 'received_at', i.received_at,
                              'priority', i.priority, 'rule', i.rule, 'ruleset', i.ruleset,
                              'open', i.expires_at IS NOT NULL)
      FROM i JOIN rec USING (contact_id)
), o AS (
    SELECT * FROM unnest({_OUTBOX_ARRAYS})
             AS o({deliveries.INSERT_COLUMNS})
), outbox AS (
    INSERT INTO deliveries ({deliveries.INSERT_COLUMNS})
    SELECT o.delivery_id, o.destination, o.event_type, o.contact_id, o.payload::jsonb
      FROM o JOIN key USING (contact_id)
)
SELECT contact_id FROM rec, (SELECT count(*) FROM woke) AS w
"""

_EARLIER = """
SELECT k.adapter, k.external_id, c.contact_id, c.customer_id, c.decision
  FROM unnest($1::text[], $2::text[]) AS w(adapter, external_id)
  JOIN contact_keys k ON k.adapter = w.adapter AND k.external_id = w.external_id
  JOIN contacts c ON c.contact_id = k.contact_id AND c.received_at = k.received_at
"""


def _row(r: NewRecord) -> tuple[Any, ...]:
    """The record's ``record_row``: its values in the order of ``ROW_FIELDS``."""
    d = r.decision
    context = r.context
    contact = r.contact
    received_at = r.received_at
    last = context.last
    since = received_at - last.at if last is not None else None  # one subtraction (time zones)
    recent = since is not None and since <= WEEK
    return (
        r.contact_id,
        received_at,
        r.adapter,
        contact.provider,
        contact.channel,
        contact.external_id,
        contact.thread_id,
        r.customer_id,
        context.known,
        d.queue,
        d.priority,
        d.sla_seconds,
        d.preferred_agent,
        d.rule,
        d.ruleset,
        context.tier,
        since is not None and since <= DAY,
        recent,
        last.channel if recent and last is not None else None,
        recent and last is not None and last.channel != contact.channel,
        r.context_degraded,
        r.timings.get("total_ms"),
        r.rollout,
        *_open(r),
        _document(
            {
                "contact": contact,
                "context": context,
                "decision": d,
                "trace": r.trace,
                "timings": r.timings,
            }
        ),
    )


def _open(r: NewRecord) -> tuple[Any, ...]:
    """The open row's own values: expiry, first step due, the preferred agent
    (its steps are the decision's, in the document)."""
    if r.lifetime is None:
        return (None, None, None, None, False)
    return (
        r.received_at + timedelta(seconds=r.lifetime),
        lifecycle.first_due(r.received_at, r.decision.overflow),
        r.preferred_agent,
        r.preferred_until,
        r.assign,
    )


async def insert_many(
    con: asyncpg.Connection | asyncpg.Pool,
    records: Sequence[NewRecord],
    *,
    outbox: Outbox | None = None,
) -> list[EarlierDelivery | None]:
    """Write the records, and the outbox events ``outbox`` gives for each, in
    one statement. For each record: ``None`` when it was written, else the
    earlier delivery's record (and its events are not written again)."""
    rows = [_row(r) for r in records]
    events = [e for r in records for e in outbox(r)] if outbox is not None else []
    arguments = (rows, *deliveries.columns(events))
    written = {r["contact_id"] for r in await con.fetch(_INSERT_MANY, *arguments)}
    out: list[EarlierDelivery | None] = [None] * len(records)
    lost = [n for n, r in enumerate(records) if r.contact_id not in written]
    if lost:
        found = {
            (row["adapter"], row["external_id"]): EarlierDelivery(
                row["contact_id"],
                row["customer_id"],
                Decision.model_validate(row["decision"]),
            )
            for row in await con.fetch(
                _EARLIER,
                [records[n].adapter for n in lost],
                [records[n].contact.external_id for n in lost],
            )
        }
        for n in lost:
            key = (records[n].adapter, records[n].contact.external_id)
            if key not in found:  # the key exists but its record is gone (erased or expired)
                raise LookupError("the earlier delivery's record no longer exists")
            out[n] = found[key]
    return out


# -- reading ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """A record as the history lists it: the decision and timings as stored
    (JSON objects), the reporting and outcome columns flat."""

    contact_id: uuid.UUID
    received_at: datetime
    adapter: str
    provider: str
    channel: str
    external_id: str
    thread_id: str | None
    customer_id: uuid.UUID | None
    known_customer: bool
    decision: dict[str, Any]
    timings: dict[str, Any]
    tier: str | None
    repeat_24h: bool
    repeat_7d: bool
    previous_channel: str | None
    channel_switch: bool
    context_degraded: bool
    routing_ms: float | None
    outcome: str | None
    agent: str | None
    assigned_at: datetime | None
    answered_at: datetime | None
    abandoned_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla_met: bool | None
    #: the rollout sides, "rule:in,other:out" (``None``: no rollout rule applied)
    rollout: str | None
    #: offers made to agents (assignment by omniroute), and when the first was
    offers_made: int
    offered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a stored record's decision was made from: the normalized contact
    and the customer context the rules saw (as stored: they may have been
    erased or redacted since), the decision, and when it was received."""

    contact_id: uuid.UUID
    received_at: datetime
    contact: dict[str, Any]
    context: dict[str, Any]
    decision: dict[str, Any]
    #: when it stopped waiting: its first outcome event (assigned, answered,
    #: abandoned...) or its expiry; ``None`` while it waits (or when unknown)
    waited_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredContact(ContactSummary):
    """One whole record: the summary and the snapshots with the rule trace."""

    contact: dict[str, Any]
    context: dict[str, Any]
    trace: list[dict[str, Any]] | None
    #: the overflow steps applied, in order (``lifecycle.StepApplied.as_json``)
    steps: list[dict[str, Any]]

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.contact_id, self.received_at, self.contact, self.context, self.decision
        )


#: The columns of ``ContactSummary``, in its order.
SUMMARY_COLUMNS = ", ".join(ContactSummary.__dataclass_fields__)

#: Filters of the history API: query parameter -> SQL column.
FILTERS = {
    "channel": "channel",
    "queue": "queue",
    "customer_id": "customer_id",
    "adapter": "adapter",
    "rule": "rule",
    "ruleset": "ruleset",
    "outcome": "outcome",
    "agent": "agent",
}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which records, in which order: the history API's filters, newest first
    unless ``ascending``."""

    filters: dict[str, Any]
    since: datetime | None = None
    until: datetime | None = None
    tag: str | None = None
    # (received_at, contact_id) of the last row seen: the rows after it in this order
    after: tuple[datetime, uuid.UUID] | None = None
    ascending: bool = False
    #: only the open contacts in this lifecycle state (waiting, assigned, answered)
    state: str | None = None

    def where(self, args: list[Any]) -> str:
        """The WHERE clause (or ""), appending its arguments to ``args``."""
        where: list[str] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        for key, value in self.filters.items():
            where.append(f"{FILTERS[key]} = {arg(value)}")
        if self.tag is not None:
            where.append(f"tags @> ARRAY[{arg(self.tag)}]::text[]")
        if self.state is not None:
            # driven by the open rows: in proportion to what is open, not to the history
            where.append(
                "(contact_id, received_at) IN (SELECT contact_id, received_at"
                f" FROM open_contacts WHERE state = {arg(self.state)})"
            )
        if self.since is not None:
            where.append(f"received_at >= {arg(self.since)}")
        if self.until is not None:
            where.append(f"received_at < {arg(self.until)}")
        if self.after is not None:
            at, contact_id = self.after
            beyond = ">" if self.ascending else "<"
            where.append(f"(received_at, contact_id) {beyond} ({arg(at)}, {arg(contact_id)})")
        return " WHERE " + " AND ".join(where) if where else ""

    @property
    def order_by(self) -> str:
        # Both orders walk the same (received_at DESC, contact_id DESC) indexes.
        if self.ascending:
            return " ORDER BY received_at, contact_id"
        return " ORDER BY received_at DESC, contact_id DESC"


async def fetch_one(con: asyncpg.Pool, contact_id: uuid.UUID) -> StoredContact | None:
    # The id carries the time it was received: pass it so only one partition is read.
    row = await con.fetchrow(
        f"""SELECT {SUMMARY_COLUMNS}, contact, context, trace, steps
              FROM contacts WHERE contact_id = $1 AND received_at = $2""",
        contact_id,
        uuid7_time(contact_id),
    )
    return None if row is None else StoredContact(*row)


async def fetch_page(
    con: asyncpg.Pool, selection: Selection, *, limit: int
) -> list[ContactSummary]:
    """Up to ``limit`` records of ``selection``, in its order."""
    args: list[Any] = []
    sql = f"SELECT {SUMMARY_COLUMNS} FROM contacts{selection.where(args)}{selection.order_by}"
    args.append(limit)
    sql += f" LIMIT ${len(args)}"
    return [ContactSummary(*row) for row in await con.fetch(sql, *args)]
