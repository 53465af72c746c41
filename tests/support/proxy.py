"""A TCP proxy in front of PostgreSQL that a test can cut and restore: a real
network failure between the service and its database."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class CuttableProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        query = parse_qs(parts.query)
        self._unix = query.get("host", [None])[0] if not parts.hostname else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5432
        self._upstream = parts
        self.up = True
        #: forward nothing while cleared (``stall``): a network that drops
        #: packets without refusing anything
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        p = self._upstream
        user = p.username or "postgres"
        netloc = f"{user}@127.0.0.1:{self.port}"
        return urlunsplit((p.scheme, netloc, p.path, "", ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix:
            return await asyncio.open_unix_connection(f"{self._unix}/.s.PGSQL.{self._port}")
        return await asyncio.open_connection(self._host, self._port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        await self._flowing.wait()
        up_reader, up_writer = await self._open()
        self._pipes.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.up = False
        for w in list(self._pipes):
            w.close()
        self._pipes.clear()

    def restore(self) -> None:
        self.up = True

    def stall(self) -> None:
        """Forward nothing more, on open connections or new ones, and refuse
        nothing: what a dropped network looks like (until ``flow``)."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.flow()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
