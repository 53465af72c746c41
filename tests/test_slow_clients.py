"""Slow and vanishing clients, against a real ``omniroute serve`` process with
short timeouts: a header block or a body that does not arrive in time is cut
off (408, connection closed); a client that leaves mid-body is a logged
client disconnect, not an internal error.

On a loaded machine a cut may come seconds after its timeout, so the tests do
not time it closely; each tells the timer it checks from what would happen
without it, which is far off: a trickle is cut while it is still trickling
(it lasts 40 s and more: a timer that each line or chunk restarted would let
it run to its end), a silent connection is closed long before the keep-alive
timeout would close it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import orjson
import pytest

from bench.faults import Omniroute, free_port, write_config
from router.settings import SCOPES
from tests.support.apps import eventually
from tests.support.settings import ROOT, SECRETS, TOKEN

HEADER_TIMEOUT = 0.6
BODY_TIMEOUT = 0.6
#: what closes an idle kept-alive connection (and, without the header timer,
#: a silent one)
KEEPALIVE_TIMEOUT = 30.0
#: how much later than its timeout a cut may come (a loaded test machine);
#: well below the keep-alive timeout and the trickles' length
SLACK = 10.0
#: a trickle's step: a header line or two bytes of body every 0.1 s, 400 of
#: them (40 s at least)
STEP, STEPS = 0.1, 400


@pytest.fixture(scope="module")
async def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Omniroute]:
    port = free_port()
    directory = tmp_path_factory.mktemp("slow")
    config = write_config(
        directory,
        port=port,
        database_url=database_url,
        secrets=SECRETS,
        rules=[ROOT / "rules"],
        extra={
            "http": {
                "host": "127.0.0.1",
                "port": port,
                "shutdown_timeout": 2,
                "header_timeout": HEADER_TIMEOUT,
                "body_timeout": BODY_TIMEOUT,
                "keepalive_timeout": KEEPALIVE_TIMEOUT,
            },
            "api": {"tokens": [{"name": "all", "token": TOKEN, "scopes": list(SCOPES)}]},
            "log": {"level": "info", "format": "json"},
        },
    )
    process = Omniroute(config, port, directory / "omniroute.log")
    process.start()
    try:
        await process.ready()
        yield process
    finally:
        process.stop()


async def exchange(
    port: int, parts: Sequence[tuple[float, bytes]], *, wait: float = 2 * SLACK
) -> tuple[bytes, float, int]:
    """Send ``parts`` (each after its delay) on a fresh connection; what the
    server answered before it closed the connection, after how long, and how
    many of the parts had been sent by then."""
    # the clock starts before the connection is made: the server's timer
    # starts when it accepts it, which a loaded client may learn late
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0

    async def send() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            for delay, chunk in parts:
                await asyncio.sleep(delay)
                writer.write(chunk)
                await writer.drain()
                sent += 1

    sending = asyncio.create_task(send())
    answer = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                answer += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"connection still open after {wait} s; got {answer!r}") from None
    finally:
        sending.cancel()
        writer.close()
    return answer, time.monotonic() - started, sent


HEAD = b"POST /v1/webhooks/chat HTTP/1.1\r\nHost: omniroute\r\nContent-Type: application/json\r\n"


async def test_trickled_headers_are_cut_off(server: Omniroute) -> None:
    # 50 connections, each sending a header line every 0.1 s, never finishing
    trickle = [(0.0, HEAD)] + [(STEP, f"X-Slow-{n}: 1\r\n".encode()) for n in range(STEPS)]
    results = await asyncio.gather(*(exchange(server.port, trickle) for _ in range(50)))
    for answer, seconds, sent in results:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer
        # not before its time, and while the lines still came
        assert HEADER_TIMEOUT <= seconds + 0.05 < HEADER_TIMEOUT + SLACK
        assert sent < len(trickle)


async def test_a_silent_connection_is_closed(server: Omniroute) -> None:
    answer, seconds, _ = await exchange(server.port, [])
    assert answer == b""
    assert seconds < HEADER_TIMEOUT + SLACK < KEEPALIVE_TIMEOUT


async def test_the_header_timer_is_not_an_idle_timer(server: Omniroute) -> None:
    """A kept-alive connection may stay idle longer than the header timeout;
    its next request is served on the same connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: omniroute\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(SLACK):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 "), head
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
            await asyncio.sleep(HEADER_TIMEOUT * 2)
    finally:
        writer.close()


async def test_a_busy_connection_still_has_its_header_timer(server: Omniroute) -> None:
    """Requests one after the other on a kept-alive connection for longer than
    the header timeout, then part of a header block: cut off a header timeout
    after that block began, not earlier (the timer of the first request is
    long gone) and not never."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        busy_until = time.monotonic() + HEADER_TIMEOUT * 2.5
        while time.monotonic() < busy_until:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: omniroute\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 "), head
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
            await asyncio.sleep(HEADER_TIMEOUT / 4)
        started = time.monotonic()
        writer.write(HEAD)
        await writer.drain()
        async with asyncio.timeout(HEADER_TIMEOUT + SLACK):
            rest = await reader.read()  # after a served request: closed, no 408
        assert rest == b""
        assert time.monotonic() - started + 0.05 >= HEADER_TIMEOUT
    finally:
        writer.close()


@pytest.mark.parametrize(
    "body",
    [
        [(0.0, b"x" * 106)],  # 94 bytes short, then nothing
        [(STEP, b"x" * 2) for _ in range(STEPS)],  # trickled
    ],
    ids=["short", "trickled"],
)
async def test_a_slow_body_is_answered_408(
    server: Omniroute, body: list[tuple[float, bytes]]
) -> None:
    length = sum(len(chunk) for _, chunk in body) if len(body) > 1 else 200
    head = HEAD + f"Content-Length: {length}\r\n\r\n".encode()
    answer, seconds, sent = await exchange(server.port, [(0.0, head), *body])
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
    assert BODY_TIMEOUT <= seconds + 0.05 < BODY_TIMEOUT + SLACK
    if len(body) > 1:
        assert sent < 1 + len(body)  # cut while the body still came


async def metric(server: Omniroute, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def log_events(log: Path) -> list[dict[str, object]]:
    lines = log.read_text(errors="replace").splitlines()
    return [orjson.loads(line) for line in lines if line.startswith("{")]


async def test_a_client_leaving_mid_body_is_not_an_internal_error(server: Omniroute) -> None:
    before = await metric(server, "omniroute_client_disconnects_total")
    head = HEAD + b"Content-Length: 200\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head + b"x" * 106)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()  # gone, 94 bytes short
    await writer.wait_closed()
    # the server notices when it next reads (later on a loaded machine); it
    # counts, then logs
    events = await eventually(
        lambda: asyncio.to_thread(log_events, server.log),
        lambda found: any(e["event"] == "client_disconnected" for e in found),
    )
    assert await metric(server, "omniroute_client_disconnects_total") == before + 1
    assert await metric(server, 'omniroute_errors_total{code="internal_error"') == 0
    gone = [e for e in events if e["event"] == "client_disconnected"]
    assert gone[-1]["level"] == "info" and "exception" not in gone[-1]
    assert not [e for e in events if e["event"] == "unhandled_error"]
    assert "Traceback" not in server.log.read_text()
