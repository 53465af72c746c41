"""Serving the app: the listening socket, slow clients, shutdown.

Slow clients are held to three limits (``http.*``):

- ``header_timeout``: a request's header block must be complete this many
  seconds after the connection opened, or after the first byte of a next
  request on a kept-alive connection. aiohttp has no such timer (its
  keep-alive timer runs for an hour and is not reset by trickled bytes), so
  each connection's protocol is wrapped in :class:`_Watched`, which starts the
  timer and is told by the app's middleware (:func:`reading`) when a request
  begins and ends. (The timer is not stopped when a request begins: a
  deadline is kept, and a timer that fires before a moved deadline waits for
  the new one, so a busy connection does not make and cancel a timer per
  request.) A connection that sent part of its first header block is
  answered 408 and closed; any other is closed.
- ``body_timeout``: the whole body must arrive this many seconds after the
  headers; :func:`reading` reads it (before the handler) under that timeout
  and answers 408, closing the connection.
- ``keepalive_timeout``: an idle kept-alive connection is closed (aiohttp's
  own timer).

The wrapping is done where the socket is opened (:func:`listen`), so an app
served by other means (aiohttp's test server) has the body timeout but not
the header timer.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

import structlog
from aiohttp import web, web_response
from aiohttp.typedefs import Middleware

from router import heap, logs
from router.errors import FieldError, PayloadTooLarge, RequestTimeout
from router.metrics import Metrics
from router.settings import Settings

log = structlog.get_logger("omniroute.http")

_TIMEOUT_BODY = (
    b'{"error": "request_timeout", "message": "the request headers did not arrive in time"}'
)
#: What a client that sent part of a header block gets before the close.
_HEADER_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Server: omniroute\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n" % len(_TIMEOUT_BODY)
) + _TIMEOUT_BODY
#: Seconds a timer may fire before its time (the event loop's timers have
#: millisecond resolution).
_RESOLUTION = 0.002


#: The ``Server`` header of every answer: no versions to look vulnerabilities up by.
SERVER_HEADER = "omniroute"
# aiohttp's default (``Python/3.x aiohttp/3.x``), which it gives every answer
# without a ``Server`` header of its own as it prepares it (the app's and
# those it writes itself, a malformed request's 400): no handler sets one, so
# no signal per answer is needed to set it.
setattr(web_response, "SERVER_SOFTWARE", SERVER_HEADER)  # noqa: B010


class Connections:
    """The watched connections of one app, by transport."""

    def __init__(self, header_timeout: float, metrics: Metrics) -> None:
        self.header_timeout = header_timeout
        self.metrics = metrics
        self._watched: dict[asyncio.BaseTransport, _Watched] = {}

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server``: aiohttp's protocol,
        watched."""
        return lambda: _Watched(server(), self)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        watched = self._watched.get(transport) if transport is not None else None
        if watched is not None:
            watched.request_started()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        watched = self._watched.get(transport) if transport is not None else None
        if watched is not None:
            watched.request_finished()

    def _opened(self, transport: asyncio.BaseTransport, watched: _Watched) -> None:
        self._watched[transport] = watched

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._watched.pop(transport, None)


