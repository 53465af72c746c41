"""The app factory: resources opened and closed in ``cleanup_ctx``, handlers
registered, one error middleware."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

import adapters
from adapters.base import Adapter, AdapterSpec
from router.errors import ConfigError, RulesError, StoreUnavailable
from router.live_rules import LiveRules
from router.metrics import Metrics
from router.pipeline import Pipeline
from router.recognition import Lookup, Recognition, Recognized
from router.recognition.provider import ContextProvider
from router.rules import Ruleset
from router.settings import Settings
from router.store import EarlierDelivery, NewRecord, instances, open_store
from router.store.batching import Batcher
from router.web import contacts, customers, events, ops, reports, webhooks
from router.web.auth import Tokens
from router.web.errors import error_middleware
from router.web.limits import ClientAddresses, FailureLimiter
from router.web.runtime import RUNTIME, Runtime
from router.web.server import CONNECTIONS, Connections, reading, server_header

log = structlog.get_logger("omniroute.app")

#: How often partitions ahead are checked (they are created months ahead).
PARTITION_CHECK_SECONDS = 6 * 3600
#: A heartbeat that takes longer is abandoned (the next one will try again).
HEARTBEAT_TIMEOUT = 3.0
#: Adapter secrets shorter than this are logged as weak at start-up (not refused:
#: some providers let people choose short ones, and refusing would break configs).
SHORT_SECRET = 16


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


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        rules=LiveRules(settings.rules.paths, metrics),
        tokens=Tokens(
            settings.api.tokens,
            limiter=FailureLimiter(settings.api.failed_auth_limit, settings.api.failed_auth_window),
            clients=ClientAddresses(settings.http.trusted_proxies),
        ),
        adapters=build_adapters(settings),
        unknown_adapter=unknown_adapter(),
        instance=instances.Instance(port=settings.http.port),
    )
    connections = Connections(settings.http.header_timeout, metrics)
    app = web.Application(
        middlewares=[error_middleware(metrics), reading(settings, connections)],
        client_max_size=settings.http.max_body_bytes,
        handler_args={"keepalive_timeout": settings.http.keepalive_timeout},
    )
    app[RUNTIME] = runtime
    app[CONNECTIONS] = connections
    app.on_response_prepare.append(server_header)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_background)
    webhooks.setup(app)
    contacts.setup(app)
    customers.setup(app)
    events.setup(app)
    reports.setup(app)
    ops.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    try:
        ruleset = rt.rules.load()
    except RulesError as exc:
        raise ConfigError("the rules do not load:\n  " + "\n  ".join(exc.problems)) from None
    async with open_store(rt.settings.database) as store:
        await store.reporting.ensure_partitions(months_back=1)
        await store.rulesets.save(ruleset.version, ruleset.sources)
        provider = None
        if rt.settings.context_provider is not None:
            provider = ContextProvider(rt.settings.context_provider, rt.metrics)
            await provider.start()
        recognition = Recognition(
            store, normalizer=rt.settings.identity.normalizer(), provider=provider
        )
        inflight = max(1, rt.settings.database.pool_max // 2)
        resolver: Batcher[Lookup, EarlierDelivery | Recognized] = Batcher(
            "resolve", recognition.resolve_many, max_inflight=inflight
        )
        writer: Batcher[NewRecord, EarlierDelivery | None] = Batcher(
            "record", store.records.insert_many, max_inflight=inflight
        )
        if rt.settings.database.batching:
            resolver.start()
            writer.start()
        rt.store_ = store
        rt.recognition_ = recognition
        rt.pipeline_ = Pipeline(
            ruleset=lambda: rt.rules.active,
            metrics=rt.metrics,
            normalizer=recognition.normalizer,
            provider=recognition.provider,
            resolver=resolver,
            writer=writer,
            claim=store.nonces.claim,
            on_routed=rt.rules.count,
        )
        try:
            yield
        finally:
            await resolver.stop()
            await writer.stop()
            if provider is not None:
                await provider.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    stop = asyncio.Event()

    async def on_load(ruleset: Ruleset) -> None:
        with contextlib.suppress(StoreUnavailable):
            await rt.store.rulesets.save(ruleset.version, ruleset.sources)
        await _heartbeat(rt)

    if rt.settings.rules.watch:
        rt.tasks.append(asyncio.create_task(rt.rules.watch(on_load, stop)))
    rt.tasks.append(asyncio.create_task(_every(PARTITION_CHECK_SECONDS, stop, _partitions, rt)))
    await _heartbeat(rt)
    rt.tasks.append(asyncio.create_task(_every(instances.HEARTBEAT_SECONDS, stop, _heartbeat, rt)))
    yield
    stop.set()
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    with contextlib.suppress(StoreUnavailable, TimeoutError):
        await asyncio.wait_for(rt.store.instances.leave(rt.instance), HEARTBEAT_TIMEOUT)


async def _every(
    seconds: float, stop: asyncio.Event, work: Callable[[Runtime], Awaitable[None]], rt: Runtime
) -> None:
    """Run ``work(rt)`` every ``seconds`` until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
            return
        try:
            await work(rt)
        except Exception:  # a background task must outlive any one failure
            log.exception("background_task_failed", task=work.__name__)


async def _partitions(rt: Runtime) -> None:
    """Keep monthly partitions created ahead of time."""
    try:
        await rt.store.reporting.ensure_partitions()
    except StoreUnavailable as exc:
        log.warning("partition_check_failed", error=str(exc))


async def _heartbeat(rt: Runtime) -> None:
    """Tell the other instances which ruleset this one serves; a database
    outage only delays it."""
    try:
        await asyncio.wait_for(
            rt.store.instances.beat(
                rt.instance,
                ruleset=rt.rules.active.version,
                rules_errors=rt.rules.last_error,
            ),
            HEARTBEAT_TIMEOUT,
        )
    except (StoreUnavailable, TimeoutError) as exc:
        log.warning("heartbeat_failed", error=str(exc) or type(exc).__name__)
