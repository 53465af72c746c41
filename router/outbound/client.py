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
  connection idle for ``KEEPALIVE`` seconds, or closed by the server, is not
  used again.
* **The request**: the method, the URL's path and query, ``Host``,
  ``User-Agent: omniroute``, ``Content-Length``, the headers ``build`` gives
  (no header may hold a line break: refused) and the body, in one write.
  Credentials in the URL (``https://user:pass@host/``) are sent as Basic
  ``Authorization`` unless the headers have one, as aiohttp did.
* **The answer**: Content-Length, chunked and close-delimited bodies; 1xx
  answers skipped; ``Connection: close`` (or HTTP/1.0) closes the connection
  after it. The body is read and discarded without being kept: past
  ``MAX_ANSWER`` bytes the connection is closed instead of read to the end
  (the status, already known, stands). Redirects are not followed (a 3xx is
  a failed answer) and no cookies are kept.
* **A total timeout per attempt** (connecting, TLS, the request and the
  answer): ``TimeoutError``, which the dispatcher words "no answer within N s".
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

#: Seconds a pooled connection may stay idle and still be used (aiohttp's default).
KEEPALIVE = 15.0
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
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"the URL's scheme is {scheme or 'missing'!r}, not http or https")
    host = parts.hostname
    if not host:
        raise ValueError("no host in the URL")
    if not host.isascii():  # an international name: its ASCII form (IDNA)
        host = host.encode("idna").decode("ascii")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
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
    text = "".join(headers.values()) + "".join(headers)
    if "\n" in text or "\r" in text:
        # named, its value not shown (it may be a credential)
        bad = next(k for k, v in headers.items() if "\n" in k + v or "\r" in k + v)
        raise ValueError(f"a line break in the header {bad!r}")
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    if to.auth is not None and not any(k.lower() == "authorization" for k in headers):
        lines += f"Authorization: {to.auth}\r\n"
    return f"{method}{to.tail}Content-Length: {length}\r\n{lines}\r\n".encode("latin-1")


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
        status = self.parser.get_status_code()
        if status >= 200:  # 1xx: the final answer follows
            self.status = status

    def on_message_complete(self) -> None:
        if self.status:
            self._settle(keep=self.parser.should_keep_alive())

    # -- the request --

    def send(self, data: bytes, deadline: float) -> asyncio.Future[int]:
        """Write a request; the future gets the answer's status."""
        assert self.transport is not None
        loop = self.client._loop
        waiter: asyncio.Future[int] = loop.create_future()
        self.waiter, self.status, self.received = waiter, 0, 0
        self.timer = loop.call_at(deadline, self._expired)
        self.transport.write(data)
        return waiter

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
        if keep and not self.closed:
            self.client._release(self)
        else:
            self.close()
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

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client._forget(self)
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (an attempt given up mid-answer)."""
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.close()
        if self.transport is not None:
            self.transport.abort()


def _parse_error(exc: Exception) -> str:
    if isinstance(exc, httptools.HttpParserUpgrade):
        return "a protocol upgrade"
    return str(exc) or type(exc).__name__


class Client:
    """Requests over keep-alive connections pooled per origin. Made and used
    in one event loop; ``close`` ends every connection."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._loop = asyncio.get_running_loop()
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
        conn = await self._connect(to, deadline)
        try:
            return await self._exchange(conn, data, deadline)
        except _Stale:
            raise ClientError("connection closed before the answer") from None

    async def _exchange(self, conn: _Connection, data: bytes, deadline: float) -> int:
        waiter = conn.send(data, deadline)
        try:
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
            if now - conn.idle_since > KEEPALIVE:  # the newest is too old: all are
                conn.close()
                for old in idle[:]:
                    old.close()
                return None
            return conn
        return None

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = self._loop.time()
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = []
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def _connect(self, to: Target, deadline: float) -> _Connection:
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
            why = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            raise ClientError(f"cannot connect to {where}: {why}") from None
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made at the first https request, then kept
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports close
