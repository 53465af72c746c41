"""The outbox: events for the configured destinations, written in the
transaction of what they report, claimed by the dispatchers of every
instance, retried, and listed and redelivered through the API.

``enqueue(con, events)`` is the one call that puts events in the outbox from
inside another operation's transaction (``records.insert_many`` writes the
``contact.routed`` events in its own statement). A row is claimed with
``FOR UPDATE SKIP LOCKED`` and leased: its ``leased_until`` moves past the
attempt's timeout, so a row claimed by an instance that died is claimed
again once the lease runs out, with the same ``delivery_id``. The lease has
a column of its own, in no index, so that a claim is a HOT update (no index
entry written; migration 0033): ``next_attempt_at`` (a key of the due index)
stays the time the row came due, and a claim steps over the leased rows
among the due ones (at most ``PREFETCH`` times ``concurrency`` per
destination and instance, ``router/outbound/dispatcher.py``). The outcomes
and the releases clear the lease.

The dispatchers' own statements (``claim``, ``mark``) commit without waiting
for the WAL flush (``synchronous_commit = off`` for their transaction only):
what a crash of the database can lose of them is a claim or a mark, and
either only means the event is sent once more, with the same id, which
at-least-once allows. The events themselves are written in the transaction
of what they report, with its durability.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from router.store.listing import keyset_page

#: The channel the dispatchers listen on (the trigger of migration 0016 notifies it).
CHANNEL = "omniroute_deliveries"

Status = Literal["pending", "delivered", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "delivered", "failed")


@dataclass(slots=True)
class Outgoing:
    """One event for one destination, as it goes into the outbox (never
    changed once made; not frozen: a frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``, a call per field and row)."""

    delivery_id: uuid.UUID
    destination: str
    event_type: str
    contact_id: uuid.UUID | None
    #: the event as the receiver gets it: a JSON object's text (encoded once
    #: for all the rows of an event)
    body: str

    @property
    def payload(self) -> dict[str, Any]:
        """The event as an object."""
        value: dict[str, Any] = orjson.loads(self.body)
        return value


@dataclass(slots=True)
class Claimed:
    """A row a dispatcher holds the lease of: one attempt to make (never
    changed once made)."""

    delivery_id: uuid.UUID
    destination: str
    event_type: str
    #: the event as stored (JSON text): a webhook sends it as it is
    body: str
    #: the attempt this is (1 for the first); marks are fenced by it
    attempts: int
    created_at: datetime
    #: the retry horizon counts from here (created, or retried by hand)
    horizon_from: datetime
    #: where the claimed version of the row is (its ``ctid``): the mark finds
    #: it there, unless the row moved since (then by its primary key)
    at: tuple[int, int] | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """The event as an object (for the provider kinds)."""
        value: dict[str, Any] = orjson.loads(self.body)
        return value


@dataclass(slots=True)
class Mark:
    """The outcome of one attempt: delivered (``error`` is ``None``), due
    again in ``retry_in`` seconds, or dead (``retry_in`` is ``None``)
    (never changed once made)."""

    delivery_id: uuid.UUID
    #: the attempt it reports (a mark of an attempt that no longer holds the row is void)
    attempts: int
    error: str | None = None
    retry_in: float | None = None
    #: the claimed version's ``ctid`` (``Claimed.at``), when known
    at: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A row as the API lists it."""

    delivery_id: uuid.UUID
    destination: str
    event_type: str
    contact_id: uuid.UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


#: The columns the insert takes, each passed as an array (see ``columns``).
INSERT_COLUMNS = "delivery_id, destination, event_type, contact_id, payload"
INSERT_TYPES = ("uuid", "text", "text", "uuid", "text")


def columns(events: Sequence[Outgoing]) -> list[list[Any]]:
    """The arrays of ``events`` in the order of ``INSERT_COLUMNS``."""
    return [
        [e.delivery_id for e in events],
        [e.destination for e in events],
        [e.event_type for e in events],
        [e.contact_id for e in events],
        [e.body for e in events],
    ]


_ENQUEUE = f"""
INSERT INTO deliveries ({INSERT_COLUMNS})
SELECT o.delivery_id, o.destination, o.event_type, o.contact_id, o.payload::jsonb
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[])
       AS o({INSERT_COLUMNS})
ON CONFLICT (delivery_id) DO NOTHING
"""


async def enqueue(con: asyncpg.Connection | asyncpg.Pool, events: Sequence[Outgoing]) -> None:
    """Put ``events`` in the outbox, in one statement; call it inside the
    transaction of what they report, so both commit or neither. An event
    whose ``delivery_id`` is there already is not written again (give a
    deterministic id, e.g. ``uuid.uuid5``, to make a retried operation's
    events idempotent)."""
    if events:
        await con.execute(_ENQUEUE, *columns(events))


#: Makes the statement's own transaction commit without waiting for the WAL
#: flush (see the module's docstring); joined into the statement, so no round trip.
_RELAXED = "relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))"

_CLAIM = f"""
WITH {_RELAXED}
UPDATE deliveries d
   SET attempts = d.attempts + 1,
       leased_until = now() + make_interval(secs => $3)
  FROM relaxed
 WHERE d.delivery_id IN (
        SELECT delivery_id FROM deliveries
         WHERE status = 'pending' AND destination = $1 AND next_attempt_at <= now()
           AND (leased_until IS NULL OR leased_until <= now())
         ORDER BY next_attempt_at
         LIMIT $2
           FOR UPDATE SKIP LOCKED)
RETURNING d.delivery_id, d.destination, d.event_type, d.payload::text, d.attempts, d.created_at,
          coalesce(d.retried_at, d.created_at) AS horizon_from, d.ctid
"""


