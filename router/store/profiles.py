"""Customer profiles from the CRM, identity conflicts, merges, erasure and
journeys: every write audited, every multi-row change in one transaction.

A customer that does not exist raises ``UnknownCustomer``; one merged into
another or erased, ``CustomerGone``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from router.errors import CustomerGone, UnknownCustomer
from router.models import Identifier, uuid7
from router.redaction import Person, needles, pattern, redact, redact_record
from router.store import agent_work

PROFILE_FIELDS = ("name", "tier", "language", "segment", "attributes")


@dataclass(frozen=True, slots=True)
class IdentityRow:
    """An identifier linked to a customer."""

    kind: str
    value: str
    verified: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JourneyRow:
    """A customer's journey (an ongoing process the CRM tracks)."""

    ref: str
    type: str
    step: str | None
    status: str
    data: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Profile:
    """A live customer: the profile, its identities and latest journeys."""

    customer_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    origin: str
    name: str | None
    tier: str | None
    language: str | None
    segment: str | None
    attributes: dict[str, Any]
    identities: list[IdentityRow]
    journeys: list[JourneyRow]


@dataclass(frozen=True, slots=True)
class Claimed:
    """An identity given for a customer that another customer holds."""

    kind: str
    value: str
    customer_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Upserted:
    customer_id: uuid.UUID
    created: bool
    #: the identities left with the customers that held them (recorded as conflicts)
    conflicts: list[Claimed]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two customers that claim the same identifier, until merged or dismissed."""

    conflict_id: int
    created_at: datetime
    contact_id: uuid.UUID | None
    adapter: str | None
    external_id: str | None
    customer_id: uuid.UUID
    other_customer_id: uuid.UUID
    kind: str
    value: str
    status: str
    resolved_at: datetime | None


async def _audit(
    con: asyncpg.Connection, actor: str, action: str, customer_id: uuid.UUID, details: Any
) -> None:
    await con.execute(
        "INSERT INTO customer_audit (actor, action, customer_id, details) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        customer_id,
        details,
    )


async def _live(con: asyncpg.Connection, customer_id: uuid.UUID, *, lock: bool = False) -> bool:
    """True if the customer exists and is live; ``CustomerGone`` if merged/erased."""
    row = await con.fetchrow(
        "SELECT merged_into, erased_at FROM customers WHERE customer_id = $1"
        + (" FOR UPDATE" if lock else ""),
        customer_id,
    )
    if row is None:
        return False
    if row["merged_into"] is not None or row["erased_at"] is not None:
        raise CustomerGone(customer_id, merged_into=row["merged_into"])
    return True


async def _attach(
    con: asyncpg.Connection, customer_id: uuid.UUID, identities: Sequence[Identifier]
) -> list[Claimed]:
    """Link identities to the customer; those of other customers become conflicts."""
    conflicts = []
    for ident in identities:
        owner = await con.fetchval(
            """INSERT INTO identities (kind, value, customer_id, verified)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (kind, value) DO UPDATE
                   SET verified = identities.verified OR ($4 AND identities.customer_id = $3)
               RETURNING customer_id""",
            ident.kind,
            ident.value,
            customer_id,
            ident.verified,
        )
        if owner != customer_id:
            await con.execute(
                """INSERT INTO identity_conflicts
                       (customer_id, other_customer_id, kind, value, adapter)
                   VALUES ($1, $2, $3, $4, 'api') ON CONFLICT DO NOTHING""",
                customer_id,
                owner,
                ident.kind,
                ident.value,
            )
            conflicts.append(Claimed(ident.kind, ident.value, owner))
    return conflicts


def _profile_sql(profile: dict[str, Any], first: int) -> tuple[str, list[Any]]:
    sets, args = [], []
    for key in PROFILE_FIELDS:
        if key in profile:
            args.append(profile[key])
            sets.append(f"{key} = ${first + len(args) - 1}")
    sets.append("updated_at = now()")
    return ", ".join(sets), args


async def upsert(
    pool: asyncpg.Pool,
    *,
    actor: str,
    identities: Sequence[Identifier],
    profile: dict[str, Any],
    customer_id: uuid.UUID | None = None,
) -> Upserted:
    """Create or update a profile; ``identities`` strongest first. Without
    ``customer_id`` the customer is the owner of the strongest known identity,
    or a new one."""
    async with pool.acquire() as con, con.transaction():
        # The same per-identifier locks as routing: no race with first contacts.
        await con.execute(
            """SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT hashtextextended(k || chr(31) || v, 0) AS h
                     FROM unnest($1::text[], $2::text[]) AS u(k, v)) t ORDER BY h""",
            [i.kind for i in identities],
            [i.value for i in identities],
        )
        created = False
        if customer_id is None:
            customer_id = await con.fetchval(
                """SELECT i.customer_id
                     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k, v, n)
                     JOIN identities i ON i.kind = u.k AND i.value = u.v
                    ORDER BY u.n LIMIT 1""",
                [i.kind for i in identities],
                [i.value for i in identities],
            )
        if customer_id is None:
            customer_id = uuid7()
            await con.execute(
                "INSERT INTO customers (customer_id, origin) VALUES ($1, 'crm')", customer_id
            )
            created = True
        elif not await _live(con, customer_id, lock=True):
            raise UnknownCustomer(customer_id)
        sets, args = _profile_sql(profile, 2)
        await con.execute(
            f"UPDATE customers SET {sets}, origin = 'crm' WHERE customer_id = $1",
            customer_id,
            *args,
        )
        conflicts = await _attach(con, customer_id, identities)
        await _audit(
            con,
            actor,
            "create" if created else "update",
            customer_id,
            {"fields": sorted(profile), "identities": len(identities), "conflicts": len(conflicts)},
        )
        return Upserted(customer_id, created, conflicts)


async def live(pool: asyncpg.Pool, customer_id: uuid.UUID) -> bool:
    """True if the customer exists and is live, False if unknown;
    ``CustomerGone`` if merged or erased."""
    async with pool.acquire() as con:
        return await _live(con, customer_id)


async def fetch(pool: asyncpg.Pool, customer_id: uuid.UUID) -> Profile:
    async with pool.acquire() as con:
        if not await _live(con, customer_id):
            raise UnknownCustomer(customer_id)
        row = await con.fetchrow(
            """SELECT customer_id, created_at, updated_at, origin, name, tier, language,
                      segment, attributes
                 FROM customers WHERE customer_id = $1""",
            customer_id,
        )
        identities = await con.fetch(
            """SELECT kind, value, verified, created_at FROM identities
                WHERE customer_id = $1 ORDER BY created_at, kind, value""",
            customer_id,
        )
        journeys = await con.fetch(
            """SELECT ref, type, step, status, data, opened_at, updated_at, closed_at
                 FROM journeys WHERE customer_id = $1 ORDER BY updated_at DESC LIMIT 100""",
            customer_id,
        )
    return Profile(
        **dict(row),
        identities=[IdentityRow(*r) for r in identities],
        journeys=[JourneyRow(*r) for r in journeys],
    )


async def conflicts(
    pool: asyncpg.Pool, *, status: str, after: int | None, limit: int
) -> list[Conflict]:
    return [
        Conflict(*row)
        for row in await pool.fetch(
            """SELECT conflict_id, created_at, contact_id, adapter, external_id, customer_id,
                      other_customer_id, kind, value, status, resolved_at
                 FROM identity_conflicts
                WHERE status = $1 AND ($2::bigint IS NULL OR conflict_id > $2)
                ORDER BY conflict_id LIMIT $3""",
            status,
            after,
            limit,
        )
    ]


async def merge(
    pool: asyncpg.Pool, *, actor: str, into: uuid.UUID, source: uuid.UUID
) -> dict[str, int]:
    """Move the identities, history and journeys of ``source`` to ``into``."""
    async with pool.acquire() as con, con.transaction():
        for cid in sorted((into, source)):  # a fixed lock order: no deadlock
            if not await _live(con, cid, lock=True):
                raise UnknownCustomer(cid)
        moved = {
            "identities": await _count(
                con, "UPDATE identities SET customer_id = $1 WHERE customer_id = $2", into, source
            ),
            "contacts": await _count(
                con, "UPDATE contacts SET customer_id = $1 WHERE customer_id = $2", into, source
            ),
            "journeys": await _count(
                con,
                """UPDATE journeys j SET customer_id = $1 WHERE customer_id = $2
                     AND NOT EXISTS (SELECT 1 FROM journeys k
                                      WHERE k.customer_id = $1 AND k.ref = j.ref)""",
                into,
                source,
            ),
        }
        await con.execute(
            """UPDATE customers t SET
                   name = coalesce(t.name, s.name), tier = coalesce(t.tier, s.tier),
                   language = coalesce(t.language, s.language),
                   segment = coalesce(t.segment, s.segment),
                   attributes = s.attributes || t.attributes, updated_at = now()
              FROM customers s WHERE t.customer_id = $1 AND s.customer_id = $2""",
            into,
            source,
        )
        await con.execute("DELETE FROM journeys WHERE customer_id = $1", source)
        await con.execute(
            """UPDATE customers SET merged_into = $1, name = NULL, tier = NULL, language = NULL,
                   segment = NULL, attributes = '{}', updated_at = now()
                WHERE customer_id = $2""",
            into,
            source,
        )
        await con.execute(
            "UPDATE customers SET merged_into = $1 WHERE merged_into = $2", into, source
        )
        moved["conflicts_resolved"] = await _count(
            con,
            """UPDATE identity_conflicts SET status = 'merged', resolved_at = now()
                WHERE status = 'open' AND ((customer_id = $1 AND other_customer_id = $2)
                   OR (customer_id = $2 AND other_customer_id = $1))""",
            into,
            source,
        )
        await con.execute(
            "UPDATE identity_conflicts SET customer_id = $1 WHERE customer_id = $2", into, source
        )
        await con.execute(
            "UPDATE identity_conflicts SET other_customer_id = $1 WHERE other_customer_id = $2",
            into,
            source,
        )
        await _audit(con, actor, "merge", into, {"from": str(source), **moved})
        await _audit(con, actor, "merged_into", source, {"into": str(into)})
        return moved


_CARRIERS = """
SELECT contact_id, received_at, contact, context, trace, thread_id
  FROM contacts
 WHERE jsonb_path_query_array(contact, '$.identifiers[*].value') @> ANY ($1::jsonb[])
 ORDER BY received_at, contact_id
