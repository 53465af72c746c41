"""The store: the one way into PostgreSQL for the rest of omniroute.

``open_store`` opens it (an embedded server or the configured URL, the pool,
the migrations); a ``Store`` groups its operations by what they are about
(``store.records``, ``store.customers``, ``store.reporting``, ...), each a thin
method over the SQL of the modules beside this one. Every method raises the
project's errors, never the driver's (``router.store.db.translated``):
``StoreUnavailable`` when the database is away, ``UnstorableValue`` when it
refuses a value, and what the operation itself may raise (``UnknownCustomer``,
``CustomerGone``, ``BadQuery``). What is read comes back as typed records.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from router.assignment import Policy
from router.errors import StoreUnavailable
from router.models import Identifier, Nonce, OutcomeEvent
from router.store import (
    agent_work,
    agents,
    customers,
    db,
    deliveries,
    events,
    export,
    imports,
    instances,
    lifecycle,
    live,
    migrations,
    nonces,
    offers,
    profiles,
    records,
    replay,
    replica,
    retention,
    rollups,
    rulesets,
    sessions,
    summary,
)
from router.store.config import DatabaseSettings
from router.store.db import translated, translated_iterator


class Records:
    """The routed-contact records: written by routing, read by the history,
    explain, exports and replays. History pages and exports are reporting
    reads (``reads``: the replica when there is one); the rest reads the
    primary, which has what was just written."""

    def __init__(self, pool: asyncpg.Pool, export_slots: int, reads: replica.Reads) -> None:
        self._pool = pool
        self._reads = reads
        #: exports running at once hold this many pool connections at most, so
        #: that routing always keeps connections; the next one is refused
        self._exports = asyncio.Semaphore(export_slots)

    @translated
    async def insert_many(
        self, new: Sequence[records.NewRecord], *, outbox: records.Outbox | None = None
    ) -> list[records.EarlierDelivery | None]:
        """Write the records and their outbox events in one statement (see
        ``records.insert_many``)."""
        return await records.insert_many(self._pool, new, outbox=outbox)

    @translated
    async def one(self, contact_id: uuid.UUID) -> records.StoredContact | None:
        return await records.fetch_one(self._pool, contact_id)

    @translated
    async def page(
        self, selection: records.Selection, *, limit: int
    ) -> list[records.ContactSummary]:
        """Up to ``limit`` records of ``selection``, in its order (a
        reporting read)."""
        return await self._reads.run(lambda pool: records.fetch_page(pool, selection, limit=limit))

    @translated
    async def export(
        self,
        selection: records.Selection,
        *,
        fmt: Literal["csv", "ndjson"],
        sink: Callable[[bytes], Awaitable[None]],
        limit: int | None,
        timeout: float,
    ) -> None:
        """Stream the records of ``selection`` to ``sink`` (``export.export``,
        a reporting read); ``StoreUnavailable`` at once when too many exports
        are running."""
        if self._exports.locked():
            raise StoreUnavailable("too many exports are running; retry later")
        sent = False

        async def sending(chunk: bytes) -> None:
            nonlocal sent
            sent = True
            await sink(chunk)

        async with self._exports:
            await self._reads.run(
                lambda pool: export.export(
                    pool, selection, fmt=fmt, sink=sending, limit=limit, timeout=timeout
                ),
                started=lambda: sent,
            )

    @translated_iterator
    async def snapshots(
        self, *, since: datetime, until: datetime
    ) -> AsyncIterator[records.Snapshot]:
        """The snapshots of the records received in ``[since, until)``, oldest
        first, read in one database snapshot a batch at a time."""
        async for snapshot in replay.received(self._pool, since=since, until=until):
            yield snapshot


class Outbox:
    """The outbox of events for the destinations (``deliveries``): written in
    the transaction of what they report, claimed by the dispatchers, listed
    and redelivered through the API. The dispatchers' work holds at most
    ``slots`` pool connections at once, so routing always keeps the rest."""

    def __init__(self, pool: asyncpg.Pool, url: str | None, *, slots: int) -> None:
        self._pool = pool
        self._url = url
        self._slots = asyncio.Semaphore(slots)

    @staticmethod
    async def enqueue(con: asyncpg.Connection, events: Sequence[deliveries.Outgoing]) -> None:
        """Put ``events`` in the outbox inside the caller's transaction on
        ``con`` (see ``deliveries.enqueue``); for store modules that write
        what the events report."""
        await deliveries.enqueue(con, events)

    @translated
    async def add(self, events: Sequence[deliveries.Outgoing]) -> None:
        """Put ``events`` in the outbox in a transaction of their own."""
        await deliveries.enqueue(self._pool, events)

    @translated
    async def claim(
        self, destination: str, *, limit: int, lease: float
    ) -> list[deliveries.Claimed]:
        async with self._slots:
            return await deliveries.claim(self._pool, destination, limit=limit, lease=lease)

    @translated
    async def mark(self, marks: Sequence[deliveries.Mark]) -> list[bool]:
        """Record the outcomes of attempts in one statement (see ``deliveries.mark``)."""
        async with self._slots:
            return await deliveries.mark(self._pool, marks)

    @translated
    async def release(self, claimed: Sequence[tuple[uuid.UUID, int]], *, due: datetime) -> None:
        """Give back claimed rows that were not attempted, due at ``due``."""
        async with self._slots:
            await deliveries.release(self._pool, claimed, due=due)

    @translated
    async def retry(self, delivery_id: uuid.UUID) -> deliveries.Delivery | None:
        return await deliveries.retry(self._pool, delivery_id)

    @translated
    async def one(self, delivery_id: uuid.UUID) -> deliveries.Delivery | None:
        return await deliveries.one(self._pool, delivery_id)

    @translated
    async def page(
        self,
        *,
        status: str | None,
        destination: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        contact_id: uuid.UUID | None = None,
    ) -> list[deliveries.Delivery]:
        return await deliveries.page(
            self._pool,
            status=status,
            destination=destination,
            after=after,
            limit=limit,
            contact_id=contact_id,
        )

    @translated
    async def purge(self, *, older_than: float) -> int:
        """Delete delivered rows older than ``older_than`` seconds (a batch)."""
        async with self._slots:
            return await deliveries.purge(self._pool, older_than=older_than)

    @translated
    async def pending(self) -> dict[str, int]:
        async with self._slots:
            return await deliveries.pending(self._pool)

    def listening(
        self, wake: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """Call ``wake`` whenever outbox rows are committed (see ``listening``)."""
        return listening(self._pool, self._url, deliveries.CHANNEL, wake)


@contextlib.asynccontextmanager
async def listening(
    pool: asyncpg.Pool,
    url: str | None,
    channel: str,
    wake: Callable[[], None],
    *,
    heard: Callable[[str], None] | None = None,
) -> AsyncIterator[asyncio.Event]:
    """Call ``wake`` whenever ``channel`` is notified, for the block (and
    ``heard`` before it with the notification's payload); a connection of
    its own (outside the pool) listens. Yields an event set when that
    connection is lost. ``StoreUnavailable`` when it cannot connect."""
    lost = asyncio.Event()

    def notified(_con: object, _pid: int, _channel: str, payload: str) -> None:
        if heard is not None:
            heard(payload)
        wake()

    con: asyncpg.Connection | None = None
    try:
        if url is None:
            con = await pool.acquire()
        else:
            con = await asyncpg.connect(url, timeout=5)
        await con.add_listener(channel, notified)
    except BaseException as exc:
        # (cancelled while starting, too: the connection must not leak)
        if con is not None:
            con.terminate()
            if url is None:
                await pool.release(con)
        if isinstance(exc, db.UNAVAILABLE):
            error = db.translate_errors(exc)
            raise (error or StoreUnavailable("database unavailable")) from None
        raise
    con.add_termination_listener(lambda _: lost.set())
    try:
        yield lost
    finally:
        try:
            if url is None:
                await con.remove_listener(channel, notified)
                await pool.release(con)
            else:
                await asyncio.wait_for(con.close(), 2)
        except db.UNAVAILABLE:
            con.terminate()
        except asyncio.CancelledError:
            con.terminate()
            raise


class Live:
    """The live view (``live``): figures per queue, the open contacts, the
    log of lifecycle changes and a listener for it."""

    def __init__(self, pool: asyncpg.Pool, url: str | None) -> None:
        self._pool = pool
        self._url = url

    @translated
    async def queues(self) -> list[live.QueueFigures]:
        return await live.queues(self._pool)

    @translated
    async def contacts(
        self,
        *,
        state: str,
        queue: str | None,
        channel: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[live.LiveContact]:
        return await live.contacts(
            self._pool, state=state, queue=queue, channel=channel, after=after, limit=limit
        )

    @translated
    async def changes(self, *, after: int, upto: int | None, limit: int) -> list[live.Change]:
        """Logged changes with ``after < id <= upto`` (no bound: ``None``), by id."""
        return await live.changes(self._pool, after=after, upto=upto, limit=limit)

    @translated
    async def last_id(self) -> int:
        return await live.last_id(self._pool)

    @translated
    async def staffing(self, demands: Sequence[live.Demand]) -> list[live.Staffing]:
        """The agents available and busy for each demand (queue skills,
        channel, units), in order."""
        return await live.staffing(self._pool, demands)

    @translated
    async def agents(self) -> dict[str, int]:
        """How many agents have each presence."""
        return await live.agents_by_presence(self._pool)

    @translated
    async def purge(self, *, older_than: float) -> int:
        """Delete a batch of log rows older than ``older_than`` seconds."""
        return await live.purge(self._pool, older_than=older_than)

    def listening(
        self, wake: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """Call ``wake`` whenever changes are logged (see ``listening``)."""
        return listening(self._pool, self._url, live.CHANNEL, wake)


class Events:
    """Outcome events of routed contacts."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def record(
        self,
        contact_id: uuid.UUID,
        *,
        event_id: str,
        type_: str,
        at: datetime,
        agent: str | None,
        data: dict[str, Any],
        outbox: lifecycle.TransitionOutbox | None = None,
    ) -> events.EventOutcome | None:
        """Record one event, with the ``outbox`` rows of the lifecycle change it
        makes; ``None`` if the contact does not exist."""
        return await events.record(
            self._pool,
            contact_id,
            event_id=event_id,
            type_=type_,
            at=at,
            agent=agent,
            data=data,
            outbox=outbox,
        )

    @translated
    async def record_named(
        self,
        adapter: str,
        event: OutcomeEvent,
        *,
        at: datetime,
        outbox: lifecycle.TransitionOutbox | None = None,
    ) -> list[tuple[uuid.UUID, events.EventOutcome]]:
        """Record a provider's outcome event for the contacts of ``adapter``
        it names (see ``events.record_named``); empty when it names none."""
        return await events.record_named(self._pool, adapter, event, at=at, outbox=outbox)


