"""A stand-in for a provider's API in the delivery tests (TaskRouter,
Zendesk): a local HTTP server that records every request (method, path,
headers, body) and answers with the statuses it is given, in turn."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from bench.faults import free_port


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def basic(self) -> tuple[str, str]:
        """The Basic credentials (user, password) of the request."""
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        assert scheme == "Basic", self.headers
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password

    def form(self) -> dict[str, str]:
        assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
        pairs = parse_qsl(self.body.decode(), keep_blank_values=True, strict_parsing=True)
        assert len(pairs) == len(dict(pairs)), pairs  # no field twice
        return dict(pairs)

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json"
        return orjson.loads(self.body)


@dataclass
class ProviderApi:
    """Records every request; answers ``statuses`` in turn, then ``status``."""

    status: int = 200
    statuses: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append(Call(request.method, request.path, dict(request.headers), body))
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.json_response({"ok": status < 300}, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()


@asynccontextmanager
async def provider_api(status: int = 200, *statuses: int) -> AsyncIterator[ProviderApi]:
    api = ProviderApi(status=status, statuses=list(statuses))
    await api.start()
    try:
        yield api
    finally:
        assert api._runner is not None
        await api._runner.cleanup()