"""

_REDACT = """
UPDATE contacts c
   SET contact = u.contact::jsonb, context = u.context::jsonb, trace = u.trace::jsonb,
       thread_id = u.thread_id
  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[])
       AS u(contact_id, received_at, contact, context, trace, thread_id)
 WHERE c.contact_id = u.contact_id AND c.received_at = u.received_at
"""


async def _person(con: asyncpg.Connection, customer_id: uuid.UUID) -> Person:
    """The customer's identifiers, profile name and the sender names of their contacts."""
    identities = await con.fetch(
        "SELECT kind, value FROM identities WHERE customer_id = $1", customer_id
    )
    names = await con.fetch(
        """SELECT name FROM customers WHERE customer_id = $1 AND name IS NOT NULL
           UNION
           SELECT contact ->> 'sender_name' FROM contacts
            WHERE customer_id = $1 AND contact ->> 'sender_name' IS NOT NULL""",
        customer_id,
    )
    return Person(
        identifiers=frozenset((r["kind"], r["value"]) for r in identities),
        names=tuple(r["name"] for r in names),
    )


async def _redact_carriers(con: asyncpg.Connection, person: Person) -> int:
    """Take the person out of the contacts of other customers that carry one
    of their identifiers (found by the index on the snapshots' identifier
    values); returns how many."""
    if not person.identifiers:
        return 0
    rows = [
        row
        for row in await con.fetch(_CARRIERS, [[v] for v in person.values])
        if any(
            isinstance(i, dict) and (i.get("kind"), i.get("value")) in person.identifiers
            for i in row["contact"].get("identifiers") or []
        )
    ]
    if not rows:
        return 0
    done = [redact_record(person, row) for row in rows]
    await con.execute(
        _REDACT,
        [r["contact_id"] for r in rows],
        [r["received_at"] for r in rows],
        [orjson.dumps(d.contact).decode() for d in done],
        [orjson.dumps(d.context).decode() for d in done],
        [None if d.trace is None else orjson.dumps(d.trace).decode() for d in done],
        [d.thread_id for d in done],
    )
    # outcome events of those contacts: free-form data from the platform
    found = pattern(needles(person.identifiers, person.names))
    events = await con.fetch(
        """SELECT e.contact_id, e.event_id, e.data FROM contact_events e
            WHERE e.contact_id = ANY($1::uuid[]) AND e.data <> '{}'""",
        [r["contact_id"] for r in rows],
    )
    changed = [(e, redact(e["data"], found)) for e in events]
    changed = [(e, data) for e, data in changed if data != e["data"]]
    if changed:
        await con.executemany(
            """UPDATE contact_events SET data = $3::text::jsonb
                WHERE contact_id = $1 AND event_id = $2""",
            [(e["contact_id"], e["event_id"], orjson.dumps(data).decode()) for e, data in changed],
        )
    return len(rows)