class Lifecycle:
    """The open contacts: overflow timers and expiry (``lifecycle``). The
    methods that change contacts return what they changed: the place where
    outbound events are written (in their transaction, see ``lifecycle``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def apply_due_steps(
        self, *, limit: int = 500, outbox: lifecycle.StepOutbox | None = None
    ) -> list[lifecycle.StepApplied]:
        """Claim a batch of waiting contacts with a due overflow step and apply
        their due steps, with their ``outbox`` events; what was applied (empty:
        nothing was due)."""
        return await lifecycle.apply_due_steps(self._pool, limit=limit, outbox=outbox)

    @translated
    async def expire_due(
        self, *, limit: int = 500, outbox: lifecycle.ExpiredOutbox | None = None
    ) -> list[lifecycle.Expired]:
        """Close a batch of open contacts past their lifetime (``expired``),
        with their ``outbox`` events."""
        return await lifecycle.expire_due(self._pool, limit=limit, outbox=outbox)

    @translated
    async def next_due(self) -> datetime | None:
        """When the soonest pending overflow step is due."""
        return await lifecycle.next_due(self._pool)

    @translated
    async def open(self, contact_id: uuid.UUID) -> lifecycle.OpenContact | None:
        """The contact's open row; ``None`` when it is not open."""
        return await lifecycle.fetch_open(self._pool, contact_id)