class _Watched(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a header timer around it.

    Waiting for a header block: from the connection's opening, and from the
    first byte after a request ended, until ``header_timeout`` later (the
    deadline). The deadline is dropped when the app starts handling a request
    (the header block is complete); the timer itself is left to fire, and
    does nothing then, or waits for a deadline set since."""

    def __init__(self, inner: asyncio.Protocol, connections: Connections) -> None:
        self._inner = inner
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # asked once (a system call on Python 3.11)
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # loop time the header block is due by
        self._waiting = True  # for a header block
        self._partial = False  # part of one arrived
        self._served = 0  # requests begun on this connection

    # -- asyncio.Protocol, passed on ------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections._opened(transport, self)
        self._inner.connection_made(transport)
        self._start_timer()

    def data_received(self, data: bytes) -> None:
        if self._waiting and data:
            self._partial = True
            if self._deadline is None:
                self._start_timer()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._transport is not None:
            self._connections._closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the header timer -------------------------------------------------------

    def request_started(self) -> None:
        self._deadline = None
        self._waiting = self._partial = False
        self._served += 1

    def request_finished(self) -> None:
        self._waiting = True

    def _start_timer(self) -> None:
        self._deadline = self._loop.time() + self._connections.header_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expired)

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        deadline = self._deadline
        if not self._waiting or deadline is None or transport is None or transport.is_closing():
            return
        # a later header block's deadline: wait for it (within the clock's
        # resolution a timer may fire that early: that is the deadline)
        if self._loop.time() + _RESOLUTION < deadline:
            self._timer = self._loop.call_at(deadline, self._expired)
            return
        if self._partial:
            self._connections.metrics.client_timeouts.labels(phase="headers").inc()
            peer = transport.get_extra_info("peername")
            log.info("client_timeout", phase="headers", peer=peer and str(peer[0]))
            if not self._served:
                # (after a request, the previous answer may still be going out:
                # a 408 could land inside it, so the connection is just closed)
                transport.write(_HEADER_TIMEOUT_ANSWER)
        transport.close()


CONNECTIONS = web.AppKey("connections", Connections)


def reading(settings: Settings, connections: Connections) -> Middleware:
    """Tell the connection's header timer that a request began and ended, and
    read the request's body (before the handler) within ``http.body_timeout``."""
    limit = settings.http.max_body_bytes
    timeout = settings.http.body_timeout

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        connections.request_started(transport)
        try:
            if request.body_exists:
                length = request.content_length  # parsed from the header at each ask
                if length is not None and length > limit:
                    raise PayloadTooLarge(
                        "request body too large",
                        fields=[FieldError("body", f"{length} bytes; at most {limit}")],
                    )
                try:
                    if request.content.is_eof():  # arrived with the headers: no timer needed
                        await request.read()
                    else:
                        async with asyncio.timeout(timeout):
                            await request.read()  # kept by the request for the handler
                except TimeoutError:
                    connections.metrics.client_timeouts.labels(phase="body").inc()
                    raise RequestTimeout(
                        "the request body did not arrive in time",
                        fields=[FieldError("body", f"not complete after {timeout:g} s")],
                    ) from None
            return await handler(request)
        finally:
            connections.request_finished(transport)

    return middleware


async def listen(runner: web.AppRunner, settings: Settings) -> asyncio.Server:
    """Open the listening socket of a set-up runner, every connection watched."""
    assert runner.server is not None, "call runner.setup() first"
    connections = runner.app[CONNECTIONS]
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        connections.factory(runner.server),
        settings.http.host,
        settings.http.port,
        reuse_port=settings.http.reuse_port or None,
        backlog=1024,
    )


@asynccontextmanager
async def serving(app: web.Application, settings: Settings) -> AsyncIterator[asyncio.Server]:
    """The app served on ``http.host:port`` until the block ends; then the
    socket is closed, in-flight requests get ``http.shutdown_timeout`` seconds
    to finish, and the app's resources are closed."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.http.shutdown_timeout)
    await runner.setup()
    try:
        server = await listen(runner, settings)
        try:
            yield server
        finally:
            server.close()
    finally:
        await runner.cleanup()


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully. A signal while
    starting (waiting for the database, say) stops the start."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    starting = asyncio.current_task()
    listening = False

    def on_signal() -> None:
        if listening:
            stop.set()
        elif starting is not None:
            starting.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with serving(app, settings):
            listening = True
            log.info("serving", host=settings.http.host, port=settings.http.port)
            heap.settle()
            with logs.per_iteration(loop):
                await stop.wait()
            log.info("stopping")
    except asyncio.CancelledError:
        log.info("stopped_while_starting")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