async def erase(pool: asyncpg.Pool, *, actor: str, customer_id: uuid.UUID) -> dict[str, int]:
    """Remove personal data; records stay, anonymous, under a new unlinkable id.
    Contacts of other customers that carry the person's identifiers keep what
    is theirs and lose what is the person's (``router/redaction.py``)."""
    async with pool.acquire() as con, con.transaction():
        if not await _live(con, customer_id, lock=True):
            raise UnknownCustomer(customer_id)
        person = await _person(con, customer_id)
        # The per-identifier locks routing takes: resolutions of these
        # identifiers in progress finish first; later ones no longer find them.
        await con.execute(
            """SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT hashtextextended(k || chr(31) || v, 0) AS h
                     FROM unnest($1::text[], $2::text[]) AS u(k, v)) t ORDER BY h""",
            [k for k, _ in person.identifiers],
            [v for _, v in person.identifiers],
        )
        # The person's open contacts end here, their open rows locked before
        # the records (the lock order): an agent holding one is freed of it,
        # an open offer of one is cancelled, the live log says ``erased``.
        closed, held = await agent_work.end_open(
            con,
            [
                r["contact_id"]
                for r in await con.fetch(
                    """SELECT o.contact_id FROM open_contacts o
                         JOIN contacts c ON c.contact_id = o.contact_id
                                        AND c.received_at = o.received_at
                        WHERE c.customer_id = $1""",
                    customer_id,
                )
            ],
            kind="erased",
        )
        anonymous = uuid.uuid4()
        contacts = await _count(
            con,
            """UPDATE contacts SET
                   customer_id = $2,
                   thread_id = NULL,
                   contact = jsonb_build_object('channel', contact -> 'channel',
                                                'provider', contact -> 'provider',
                                                'external_id', contact -> 'external_id',
                                                'erased', true),
                   context = jsonb_build_object('known', context -> 'known',
                                                'tier', context -> 'tier', 'erased', true),
                   trace = NULL
             WHERE customer_id = $1""",
            customer_id,
            anonymous,
        )
        await con.execute(
            """UPDATE contact_events e SET data = '{}'
                 FROM contacts c
                WHERE c.customer_id = $1 AND e.contact_id = c.contact_id""",
            anonymous,
        )
        # the offers made for them: the explanation went by the person's
        # context (the preferred agent is their last one): only the facts stay
        await con.execute(
            """UPDATE offers f SET explanation = '{"erased": true}'
                 FROM contacts c
                WHERE c.customer_id = $1 AND f.contact_id = c.contact_id""",
            anonymous,
        )
        # after the person's own records: they no longer carry any identifier
        redacted = await _redact_carriers(con, person)
        identities = await _count(con, "DELETE FROM identities WHERE customer_id = $1", customer_id)
        await con.execute("DELETE FROM journeys WHERE customer_id = $1", customer_id)
        await con.execute(
            "DELETE FROM identity_conflicts WHERE customer_id = $1 OR other_customer_id = $1",
            customer_id,
        )
        await con.execute(
            """UPDATE customers SET name = NULL, tier = NULL, language = NULL, segment = NULL,
                   attributes = '{}', erased_at = now(), updated_at = now()
                WHERE customer_id = $1""",
            customer_id,
        )
        details = {
            "contacts_anonymized": contacts,
            "contacts_redacted": redacted,
            "identities_deleted": identities,
            "open_contacts_closed": closed,
            "agents_released": len({h.agent_id for h in held}),
        }
        await _audit(con, actor, "erase", customer_id, details)
        return details