class Customers:
    """Customers: resolution at routing time, and the profiles a CRM keeps."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def resolve_many(self, keys: Sequence[customers.ResolveKey]) -> list[customers.Resolved]:
        """Resolve many contacts in one statement (``customers.resolve_many``)."""
        return await customers.resolve_many(self._pool, keys)

    @translated
    async def profile(self, customer_id: uuid.UUID) -> profiles.Profile:
        return await profiles.fetch(self._pool, customer_id)

    @translated
    async def live(self, customer_id: uuid.UUID) -> bool:
        """True if the customer exists and is live, False if unknown;
        ``CustomerGone`` if merged or erased."""
        return await profiles.live(self._pool, customer_id)

    @translated
    async def upsert(
        self,
        *,
        actor: str,
        identities: Sequence[Identifier],
        profile: dict[str, Any],
        customer_id: uuid.UUID | None = None,
    ) -> profiles.Upserted:
        return await profiles.upsert(
            self._pool,
            actor=actor,
            identities=identities,
            profile=profile,
            customer_id=customer_id,
        )

    @translated
    async def merge(self, *, actor: str, into: uuid.UUID, source: uuid.UUID) -> dict[str, int]:
        return await profiles.merge(self._pool, actor=actor, into=into, source=source)

    @translated
    async def erase(self, *, actor: str, customer_id: uuid.UUID) -> dict[str, int]:
        return await profiles.erase(self._pool, actor=actor, customer_id=customer_id)

    @translated
    async def put_journey(
        self,
        *,
        actor: str,
        customer_id: uuid.UUID,
        ref: str,
        type_: str,
        step: str | None,
        status: str,
        data: dict[str, Any],
        at: datetime,
    ) -> profiles.JourneyRow:
        return await profiles.put_journey(
            self._pool,
            actor=actor,
            customer_id=customer_id,
            ref=ref,
            type_=type_,
            step=step,
            status=status,
            data=data,
            at=at,
        )

    @translated
    async def conflicts(
        self, *, status: str, after: int | None, limit: int
    ) -> list[profiles.Conflict]:
        return await profiles.conflicts(self._pool, status=status, after=after, limit=limit)


class Rulesets:
    """Every ruleset version loaded, with its files; the publications (the
    audit trail) and a listener for new ones."""

    def __init__(self, pool: asyncpg.Pool, url: str | None = None) -> None:
        self._pool = pool
        self._url = url

    @translated
    async def save(self, version: str, sources: Mapping[str, str]) -> None:
        await rulesets.save_ruleset(self._pool, version, sources)

    @translated
    async def sources(self, version: str) -> dict[str, str] | None:
        """The files of ruleset ``version``; ``None`` if it is not stored."""
        return await rulesets.fetch_sources(self._pool, version)

    @translated
    async def stored(self, version: str) -> rulesets.StoredRuleset | None:
        """Ruleset ``version`` with its files and origin; ``None`` if it is not stored."""
        return await rulesets.fetch_ruleset(self._pool, version)

    @translated
    async def publish(
        self,
        version: str,
        sources: Mapping[str, str],
        *,
        author: str,
        comment: str,
        parent: str | None,
        check_parent: bool,
    ) -> rulesets.Publication:
        """Make ``version`` the published version (see ``rulesets.publish``)."""
        return await rulesets.publish(
            self._pool,
            version,
            sources,
            author=author,
            comment=comment,
            parent=parent,
            check_parent=check_parent,
        )

    @translated
    async def published(self) -> rulesets.Publication | None:
        return await rulesets.published(self._pool)

    @translated
    async def published_version(self) -> str | None:
        found = await rulesets.published(self._pool)
        return None if found is None else found.version

    @translated
    async def publications(
        self, *, before: int | None, limit: int, version: str | None = None
    ) -> list[rulesets.Publication]:
        return await rulesets.publications(self._pool, before=before, limit=limit, version=version)

    def listening(
        self, wake: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """Call ``wake`` whenever a version is published (see ``listening``)."""
        return listening(self._pool, self._url, rulesets.CHANNEL, wake)


class Instances:
    """The heartbeats of the running instances."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def beat(
        self, me: instances.Instance, *, ruleset: str, rules_errors: Sequence[str] = ()
    ) -> None:
        await instances.beat(self._pool, me, ruleset=ruleset, rules_errors=rules_errors)

    @translated
    async def live(self) -> list[instances.LiveInstance]:
        return await instances.live(self._pool)

    @translated
    async def leave(self, me: instances.Instance) -> None:
        await instances.leave(self._pool, me)


