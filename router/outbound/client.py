"""The dispatcher's HTTP client: one request per attempt, over keep-alive
connections pooled per origin, the answer parsed by ``httptools`` (llhttp,
the C parser of Node.js), its status the only thing kept.

Why not aiohttp's client here: an attempt through ``ClientSession.request``
costs 6.8 times the instructions of one through this client (344,000
against 50,000 per request; 254 against 84 µs of CPU with the system calls;
``bench/http_client.py``, docs/deliveries.md, "Why not aiohttp's client
here"), and its knobs save 5 % of it: a session request builds a request
and a response object, their header multidicts, a timer object and the
tracing hooks, and parses the answer's headers into a multidict nobody
reads. httpx (h11, a parser in Python) costs nine times aiohttp. The
dispatcher needs a status per attempt, so this client writes the request's
head in one string and lets llhttp find the status, the end of the answer
and whether the connection may be kept, without calling back into Python
per header or per body chunk. The context provider and the commands keep
aiohttp (they are not per event).

What it does, and keeps from the aiohttp client it replaces:

* **HTTP/1.1**, ``http`` and ``https``; TLS verifies the certificate and the
  host name against the system's CA store (``ssl.create_default_context``,
  which also reads ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), with SNI.
* **Keep-alive pool per origin** (scheme, host, port), reused across
  attempts and destinations, newest first; its size follows use (a lane's
  ``concurrency`` bounds its attempts in flight, so its connections). A
  connection idle for ``KEEPALIVE`` seconds is not used again, and a sweep
  (one timer, while any connection is idle) closes it at most an eighth of
  that later, so no socket stays open for a destination no longer sent to;
  one the server closes is closed at once (its end read while idle). At
  most ``MAX_IDLE`` idle connections per origin: past them the longest
  idle is closed. An origin without idle connections leaves no entry.
* **The request**: the method, the URL's path and query, ``Host``,
  ``User-Agent: omniroute``, ``Content-Length``, the headers ``build`` gives
  (no header may hold a line break: refused) and the body, in one write.
  What the socket does not take at once the transport keeps; past its
  high-water mark (a large body, a receiver reading slowly) the attempt
  waits for it to drain before it waits for the answer, under the same
  deadline. A connection dropped mid-attempt (its deadline, a failure)
  is aborted: the request's unwritten rest is thrown away rather than
  kept in an open socket until a receiver that does not read takes it. An
  answer that comes while the request is still held back (a receiver
  refusing the body early) stands, and its connection is not reused.
  Credentials in the URL (``https://user:pass@host/``) are sent as Basic
  ``Authorization`` unless the headers have one, as aiohttp did.
* **The answer**: Content-Length, chunked and close-delimited bodies; 1xx
  answers skipped; ``Connection: close`` (or HTTP/1.0) closes the connection
  after it; an answer nobody asked for (a second head after the answer, or
  bytes while idle) ends the connection. The body is read and discarded without being kept: past
  ``MAX_ANSWER`` bytes the connection is closed instead of read to the end
  (the status, already known, stands). Redirects are not followed (a 3xx is
  a failed answer) and no cookies are kept.
* **A total timeout per attempt** (connecting, TLS, the request and the
  answer): ``TimeoutError``, which the dispatcher words "no answer within
  N s"; while still connecting (or in TLS's handshake) it is the
  ``ClientError`` "cannot connect to host:port within N s".
* **A stale connection**: a pooled connection that the server closed (or
  reset) before any byte of the answer came is not a failure: the request
  is sent once more on a new connection (at least once: an event may be
  received twice, with the same id, as after any lost answer). Once part of
  the answer came, or on a new connection, that is a failed attempt.
* **Failures** are ``ClientError`` whose text is the ``last_error`` the API
  shows (docs/deliveries.md lists them).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import cast
from urllib.parse import quote, unquote, urlsplit

import httptools

#: Seconds a pooled connection may stay idle and still be used (aiohttp's
#: default); a sweep closes it at most an eighth later.
KEEPALIVE = 15.0
#: Idle connections kept per origin at most (a destination's highest
#: ``concurrency``): past them the longest idle is closed.
MAX_IDLE = 256
#: Bytes of an answer read at most (its head and body): past them the
#: connection is closed and the status, if known, decides.
MAX_ANSWER = 64 * 1024
USER_AGENT = "omniroute"


class ClientError(Exception):
    """An attempt without a usable answer; its text is the ``last_error``."""


class _Stale(Exception):
    """The connection was closed before any byte of the answer came."""


@dataclass(slots=True)
class Target:
    """What a URL gives a request (one per distinct URL, cached)."""

    origin: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    #: the request line's target and the fixed headers, up to the method
    tail: str
    auth: str | None


@lru_cache(maxsize=4096)
def target(url: str) -> Target:
    """Parse ``url`` once (``ValueError`` for one this client cannot send)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # its text may quote the URL's host or port
        raise ValueError("the URL's host or port cannot be read") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"the URL's scheme is {scheme or 'missing'!r}, not http or https")
    if not host:
        raise ValueError("no host in the URL")
    if not host.isascii():  # an international name: its ASCII form (IDNA)
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("the URL's host is not a valid international name") from None
    default = 443 if scheme == "https" else 80
    port = port or default
    named = f"[{host}]" if ":" in host else host
    if port != default:
        named = f"{named}:{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    _check(path=path, host=named)
    auth = None
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    tail = f" {path} HTTP/1.1\r\nHost: {named}\r\nUser-Agent: {USER_AGENT}\r\n"
    return Target((scheme, host, port), host, port, scheme == "https", tail, auth)