async def put_journey(
    pool: asyncpg.Pool,
    *,
    actor: str,
    customer_id: uuid.UUID,
    ref: str,
    type_: str,
    step: str | None,
    status: str,
    data: dict[str, Any],
    at: datetime,
) -> JourneyRow:
    async with pool.acquire() as con, con.transaction():
        if not await _live(con, customer_id, lock=True):
            raise UnknownCustomer(customer_id)
        row = await con.fetchrow(
            """INSERT INTO journeys (customer_id, ref, type, step, status, data, opened_at,
                                    updated_at, closed_at)
               VALUES ($1, $2, $3, $4, $5::text, $6, $7::timestamptz, $7::timestamptz,
                       CASE WHEN $5::text = 'closed' THEN $7::timestamptz END)
               ON CONFLICT (customer_id, ref) DO UPDATE SET
                   type = EXCLUDED.type, step = EXCLUDED.step, status = EXCLUDED.status,
                   data = EXCLUDED.data, updated_at = EXCLUDED.updated_at,
                   closed_at = CASE WHEN EXCLUDED.status = 'closed'
                                    THEN coalesce(journeys.closed_at, EXCLUDED.updated_at) END
               RETURNING ref, type, step, status, data, opened_at, updated_at, closed_at""",
            customer_id,
            ref,
            type_,
            step,
            status,
            data,
            at,
        )
        await _audit(
            con, actor, "journey", customer_id, {"ref": ref, "status": status, "step": step}
        )
        return JourneyRow(*row)


async def _count(con: asyncpg.Connection, sql: str, *args: Any) -> int:
    status: str = await con.execute(sql, *args)
    return int(status.rsplit(" ", 1)[-1])