async def claim(con: asyncpg.Pool, destination: str, *, limit: int, lease: float) -> list[Claimed]:
    """Up to ``limit`` due rows of ``destination``, leased for ``lease`` seconds."""
    rows = await con.fetch(_CLAIM, destination, limit, lease)
    return [Claimed(*row) for row in rows]


#: The marks go through a SQL function for its plan (sql/functions/deliveries_mark.sql):
#: every row found by the address its claim returned, or by its primary key,
#: however big the backlog and whatever the statistics said when the
#: connection planned it.
_MARK = """
SELECT delivery_id, attempts
  FROM deliveries_mark($1::uuid[], $2::int[], $3::text[], $4::float8[], $5::tid[])
"""


async def mark(con: asyncpg.Connection | asyncpg.Pool, marks: Sequence[Mark]) -> list[bool]:
    """Record the outcomes of attempts, in one statement; per mark whether
    it took (``False``: the attempt no longer holds the row, its lease ran
    out and another attempt claimed it). A mark with its claim's address
    (``Mark.at``) finds the row there while it is still the claimed
    version, else by its primary key."""
    if not marks:
        return []
    rows = await con.fetch(
        _MARK,
        [m.delivery_id for m in marks],
        [m.attempts for m in marks],
        [m.error for m in marks],
        [m.retry_in for m in marks],
        [m.at for m in marks],
    )
    took = {(r["delivery_id"], r["attempts"]) for r in rows}
    return [(m.delivery_id, m.attempts) in took for m in marks]


#: "Neither delivered nor failed" is pending, in terms the due index cannot
#: answer, so the rows are found by primary key however many are pending (see
#: sql/functions/deliveries_mark.sql).
_RELEASE = f"""
WITH {_RELAXED}
UPDATE deliveries d
   SET attempts = d.attempts - 1, next_attempt_at = $3, leased_until = NULL
  FROM unnest($1::uuid[], $2::int[]) AS r(delivery_id, attempts), relaxed
 WHERE d.delivery_id = r.delivery_id AND d.attempts = r.attempts
   AND d.status NOT IN ('delivered', 'failed')
"""


async def release(
    con: asyncpg.Pool, claimed: Sequence[tuple[uuid.UUID, int]], *, due: datetime
) -> None:
    """Give back claimed rows that were not attempted (``(delivery_id,
    attempts)`` of their claims): due at ``due``, their attempt uncounted."""
    if claimed:
        await con.execute(_RELEASE, [c[0] for c in claimed], [c[1] for c in claimed], due)


async def retry(con: asyncpg.Pool, delivery_id: uuid.UUID) -> Delivery | None:
    """Make a row due now (whatever its status), with a new retry horizon;
    ``None`` when there is no such row."""
    async with con.acquire() as c, c.transaction():
        row = await c.fetchrow(
            f"""UPDATE deliveries
                   SET status = 'pending', next_attempt_at = now(), retried_at = now(),
                       delivered_at = NULL, leased_until = NULL
                 WHERE delivery_id = $1
             RETURNING {_LISTED}""",
            delivery_id,
        )
        if row is not None:
            await c.execute("SELECT pg_notify($1, '')", CHANNEL)
    return None if row is None else Delivery(*row)


#: The columns of a ``Delivery``; a pending row's next attempt is once its
#: lease (if any) has run out as well.
_LISTED = ", ".join(
    "greatest(next_attempt_at, leased_until) AS next_attempt_at" if f == "next_attempt_at" else f
    for f in Delivery.__dataclass_fields__
)


async def page(
    con: asyncpg.Pool,
    *,
    status: str | None,
    destination: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    contact_id: uuid.UUID | None = None,
) -> list[Delivery]:
    """Up to ``limit`` rows, newest first, after the keyset ``after`` (only the
    events of ``contact_id``, when given)."""
    sql, args = keyset_page(
        f"SELECT {_LISTED} FROM deliveries",
        equal={"status": status, "destination": destination, "contact_id": contact_id},
        key=("created_at", "delivery_id"),
        after=after,
        limit=limit,
    )
    return [Delivery(*row) for row in await con.fetch(sql, *args)]


async def one(con: asyncpg.Pool, delivery_id: uuid.UUID) -> Delivery | None:
    row = await con.fetchrow(
        f"SELECT {_LISTED} FROM deliveries WHERE delivery_id = $1", delivery_id
    )
    return None if row is None else Delivery(*row)


async def pending(con: asyncpg.Pool) -> dict[str, int]:
    """Pending rows per destination (from the partial index of due rows)."""
    rows = await con.fetch(
        "SELECT destination, count(*) AS n FROM deliveries WHERE status = 'pending' "
        "GROUP BY destination"
    )
    return {r["destination"]: r["n"] for r in rows}


async def purge(con: asyncpg.Pool, *, older_than: float, limit: int = 10_000) -> int:
    """Delete up to ``limit`` delivered rows written more than ``older_than``
    seconds ago (failed and pending rows stay); the number deleted."""
    status = await con.execute(
        """DELETE FROM deliveries WHERE delivery_id IN (
               SELECT delivery_id FROM deliveries
                WHERE status = 'delivered'
                  AND created_at < now() - make_interval(secs => $1)
                LIMIT $2)""",
        older_than,
        limit,
    )
    return int(status.split()[-1])