class Nonces:
    """The one-time values of signatures, claimed once across instances."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def claim(self, nonce: Nonce) -> bool:
        """True when this delivery holds ``nonce``; False when another does."""
        return await nonces.claim(self._pool, nonce)

    @translated
    async def purge(self) -> int:
        """Delete expired claims; the number deleted."""
        return await nonces.purge(self._pool)


class Reporting:
    """Summaries, their hourly rollups, retention and the monthly partitions.
    The summary is a reporting read (``reads``: the replica when there is one)."""

    def __init__(self, pool: asyncpg.Pool, reads: replica.Reads) -> None:
        self._pool = pool
        self._reads = reads

    @translated
    async def summarize(self, query: summary.SummaryQuery) -> summary.Summary:
        return await self._reads.run(lambda pool: summary.summarize(pool, query))

    @translated
    async def refresh_rollups(
        self, *, grace: timedelta = rollups.GRACE
    ) -> rollups.Refreshed | None:
        """Roll up the closed hours; ``None`` when another process is at it."""
        return await rollups.refresh(self._pool, grace=grace)

    @translated
    async def rebuild_rollups(self, since: datetime, until: datetime) -> int:
        """Re-roll the rolled-up hours in ``[since, until)``; the hours rebuilt."""
        return await rollups.rebuild(self._pool, since, until)

    @translated
    async def apply_retention(
        self, cutoff: datetime, *, dry_run: bool = False
    ) -> retention.RetentionReport | None:
        """Expire the records received before ``cutoff``; ``None`` when
        another process is applying retention."""
        return await retention.apply(self._pool, cutoff, dry_run=dry_run)

    @translated
    async def ensure_partitions(self, *, months_back: int = 0, ahead: int = 4) -> None:
        """Create the monthly partitions from ``months_back`` months ago to
        ``ahead`` months ahead, those missing."""
        await self._pool.fetchval(
            "SELECT ensure_partitions(now() - make_interval(months => $1), $2)", months_back, ahead
        )


class Imports:
    """Bulk imports of customers, resumable per file."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def progress(self, file_key: str, file_name: str) -> int:
        """Lines of this file already imported (0 for a new file)."""
        return await imports.progress(self._pool, file_key, file_name)

    @translated
    async def apply_batch(self, file_key: str, batch: imports.Batch) -> None:
        await imports.apply_batch(self._pool, file_key=file_key, batch=batch)

    @translated
    async def finish(self, file_key: str) -> None:
        await imports.finish(self._pool, file_key)


