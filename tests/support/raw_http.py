"""A raw HTTP/1.1 server for the outbound client's tests: each test writes its
answers byte by byte (a chunked body, a close mid-answer, a never-ending
body, no answer at all) and sees the requests exactly as they came."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Request:
    line: str
    #: names lower-cased, in the order sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name.lower()]
        assert len(found) <= 1, f"{name} sent {len(found)} times"
        return found[0] if found else None


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection; ``None`` when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *rest = head[:-4].decode("latin-1").split("\r\n")
    headers = [(k.strip().lower(), v.strip()) for k, v in (h.split(":", 1) for h in rest)]
    length = int(dict(headers).get("content-length", "0"))
    body = await reader.readexactly(length)
    return Request(line, headers, body)


@dataclass
class Conn:
    """One accepted connection, handed to the test's handler."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: this connection's number on the server, from 1
    number: int

    async def request(self) -> Request | None:
        return await read_request(self.reader)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


Handler = Callable[[Conn, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    handler: Handler
    port: int = 0
    tls: bool = False
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    #: the names the clients asked for in their TLS hello (SNI)
    server_names: list[str | None] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def origin(self) -> str:
        if self.tls:  # the name its certificate has
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    async def take(self, conn: Conn) -> Request | None:
        """The connection's next request, kept in ``requests``; ``None`` once
        the client has closed the connection."""
        request = await conn.request()
        if request is not None:
            self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(Conn(reader, writer, self.connections), self)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass


def answer(status: int = 204, *headers: str, body: bytes = b"", reason: str = "X") -> bytes:
    """An answer's bytes with a Content-Length (unless a header says otherwise)."""
    lines = [f"HTTP/1.1 {status} {reason}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def keep_answering(conn: Conn, server: RawServer) -> None:
    """Answer 204 to every request on the connection (keep-alive)."""
    while await server.take(conn) is not None:
        await conn.send(answer(204))


def self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and 127.0.0.1, signed by itself, and its key."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@asynccontextmanager
async def raw_server(
    handler: Handler = keep_answering, *, certificate: tuple[Path, Path] | None = None
) -> AsyncIterator[RawServer]:
    """A server on a free local port for the block (TLS with ``certificate``)."""
    server = RawServer(handler, tls=certificate is not None)
    context = None
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        context.sni_callback = lambda _sock, name, _ctx: server.server_names.append(name)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=context)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        for task in server._tasks:  # handlers still waiting (a silent server)
            task.cancel()
        await asyncio.gather(*server._tasks, return_exceptions=True)
        await listening.wait_closed()


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A local port where a TCP connect never completes, for the block: a
    listening socket with a backlog of 0 that never accepts, its queue
    filled by connects of its own, so that the kernel (Linux) drops further
    SYNs and a connect waits (no root, no change to the network)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        while True:  # connect until one is left waiting: the queue is full
            assert len(fillers) < 16, "the accept queue does not fill"
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            if not select.select([], [filler], [], 0.2)[1]:
                break
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
