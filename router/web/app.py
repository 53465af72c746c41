"""The app factory: the runtime opened and closed in one ``cleanup_ctx``, the
routes registered from one table, one error middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from router.metrics import Metrics
from router.runtime import build_adapters, open_runtime
from router.settings import Settings
from router.web import console
from router.web.auth import Tokens
from router.web.errors import error_middleware
from router.web.limits import ClientAddresses, FailureLimiter
from router.web.routes import register, routes
from router.web.server import CONNECTIONS, Connections, reading
from router.web.state import RUNTIME, TOKENS


def create_app(settings: Settings) -> web.Application:
    """The app; a configuration error in an adapter (``ConfigError``) stops it
    here, before anything starts."""
    metrics = Metrics()
    adapters = build_adapters(settings)
    tokens = Tokens(
        settings.api.tokens,
        limiter=FailureLimiter(settings.api.failed_auth_limit, settings.api.failed_auth_window),
        clients=ClientAddresses(settings.http.trusted_proxies),
    )
    connections = Connections(settings.http.header_timeout, metrics)
    app = web.Application(
        middlewares=[error_middleware(metrics), reading(settings, connections)],
        client_max_size=settings.http.max_body_bytes,
        handler_args={"keepalive_timeout": settings.http.keepalive_timeout},
    )
    app[CONNECTIONS] = connections
    app[TOKENS] = tokens
    console.install(app)

    async def runtime(app: web.Application) -> AsyncIterator[None]:
        async with open_runtime(settings, metrics=metrics, adapters=adapters) as rt:
            app[RUNTIME] = rt
            yield

    async def end_streams(app: web.Application) -> None:
        # before the server waits for the requests in flight: the live streams end
        if RUNTIME in app:
            app[RUNTIME].feed.close()

    app.cleanup_ctx.append(runtime)
    app.on_shutdown.append(end_streams)
    register(app, routes(settings), tokens, adapters=[a.name for a in settings.adapters])
    return app