def _check(**parts: str) -> None:
    """Refuse a part of the request line holding a line break or a space.
    The texts name the part, never the URL: a URL may carry credentials or
    a token, and the text is an event's ``last_error``, shown by the API."""
    for name, text in parts.items():
        if "\r" in text or "\n" in text or "\0" in text or " " in text.strip():
            raise ValueError(f"a line break or space in the URL's {name}")


def head(method: str, to: Target, headers: dict[str, str], length: int) -> bytes:
    """The request's head: request line, headers and the blank line."""
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    # a line break in a name or a value adds to the one ending each line
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        # named, its value not shown (it may be a credential)
        bad = next(k for k, v in headers.items() if "\n" in k + v or "\r" in k + v)
        raise ValueError(f"a line break in the header {bad!r}")
    if to.auth is not None and not any(k.lower() == "authorization" for k in headers):
        lines += f"Authorization: {to.auth}\r\n"
    try:
        return f"{method}{to.tail}Content-Length: {length}\r\n{lines}\r\n".encode("latin-1")
    except UnicodeEncodeError:  # its text quotes the character: named, not shown
        bad = next((k for k, v in headers.items() if not _latin1(k + v)), "")
        raise ValueError(f"a character that is not latin-1 in the header {bad!r}") from None


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class _Connection(asyncio.Protocol):
    """One connection to an origin: an answer at a time, parsed by llhttp
    (no callback per header or body chunk: only the end of the head and of
    the answer come back into Python)."""

    def __init__(self, client: Client, origin: tuple[str, str, int]) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: the final answer's status once its head is parsed (0: not yet)
        self.status = 0
        #: bytes of the current answer so far
        self.received = 0
        self.idle_since = 0.0
        self.closed = False
        #: the transport's buffer is above its high-water mark (flow control)
        self.paused = False
        #: set when the buffer drains (or the attempt ends) while ``paused``
        self.drained: asyncio.Future[None] | None = None
        self._expiry = self._expired  # (one bound method, not one per request)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.client._open.add(self)

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: not reusable
            self.close()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # a bad body after the head: the status stands, the connection goes
            self._settle(error="" if self.status else f"invalid answer: {_parse_error(exc)}")
            return
        if self.waiter is waiter and self.received > MAX_ANSWER:  # too long: stop reading
            if self.status:
                self._settle()
            else:
                self._settle(error=f"invalid answer: a head longer than {MAX_ANSWER} bytes")

    def eof_received(self) -> bool:
        return False  # close: connection_lost follows

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._forget(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.status:  # closed after the head (a close-delimited body, or cut): decided
            self._settle()
        elif self.received == 0:
            self._settle(stale=True)
        else:
            self._settle(error="connection closed mid-answer")

    # -- httptools callbacks --

    def on_headers_complete(self) -> None:
        if self.waiter is None:  # an answer after the answer (in the same read): not reusable
            self.close()  # (no on_message_begin to see it sooner: a call per answer)
            return
        status = self.parser.get_status_code()
        if status >= 200:  # 1xx: the final answer follows
            self.status = status

    def on_message_complete(self) -> None:
        if self.status:  # (an answer after the answer: closed at its head, no waiter)
            self._settle(keep=self.parser.should_keep_alive())

    # -- the request --

    def send(self, data: bytes, deadline: float) -> asyncio.Future[int]:
        """Write a request; the future gets the answer's status."""
        assert self.transport is not None
        loop = self.client._loop
        waiter: asyncio.Future[int] = loop.create_future()
        self.waiter, self.status, self.received = waiter, 0, 0
        self.timer = loop.call_at(deadline, self._expiry)
        self.transport.write(data)  # what the socket does not take now, the transport keeps
        return waiter

    async def written(self) -> None:
        """Return once the request's bytes left the transport's buffer (below
        its low-water mark), or the attempt ended (its answer, its deadline,
        the connection lost): the writer's flow control."""
        if self.paused and self.waiter is not None:
            self.drained = self.client._loop.create_future()
            await self.drained

    def _wake(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _expired(self) -> None:
        self.timer = None
        self._settle(timeout=True)

    def _settle(
        self, *, keep: bool = False, error: str = "", stale: bool = False, timeout: bool = False
    ) -> None:
        """End the current attempt: its status, or its failure; the
        connection back to the pool when ``keep``, else closed."""
        waiter, self.waiter = self.waiter, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.paused:  # the request still held back: its rest dropped, its writer woken
            self._wake()
            self.close(drop=True)
        elif keep and not self.closed:
            self.client._release(self)
        else:
            self.close(drop=timeout or bool(error))
        if waiter is None or waiter.done():
            return
        if timeout:
            waiter.set_exception(TimeoutError())
        elif stale:
            waiter.set_exception(_Stale())
        elif error:
            waiter.set_exception(ClientError(error))
        else:
            waiter.set_result(self.status)

    def close(self, *, drop: bool = False) -> None:
        """Close the connection. When ``drop`` (an attempt cut short), or
        bytes of a request are still unwritten, they are dropped
        (``abort``): a transport's ``close`` keeps the socket open until
        they are written, which a receiver that does not read never lets
        happen. (Over TLS the bytes wait below the TLS layer, which does
        not count them: only ``drop`` reaches them.)"""
        if not self.closed:
            self.closed = True
            self.client._forget(self)
            transport = self.transport
            if transport is not None:
                if drop or transport.get_write_buffer_size():
                    transport.abort()
                else:
                    transport.close()

    def abort(self) -> None:
        """Drop the connection at once (an attempt given up mid-answer)."""
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._wake()
        self.close(drop=True)


def _parse_error(exc: Exception) -> str:
    if isinstance(exc, httptools.HttpParserUpgrade):
        return "a protocol upgrade"
    return str(exc) or type(exc).__name__


class Client:
    """Requests over keep-alive connections pooled per origin. Made and used
    in one event loop; ``close`` ends every connection."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: float = KEEPALIVE,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self._ssl = ssl_context
        self._keepalive = keepalive
        self._max_idle = max_idle
        #: per origin, idle connections from the longest idle to the latest
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._loop = asyncio.get_running_loop()
        #: the next sweep of idle connections, while any is idle
        self._sweep: asyncio.TimerHandle | None = None
        #: new connections made (for tests and figures)
        self.connections = 0

    async def request(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> int:
        """Send one request; the answer's status. ``TimeoutError`` when no
        whole answer came within ``timeout`` seconds, ``ClientError`` when
        there was none to be had, ``ValueError`` for a request that cannot
        be made (a URL or a header this client cannot send)."""
        to = target(url)
        data = head(method, to, headers, len(body)) + body
        loop = self._loop
        now = loop.time()
        deadline = now + timeout
        conn = self._pooled(to.origin, now)
        if conn is not None:
            try:
                return await self._exchange(conn, data, deadline)
            except _Stale:
                pass  # closed by the server while idle: once more, on a new connection
        conn = await self._connect(to, deadline, timeout)
        try:
            return await self._exchange(conn, data, deadline)
        except _Stale:
            raise ClientError("connection closed before the answer") from None

    async def _exchange(self, conn: _Connection, data: bytes, deadline: float) -> int:
        waiter = conn.send(data, deadline)
        try:
            if conn.paused:  # a request larger than the transport's buffer: written first
                await conn.written()
            return await waiter
        except asyncio.CancelledError:
            conn.abort()  # mid-answer: the connection cannot be reused
            raise

    def _pooled(self, origin: tuple[str, str, int], now: float) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self._keepalive:  # the newest is too old: all are
                conn.close()
                for old in idle[:]:
                    old.close()
                return None
            return conn
        return None

    def _release(self, conn: _Connection) -> None:
        now = conn.idle_since = self._loop.time()
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = []
        idle.append(conn)
        if len(idle) > self._max_idle:
            idle.pop(0).close()  # the longest idle
        if self._sweep is None:
            self._sweep = self._loop.call_at(now + self._keepalive, self._swept)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)
            if not idle:  # an origin no longer used leaves no trace
                del self._idle[conn.origin]

    def _swept(self) -> None:
        """Close the connections idle longer than ``keepalive``: a socket is
        not kept open for a destination no longer sent to (nor for one the
        receiver closed, which ``connection_lost`` already ended). Then the
        next sweep, when the longest idle left expires (not sooner than an
        eighth of ``keepalive``: one timer, not one per release)."""
        self._sweep = None
        now = self._loop.time()
        oldest = now
        for origin, idle in list(self._idle.items()):
            while idle and now - idle[0].idle_since >= self._keepalive:
                idle.pop(0).close()
            if idle:
                oldest = min(oldest, idle[0].idle_since)
            else:  # its connections all in use, or closed
                self._idle.pop(origin, None)
        if self._idle:
            due = max(oldest + self._keepalive, now + self._keepalive / 8)
            self._sweep = self._loop.call_at(due, self._swept)

    async def _connect(self, to: Target, deadline: float, timeout: float) -> _Connection:
        self.connections += 1
        where = f"{to.host}:{to.port}"
        tls = self._context() if to.tls else None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self._loop.create_connection(
                    partial(_Connection, self, to.origin),
                    to.host,
                    to.port,
                    ssl=tls,
                    server_hostname=to.host if tls is not None else None,
                )
        except ssl.SSLCertVerificationError as exc:
            why = exc.verify_message or exc.reason or str(exc)
            raise ClientError(f"TLS with {where}: certificate verify failed: {why}") from None
        except ssl.SSLError as exc:
            raise ClientError(f"TLS with {where}: {exc.reason or exc}") from None
        except socket.gaierror as exc:
            raise ClientError(f"cannot resolve {to.host}: {exc.strerror or exc}") from None
        except OSError as exc:
            if isinstance(exc, TimeoutError) and exc.errno is None:
                # the attempt's deadline (asyncio's, no errno), in connecting or TLS's handshake
                raise ClientError(f"cannot connect to {where} within {timeout:g} s") from None
            why = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            raise ClientError(f"cannot connect to {where}: {why}") from None
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made at the first https request, then kept
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._open):
            conn.close(drop=conn.waiter is not None)
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports close
