"""The composition root: everything a running omniroute holds, built in one
place and closed in reverse order.

``open_runtime(settings)`` loads the rules, opens the store (migrated, the
partitions ahead created), the context provider, recognition, the batchers
and the pipeline, then starts the jobs every instance runs. The web app opens
it in one ``cleanup_ctx`` (``router.web.app``); a command that needs more than
the store opens it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import structlog

import adapters
from adapters.base import Adapter, AdapterSpec
from router.assigner import Assigner
from router.errors import (
    ConfigError,
    PublishConflict,
    RulesError,
    RulesTestsFailed,
    StoreUnavailable,
)
from router.feed import Feed
from router.jobs import Jobs
from router.live_rules import LiveRules, Versions, load_checked
from router.metrics import Metrics
from router.models import OutcomeEvent, now_ms
from router.outbound import Client, Destinations, Dispatcher
from router.pipeline import Pipeline
from router.recognition import Lookup, Recognition, Recognized, identity
from router.recognition.provider import ContextProvider
from router.rules import Ruleset
from router.settings import Settings
from router.store import EarlierDelivery, NewRecord, Store, open_store, retention
from router.store.batching import Batcher
from router.store.instances import HEARTBEAT_SECONDS, Instance

log = structlog.get_logger("omniroute.runtime")

#: Adapter secrets shorter than this are logged as weak at start-up (not refused:
#: some providers let people choose short ones, and refusing would break configs).
SHORT_SECRET = 16
#: A heartbeat that takes longer is abandoned (the next one will try again).
HEARTBEAT_TIMEOUT = 3.0
#: How often partitions ahead are checked (they are created months ahead).
PARTITION_CHECK_SECONDS = 6 * 3600
RETENTION_SECONDS = 6 * 3600
#: Expired replay nonces are deleted this often (they live minutes).
NONCE_PURGE_SECONDS = 300
#: The pending-deliveries gauge is refreshed this often.
PENDING_GAUGE_SECONDS = 15
#: Delivered events past their keeping time are deleted this often.
PURGE_SECONDS = 3600
#: Expired console sessions are deleted this often (sign-ins delete them too;
#: this is for a console nobody signs into), at most a batch per statement
#: and a bounded number of batches per run: the rest waits for the next run.
SESSION_PURGE_SECONDS = 3600
SESSION_PURGE_BATCH = 1000
SESSION_PURGE_BATCHES = 10
#: The lifecycle log (the live stream's) keeps this many seconds of changes.
LIVE_LOG_KEEP_SECONDS = 86400
#: The author of the first version published from the files at start-up.
STARTUP_AUTHOR = "start-up"
#: The reporting replica's lag is measured this often (when one is configured).
REPLICA_LAG_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    rules: LiveRules
    #: compiled earlier ruleset versions, for explain
    versions: Versions
    store: Store
    recognition: Recognition
    pipeline: Pipeline
    adapters: dict[str, Adapter]
    #: what a name that is not configured answers as (see ``webhooks.deliver``)
    unknown_adapter: Adapter
    instance: Instance
    jobs: Jobs
    #: which destinations receive which events (empty: none configured)
    destinations: Destinations
    #: delivers the outbox (``None`` when no destination is configured)
    dispatcher: Dispatcher | None
    #: the lifecycle changes of every instance, for the live stream
    feed: Feed


def build_adapters(settings: Settings) -> dict[str, Adapter]:
    """Every configured adapter; ``AdapterSpec`` drops empty secrets and refuses
    an adapter left without one (``ConfigError``)."""
    out = {}
    for a in settings.adapters:
        spec = AdapterSpec(
            name=a.name,
            kind=a.kind,
            secrets=tuple(a.secrets),
            options=a.options,
            sources=a.secret_sources,
        )
        if spec.dropped:
            log.info("adapter_secret_empty", adapter=a.name, ignored=list(spec.dropped))
        pairs = zip(spec.sources, spec.secrets, strict=True)
        weak = [src for src, secret in pairs if len(secret) < SHORT_SECRET]
        if weak:
            log.warning(
                "adapter_secret_short",
                adapter=a.name,
                secrets=weak,
                hint=f"shorter than {SHORT_SECRET} characters: easy to guess; use 32 or more",
            )
        out[a.name] = adapters.build(spec)
    return out


def unknown_adapter() -> Adapter:
    """What adapter names that are not configured answer as: a generic adapter
    whose secret (random, never shown) nobody has."""
    spec = AdapterSpec(name="unknown", kind="chat", secrets=(secrets.token_hex(32),))
    return adapters.build(spec)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    adapters: dict[str, Adapter] | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime, its jobs running, until the block ends. ``ConfigError``
    when the rules do not load."""
    metrics = metrics or Metrics()
    rules = LiveRules(settings.rules.paths, metrics, source=settings.rules.source)
    if settings.rules.source == "files":
        try:
            ruleset = rules.load()
        except RulesError as exc:
            raise ConfigError(_refusal("the rules files", exc)) from None
    async with (
        open_store(settings.database) as store,
        _provider(settings, metrics) as provider,
        _outbound_client(settings) as client,
    ):
        await store.reporting.ensure_partitions(months_back=1)
        if settings.rules.source == "database":
            ruleset = await _published_at_start(store, rules)
        await store.rulesets.save(ruleset.version, ruleset.sources)
        recognition = Recognition(
            store, normalizer=identity.configured(settings.identity), provider=provider
        )
        inflight = max(1, settings.database.pool_max // 2)
        resolver: Batcher[Lookup, EarlierDelivery | Recognized] = Batcher(
            "resolve",
            recognition.resolve_many,
            max_inflight=inflight,
            observe=metrics.batch_items.labels(batcher="resolve").observe,
        )
        destinations = Destinations(settings.destinations)
        insert = (
            partial(store.records.insert_many, outbox=destinations.routed)
            if destinations
            else store.records.insert_many
        )
        writer: Batcher[NewRecord, EarlierDelivery | None] = Batcher(
            "record",
            insert,
            max_inflight=inflight,
            observe=metrics.batch_items.labels(batcher="record").observe,
        )
        rt = Runtime(
            settings=settings,
            metrics=metrics,
            rules=rules,
            versions=Versions(store.rulesets.sources),
            store=store,
            recognition=recognition,
            pipeline=Pipeline(
                ruleset=lambda: rules.active,
                metrics=metrics,
                normalizer=recognition.normalizer,
                provider=recognition.provider,
                resolver=resolver,
                writer=writer,
                claim=store.nonces.claim,
                on_routed=rules.count,
                lifetime=_lifetime(settings),
                record_outcome=partial(_record_outcome, store, destinations),
            ),
            adapters=build_adapters(settings) if adapters is None else adapters,
            unknown_adapter=unknown_adapter(),
            instance=Instance(port=settings.http.port),
            jobs=Jobs(),
            destinations=destinations,
            dispatcher=None
            if client is None or not settings.delivery.dispatch
            else Dispatcher(store, settings.destinations, settings.delivery, metrics, client),
            feed=Feed(store),
        )
        if settings.database.batching:
            resolver.start()
            writer.start()
        try:
            _schedule(rt)
            await rt.jobs.start()
            try:
                yield rt
            finally:
                await rt.jobs.stop()
        finally:
            await resolver.stop()
            await writer.stop()


@contextlib.asynccontextmanager
async def _outbound_client(settings: Settings) -> AsyncIterator[Client | None]:
    """The HTTP client of the dispatcher, when destinations are configured:
    ``outbound.client`` (keep-alive connections per origin, no cookies, no
    redirects), not aiohttp's, whose per-request machinery costs 6.8 times
    the instructions of an attempt (docs/deliveries.md)."""
    if not settings.destinations:
        yield None
        return
    client = Client()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _provider(settings: Settings, metrics: Metrics) -> AsyncIterator[ContextProvider | None]:
    if settings.context_provider is None:
        yield None
        return
    provider = ContextProvider(settings.context_provider, metrics)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


# -- the jobs ------------------------------------------------------------------


def _schedule(rt: Runtime) -> None:
    """The jobs every instance runs (see ``router.jobs``)."""
    jobs, store, reporting = rt.jobs, rt.store, rt.settings.reporting
    jobs.every(
        "heartbeat",
        HEARTBEAT_SECONDS,
        partial(_heartbeat, rt),
        first="awaited",
        timeout=HEARTBEAT_TIMEOUT,
        at_stop=partial(store.instances.leave, rt.instance),
    )
    jobs.every("partitions", PARTITION_CHECK_SECONDS, store.reporting.ensure_partitions)
    jobs.every("rollup", reporting.rollup_interval, partial(_roll_up, store), first="now")
    if reporting.retention_months is not None:
        expire = partial(_expire, store, reporting.retention_months)
        jobs.every("retention", RETENTION_SECONDS, expire, first="now")
    jobs.every("nonce_purge", NONCE_PURGE_SECONDS, partial(_purge_nonces, store), first="now")
    sessions_purge = partial(_purge_sessions, store)
    jobs.every("session_purge", SESSION_PURGE_SECONDS, sessions_purge, first="now", timeout=60)
    if rt.dispatcher is not None:
        jobs.watch("deliveries", rt.dispatcher.run)
        jobs.every("deliveries_pending", PENDING_GAUGE_SECONDS, rt.dispatcher.refresh_pending)
        jobs.every("deliveries_purge", PURGE_SECONDS, rt.dispatcher.purge, first="now")
    if rt.settings.rules.source == "database":
        follow = partial(
            rt.rules.follow,
            store.rulesets.listening,
            store.rulesets.published_version,
            store.rulesets.sources,
            partial(_rules_loaded, rt),
        )
        jobs.watch("rules", follow)
    elif rt.settings.rules.watch:
        jobs.watch("rules", partial(rt.rules.watch, partial(_rules_loaded, rt)))
    jobs.watch("live", rt.feed.run)
    jobs.every("live_purge", PURGE_SECONDS, partial(_purge_live, store), first="now")
    life = rt.settings.lifecycle
    jobs.every("overflow_steps", life.step_interval, partial(_apply_steps, rt), timeout=10)
    jobs.every("expiry", life.expiry_interval, partial(_expire_open, rt), first="now", timeout=60)
    assigner = Assigner(
        store,
        lambda: rt.rules.active,
        rt.settings.agents,
        outbox=rt.destinations.offered if rt.destinations else None,
        metrics=rt.metrics,
    )
    jobs.watch("assignment", assigner.run)
    if store.replica.configured:
        measure = partial(_measure_replica, rt)
        jobs.every("replica_lag", REPLICA_LAG_SECONDS, measure, first="now", timeout=10)


def _lifetime(settings: Settings) -> Callable[[str, str], float | None]:
    """Seconds a contact of an adapter and a channel stays open (``None``: its
    lifecycle is not kept): ``lifecycle: none`` on the adapter, else the
    channel's lifetime. A lookup built once (settings do not change while the
    service runs), not a search of the adapters per contact."""
    untracked = frozenset(a.name for a in settings.adapters if a.lifecycle == "none")
    channels = settings.lifecycle
    per_channel: dict[str, float | None] = {}

    def lifetime(adapter: str, channel: str) -> float | None:
        if adapter in untracked:
            return None
        try:
            return per_channel[channel]
        except KeyError:
            value = per_channel[channel] = channels.lifetime(channel)
            return value

    return lifetime


async def _record_outcome(
    store: Store, destinations: Destinations, adapter: str, event: OutcomeEvent
) -> int:
    """Record a provider's outcome event (a status callback) for the contacts
    of ``adapter`` it names, as ``POST /v1/contacts/{id}/events`` does; how many."""
    done = await store.events.record_named(
        adapter,
        event,
        at=event.at or now_ms(),
        outbox=destinations.moved if destinations else None,
    )
    return len(done)


async def _apply_steps(rt: Runtime) -> None:
    """Apply the due overflow steps, a batch per statement, until none is due."""
    batch = rt.settings.lifecycle.batch
    outbox = rt.destinations.steps if rt.destinations else None
    while True:
        applied = await rt.store.lifecycle.apply_due_steps(limit=batch, outbox=outbox)
        assigned = rt.rules.active.assigned
        if any(s.after.queue in assigned for s in applied):
            await rt.store.offers.wake()  # no waiting for the assigners' sweep
        for step in applied:
            rt.metrics.overflow_step(step)
            log.info(
                "overflow_step",
                contact_id=str(step.contact_id),
                adapter=step.adapter,
                channel=step.channel,
                step=step.step,
                from_queue=step.before.queue,
                queue=step.after.queue,
                priority=step.after.priority,
                late_ms=round((step.at - step.due).total_seconds() * 1000, 1),
            )
        if len({s.contact_id for s in applied}) < batch:
            return


async def _expire_open(rt: Runtime) -> None:
    """Expire the open contacts past their lifetime, a batch per statement."""
    batch = rt.settings.lifecycle.batch
    outbox = rt.destinations.expired if rt.destinations else None
    while True:
        expired = await rt.store.lifecycle.expire_due(limit=batch, outbox=outbox)
        for gone in expired:
            rt.metrics.expired.labels(channel=gone.channel, queue=gone.queue).inc()
        if expired:
            log.info("contacts_expired", count=len(expired))
        if len(expired) < batch:
            return


async def _measure_replica(rt: Runtime) -> None:
    """Measure the reporting replica's lag (reads follow it) for the gauges."""
    rt.metrics.replica(await rt.store.replica.measure())


async def _heartbeat(rt: Runtime) -> None:
    """Tell the other instances which ruleset this one serves."""
    await rt.store.instances.beat(
        rt.instance, ruleset=rt.rules.active.version, rules_errors=rt.rules.last_error
    )


async def _rules_loaded(rt: Runtime, ruleset: Ruleset) -> None:
    """A new version was loaded: keep it for explain, and tell the other
    instances at once."""
    with contextlib.suppress(StoreUnavailable):
        await rt.store.rulesets.save(ruleset.version, ruleset.sources)
    await rt.jobs.run_now("heartbeat")


async def serve_published(rt: Runtime) -> None:
    """Switch to the published version now if it is not served yet (after a
    publication through this instance; the others follow its notification)."""
    await rt.rules.switch(
        rt.store.rulesets.published_version, rt.store.rulesets.sources, partial(_rules_loaded, rt)
    )


def _refusal(what: str, exc: RulesError) -> str:
    """Why the service does not start: ``what`` (plural), then every problem."""
    why = "fail their tests" if isinstance(exc, RulesTestsFailed) else "do not load"
    return f"{what} {why}:\n  " + "\n  ".join(exc.problems)


async def _published_at_start(store: Store, rules: LiveRules) -> Ruleset:
    """``rules.source: database`` at start: serve the published version; with
    none published yet, publish the files in ``rules.paths`` first (comment
    "initial"). ``ConfigError`` when that version does not load or its tests
    fail: the service does not start on rules it cannot vouch for."""
    published = await store.rulesets.published()
    if published is None:
        try:
            files = await asyncio.to_thread(rules.read_files, "start")
        except RulesError as exc:
            raise ConfigError(
                _refusal("no ruleset is published yet, and the rules files", exc)
            ) from None
        with contextlib.suppress(PublishConflict):  # another instance was first
            await store.rulesets.publish(
                files.version,
                files.sources,
                author=STARTUP_AUTHOR,
                comment="initial",
                parent=None,
                check_parent=True,
            )
            log.info("rules_published", version=files.version, author=STARTUP_AUTHOR)
        published = await store.rulesets.published()
        assert published is not None
    sources = await store.rulesets.sources(published.version) or {}
    try:
        ruleset = await asyncio.to_thread(load_checked, sources, rules.metrics, "start")
    except RulesError as exc:
        raise ConfigError(
            _refusal(f"the files of the published ruleset {published.version}", exc)
        ) from None
    return rules.activate(ruleset)


async def _roll_up(store: Store) -> None:
    done = await store.reporting.refresh_rollups()
    if done is not None and done.hours:
        log.info("rollups_refreshed", hours=done.hours, rolled_until=str(done.rolled_until))


async def _expire(store: Store, months: int) -> None:
    cutoff = retention.months_before(datetime.now(UTC), months)
    report = await store.reporting.apply_retention(cutoff)
    if report is not None and (report.dropped or report.default_rows):
        log.info(
            "retention_applied",
            cutoff=report.cutoff.isoformat(),
            dropped=[p.name for p in report.dropped],
            default_rows=report.default_rows,
            keys=report.keys,
            events=report.events,
            offers=report.offers,
            open_closed=report.open_closed,
        )


async def _purge_nonces(store: Store) -> None:
    deleted = await store.nonces.purge()
    if deleted:
        log.info("replay_nonces_purged", deleted=deleted)


async def _purge_sessions(store: Store) -> None:
    """Delete the expired console sessions, a batch per statement, up to
    ``SESSION_PURGE_BATCHES`` batches a run."""
    deleted = 0
    for _ in range(SESSION_PURGE_BATCHES):
        n = await store.console.purge_expired(limit=SESSION_PURGE_BATCH)
        deleted += n
        if n < SESSION_PURGE_BATCH:
            break
    if deleted:
        log.info("console_sessions_purged", deleted=deleted)


async def _purge_live(store: Store) -> None:
    """Delete the lifecycle log's rows older than a day, a batch at a time."""
    deleted = 0
    while (n := await store.live.purge(older_than=LIVE_LOG_KEEP_SECONDS)) > 0:
        deleted += n
    if deleted:
        log.info("live_log_purged", deleted=deleted)
