"""A client of the live stream (``GET /v1/live/stream``): its events, parsed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import ClientResponse

from tests.support.api import Api
from tests.support.settings import TOKEN


class Stream:
    """A client of ``/v1/live/stream``: its events, parsed, and its comments."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next event (``None``: the stream ended)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in fields:
                        data: dict[str, Any] = orjson.loads(fields["data"])
                        assert fields["id"] == str(data["id"])
                        assert fields["event"] == data["kind"]
                        return data
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value

    async def until(self, accept: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Events up to the first ``accept`` holds for, that one included."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            got = await self.next(max(0.1, deadline - time.monotonic()))
            assert got is not None, "the stream ended"
            out.append(got)
            if accept(got):
                return out


async def open_stream(api: Api, last: int | None = None) -> Stream:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    response = await api.client.get("/v1/live/stream", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return Stream(response)
