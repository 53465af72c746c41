"""The app factory: resources opened and closed in ``cleanup_ctx``, handlers
registered, one error middleware."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

import adapters
from adapters.base import Adapter, AdapterSpec
from router.errors import ConfigError, RulesError
from router.live_rules import LiveRules
from router.metrics import Metrics
from router.pipeline import Pipeline
from router.rules import Ruleset
from router.settings import Settings
from router.store import db, migrations
from router.store.rulesets import save_ruleset
from router.web import contacts, ops, reports, webhooks
from router.web.auth import Tokens
from router.web.errors import error_middleware
from router.web.runtime import RUNTIME, Runtime

log = structlog.get_logger("omniroute.app")

#: How often partitions ahead are checked (they are created months ahead).
PARTITION_CHECK_SECONDS = 6 * 3600


def build_adapters(settings: Settings) -> dict[str, Adapter]:
    out = {}
    for a in settings.adapters:
        if not a.secrets:
            raise ConfigError(f"adapter {a.name!r}: at least one secret is required")
        out[a.name] = adapters.build(
            AdapterSpec(name=a.name, kind=a.kind, secrets=tuple(a.secrets), options=a.options)
        )
    return out


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        rules=LiveRules(settings.rules.paths, metrics),
        tokens=Tokens(settings.api.tokens),
        adapters=build_adapters(settings),
    )
    app = web.Application(
        middlewares=[error_middleware(metrics)],
        client_max_size=settings.http.max_body_bytes,
    )
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_background)
    webhooks.setup(app)
    contacts.setup(app)
    reports.setup(app)
    ops.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    try:
        ruleset = rt.rules.load()
    except RulesError as exc:
        raise ConfigError("the rules do not load:\n  " + "\n  ".join(exc.problems)) from None
    async with db.database(rt.settings.database) as url:
        pool = await db.connect_pool(url, rt.settings.database)
        try:
            async with pool.acquire() as con:
                await migrations.migrate(con)
                await con.fetchval("SELECT ensure_partitions(now() - interval '1 month', 4)")
            await save_ruleset(pool, ruleset.version, ruleset.sources)
            rt.pool_ = pool
            rt.pipeline_ = Pipeline(
                pool=pool,
                ruleset=lambda: rt.rules.active,
                metrics=rt.metrics,
                default_region=rt.settings.identity.default_region,
            )
            yield
        finally:
            await pool.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    stop = asyncio.Event()

    async def on_load(ruleset: Ruleset) -> None:
        with contextlib.suppress(*db.UNAVAILABLE):
            await save_ruleset(rt.pool, ruleset.version, ruleset.sources)

    if rt.settings.rules.watch:
        rt.tasks.append(asyncio.create_task(rt.rules.watch(on_load, stop)))
    rt.tasks.append(asyncio.create_task(_partitions(rt, stop)))
    yield
    stop.set()
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)


async def _partitions(rt: Runtime, stop: asyncio.Event) -> None:
    """Keep monthly partitions created ahead of time."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), PARTITION_CHECK_SECONDS)
            return
        try:
            await rt.pool.fetchval("SELECT ensure_partitions(now(), 4)")
        except db.UNAVAILABLE as exc:
            log.warning("partition_check_failed", error=str(exc))
