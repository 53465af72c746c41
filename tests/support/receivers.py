"""Receivers of outbound events for the delivery tests: a local HTTP server
that records every request and answers with the status it is told, on a port
that can be closed (connections refused) and opened again."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bench.faults import free_port
from tests.support.examples import unique


def whsec() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; answers ``status`` (200 unless set otherwise)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    #: while set, requests are taken and not answered (their ``webhook-id`` noted
    #: in ``held``, not in ``received``): attempts in flight for as long as wanted
    hold: bool = False
    held: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.received]

    async def _handle(self, request: web.Request) -> web.Response:
        if self.hold:
            self.held.append(request.headers.get("webhook-id", ""))
            while self.hold:
                await asyncio.sleep(0.05)
            return web.Response(status=503)  # long after the attempt gave up
        self.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def receiver(*, status: int = 200, started: bool = True) -> AsyncIterator[Receiver]:
    r = Receiver(status=status)
    if started:
        await r.start()
    try:
        yield r
    finally:
        await r.stop()


def destination(r: Receiver, *secrets_: str, **options: Any) -> dict[str, Any]:
    """A webhook destination (a fresh name) sending to ``r``."""
    return {
        "name": unique("dest").lower().replace("_", "-")[:60],
        "kind": "webhook",
        "url": r.url,
        "secrets": list(secrets_) or [whsec()],
        **options,
    }