class Offers:
    """Assignment (``offers``, ``agent_work``): rounds that offer waiting
    contacts to agents, accept and reject, the offers' timer, and a listener
    for what may make a round worth running."""

    def __init__(self, pool: asyncpg.Pool, url: str | None) -> None:
        self._pool = pool
        self._url = url

    @translated
    async def wake(self) -> None:
        """Wake every instance's assignment (contacts may wait in an
        assigned queue: an overflow step moved them there)."""
        await offers.wake(self._pool)

    @translated
    async def assign_round(
        self,
        *,
        policies: Mapping[str, Policy],
        choose: offers.Choose,
        limit: int,
        units: Callable[[str], int],
        outbox: offers.OfferedOutbox | None = None,
        agents: Collection[str] | None = None,
    ) -> offers.Round:
        """One round over every agent that may take work, or only ``agents``."""
        return await offers.assign_round(
            self._pool,
            policies=policies,
            choose=choose,
            limit=limit,
            units=units,
            outbox=outbox,
            agents=agents,
        )

    @translated
    async def wait_released(self, contact_id: uuid.UUID, *, timeout: float) -> bool:
        """Wait (``timeout`` seconds at most) until no transaction holds the
        contact's open row; false when the time ran out."""
        return await offers.wait_released(self._pool, contact_id, timeout=timeout)

    @translated
    async def decide(
        self,
        offer_id: uuid.UUID,
        *,
        accept: bool,
        outbox: lifecycle.TransitionOutbox | None = None,
    ) -> offers.Decided | None:
        """Accept or reject an offer; ``None`` when there is no such offer."""
        return await offers.decide(self._pool, offer_id, accept=accept, outbox=outbox)

    @translated
    async def expire_due(self, *, limit: int = 500) -> list[offers.Offer]:
        return await offers.expire_due(self._pool, limit=limit)

    @translated
    async def next_expiry(self) -> datetime | None:
        return await offers.next_expiry(self._pool)

    @translated
    async def page(
        self,
        *,
        agent: str | None,
        status: str | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[offers.Offer]:
        return await offers.page(self._pool, agent=agent, status=status, before=before, limit=limit)

    @translated
    async def one(self, offer_id: uuid.UUID) -> offers.Offer | None:
        return await offers.one(self._pool, offer_id)

    @translated
    async def of_contact(self, contact_id: uuid.UUID) -> list[offers.Offer]:
        return await offers.of_contact(self._pool, contact_id)

    def listening(
        self, wake: Callable[[], None], *, heard: Callable[[str], None] | None = None
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """Call ``wake`` whenever an agent may take work or contacts arrive
        (and ``heard`` first with what was sent: ``agent:<id>``, ``contacts``)."""
        return listening(self._pool, self._url, agent_work.CHANNEL, wake, heard=heard)


class ConsoleSessions:
    """The console's server-side sessions (``sessions``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def open(
        self,
        id_hash: bytes,
        *,
        token_name: str,
        csrf_token: str,
        idle_seconds: int,
        absolute_seconds: int,
    ) -> None:
        await sessions.open_session(
            self._pool,
            id_hash,
            token_name=token_name,
            csrf_token=csrf_token,
            idle_seconds=idle_seconds,
            absolute_seconds=absolute_seconds,
        )

    @translated
    async def touch(self, id_hash: bytes) -> sessions.ConsoleSession | None:
        """The live session, marked seen; ``None`` if it is gone or expired."""
        return await sessions.touch(self._pool, id_hash)

    @translated
    async def close(self, id_hash: bytes) -> bool:
        return await sessions.close_session(self._pool, id_hash)

    @translated
    async def purge_expired(self, *, limit: int) -> int:
        """Delete up to ``limit`` expired sessions; the number deleted."""
        return await sessions.purge_expired(self._pool, limit=limit)


class Agents:
    """The agents: profiles, presence, and the load and work assignment keeps
    on them (``agents``). Changes that may let an agent take new work notify
    the assignment job in their transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @translated
    async def upsert(self, profile: agents.AgentProfile) -> agents.Upserted:
        return await agents.upsert(self._pool, profile)

    @translated
    async def one(self, agent_id: str) -> agents.AgentDetail | None:
        """The agent and the work it holds; ``None`` if unknown."""
        return await agents.one(self._pool, agent_id)

    @translated
    async def page(self, selection: agents.AgentFilter, *, limit: int) -> list[agents.Agent]:
        return await agents.page(self._pool, selection, limit=limit)

    @translated
    async def set_presence(
        self, agent_id: str, presence: str, *, at: datetime | None = None
    ) -> agents.PresenceChanged | None:
        """Set the presence (logged, and notified when ``available``) unless
        the change, made ``at``, is older than the current one; ``None`` if
        the agent is unknown."""
        return await agents.set_presence(self._pool, agent_id, presence, at=at)

    @translated
    async def remove(self, agent_id: str) -> agents.Agent | None:
        """Delete an agent that holds no work (``AgentHoldsWork`` otherwise);
        ``None`` if unknown."""
        return await agents.remove(self._pool, agent_id)


class Store:
    """omniroute's database, opened by ``open_store``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DatabaseSettings,
        *,
        url: str | None = None,
        replica_pool: asyncpg.Pool | None = None,
    ) -> None:
        self._pool = pool
        #: where the reporting reads go: the replica (``replica_pool``) or this pool
        self.replica = replica.Reads(pool, replica_pool, settings)
        self.outbox = Outbox(pool, url, slots=max(1, settings.pool_max // 4))
        self.records = Records(
            pool, export_slots=max(1, settings.pool_max // 2), reads=self.replica
        )
        self.events = Events(pool)
        self.lifecycle = Lifecycle(pool)
        self.live = Live(pool, url)
        self.customers = Customers(pool)
        self.rulesets = Rulesets(pool, url)
        self.instances = Instances(pool)
        self.nonces = Nonces(pool)
        self.reporting = Reporting(pool, self.replica)
        self.imports = Imports(pool)
        self.offers = Offers(pool, url)
        self.console = ConsoleSessions(pool)
        self.agents = Agents(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool itself, for tests and benchmarks that write
        rows directly. The service goes through the methods, which translate
        the driver's errors."""
        return self._pool

    @translated
    async def migrate(self) -> list[str]:
        """Apply the pending migrations; the names applied."""
        async with self._pool.acquire() as con:
            return await migrations.migrate(con)

    @translated
    async def ping(self) -> None:
        """One round trip to the database."""
        await self._pool.fetchval("SELECT 1")


@contextlib.asynccontextmanager
async def open_store(
    settings: DatabaseSettings, *, migrate: bool = True, wait: float = 60.0
) -> AsyncIterator[Store]:
    """The store on the configured database (or an embedded server started
    for the block), its pool retrying for up to ``wait`` seconds at start-up,
    the schema migrated unless ``migrate`` is false; closed at the end. With
    ``replica_url``, a second pool on the replica for the reporting reads (it
    connects as reads need it: a replica away does not stop the start)."""
    async with db.database(settings) as url:
        pool = await db.connect_pool(url, settings, wait=wait)
        reporting: asyncpg.Pool | None = None
        try:
            if settings.replica_url:
                reporting = await db.replica_pool(settings.replica_url, settings)
            store = Store(pool, settings, url=url, replica_pool=reporting)
            if migrate:
                await store.migrate()
            yield store
        finally:
            if reporting is not None:
                await reporting.close()
            await pool.close()
