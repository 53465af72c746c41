"""The dispatcher's HTTP client (``router.outbound.client``) against raw local
servers: the request's shape, keep-alive reuse, idle connections closed
(their lifetime, a cap per origin), connections the server closes,
chunked, close-delimited and 1xx answers, ``Connection: close``, timeouts
(connecting and answering), refused connections, large bodies and a
receiver that does not read, TLS verification, redirects not followed,
answers too long to read, answers nobody asked for; and the
``last_error`` texts through the app."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bench.faults import free_port
from router.outbound.client import Client, ClientError, head, target
from tests.support.api import routed
from tests.support.apps import app_on, eventually
from tests.support.raw_http import (
    Conn,
    RawServer,
    answer,
    keep_answering,
    raw_server,
    self_signed,
    unaccepting_port,
)
from tests.support.receivers import destination, receiver

JSON = {"content-type": "application/json", "webhook-id": "msg_1"}


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    yield c
    await c.close()


async def test_a_request_is_sent_as_built_and_one_connection_carries_many(
    client: Client,
) -> None:
    async with raw_server() as server:
        for i in range(5):
            status = await client.request(
                "POST", f"{server.origin}/hooks/a b?x=1&y=é", b'{"n": %d}' % i, JSON, 5.0
            )
            assert status == 204
    assert server.connections == 1 and client.connections == 1
    first = server.requests[0]
    assert first.line == "POST /hooks/a%20b?x=1&y=%C3%A9 HTTP/1.1"
    assert [k for k, _ in first.headers] == [
        "host",
        "user-agent",
        "content-length",
        "content-type",
        "webhook-id",
    ]
    assert first.header("host") == f"127.0.0.1:{server.port}"
    assert first.header("user-agent") == "omniroute"
    assert first.header("content-length") == "8" and first.body == b'{"n": 0}'
    assert first.header("webhook-id") == "msg_1"
    assert [r.body for r in server.requests] == [b'{"n": %d}' % i for i in range(5)]


async def test_credentials_in_the_url_are_sent_as_basic_authorization(client: Client) -> None:
    async with raw_server() as server:
        url = f"http://user:p%40ss@127.0.0.1:{server.port}/x"
        assert await client.request("PUT", url, b"", {}, 5.0) == 204
        assert await client.request("PUT", url, b"", {"Authorization": "Bearer t"}, 5.0) == 204
    assert server.requests[0].header("authorization") == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert server.requests[0].header("host") == f"127.0.0.1:{server.port}"
    assert server.requests[1].header("authorization") == "Bearer t"


def test_a_url_gives_its_origin_target_and_host_once() -> None:
    to = target("https://Bücher.example:8443/a/ä?q=ü#frag")
    assert to.origin == ("https", "xn--bcher-kva.example", 8443) and to.tls
    assert to.tail == (
        " /a/%C3%A4?q=%C3%BC HTTP/1.1\r\nHost: xn--bcher-kva.example:8443\r\n"
        "User-Agent: omniroute\r\n"
    )
    assert target("http://[::1]/").tail.startswith(" / HTTP/1.1\r\nHost: [::1]\r\n")
    assert target("https://example.com:443").origin == ("https", "example.com", 443)
    assert "Host: example.com\r\n" in target("https://example.com:443").tail
    with pytest.raises(ValueError, match="no host"):
        target("http:///path")
    # the texts (an event's last_error, shown by the API) name the part,
    # never the URL: it may carry credentials or a token
    with pytest.raises(ValueError, match="the URL's host") as refused:
        target("https://user:s3cret@exa mple.com/x?token=t0k")
    assert "s3cret" not in str(refused.value) and "t0k" not in str(refused.value)
    # nor does a port or host that cannot be read (urllib's texts quote them)
    for url in ("https://t0k3n:s3cret/x", "https://[s3cret]/x", "https://h:99999/x"):
        with pytest.raises(ValueError, match="^the URL's host or port cannot be read$"):
            target(url)


async def test_a_header_with_a_line_break_is_refused_before_sending(client: Client) -> None:
    async with raw_server() as server:
        with pytest.raises(ValueError, match="line break in the header 'x'") as refused:
            await client.request("POST", server.origin, b"", {"x": "a\r\nInjected: 1"}, 5.0)
        assert "Injected" not in str(refused.value)
        with pytest.raises(ValueError, match="scheme is 'ftp', not http or https"):
            await client.request("POST", "ftp://user:pw@example.com/", b"", {}, 5.0)
    assert server.connections == 0


def test_a_head_holds_the_headers_as_given_and_refuses_any_line_break() -> None:
    to = target("http://user:pw@127.0.0.1:8080/hook?x=1")
    headers = {"content-type": "application/json", "webhook-id": "msg_1"}
    assert head("POST", to, headers, 12) == (
        b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: omniroute\r\n"
        b"Content-Length: 12\r\ncontent-type: application/json\r\nwebhook-id: msg_1\r\n"
        b"Authorization: Basic dXNlcjpwdw==\r\n\r\n"
    )
    assert head("PUT", to, {}, 0).endswith(
        b"Content-Length: 0\r\nAuthorization: Basic dXNlcjpwdw==\r\n\r\n"
    )
    for bad in ("\r", "\n", "\r\n", "\n\r"):
        for name, value in (("x", f"a{bad}b"), (f"x{bad}", "a"), ("x", bad)):
            with pytest.raises(ValueError, match="line break in the header"):
                head("POST", to, {"ok": "1", name: value}, 0)


async def test_a_connection_the_server_closed_while_idle_is_no_failure(client: Client) -> None:
    async def one_answer_then_close(conn: Conn, server: RawServer) -> None:
        assert await server.take(conn) is not None
        await conn.send(answer(200, body=b"ok"))  # keep-alive as far as the answer says

    async with raw_server(one_answer_then_close) as server:
        for _ in range(3):
            assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 200
            await asyncio.sleep(0.05)  # the close reaches the client
    assert len(server.requests) == 3 and server.connections == 3


async def test_a_connection_the_server_closed_while_idle_leaves_no_trace(client: Client) -> None:
    async def one_answer_then_close(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await conn.send(answer(204))  # keep-alive, then closed at once

    async with raw_server(one_answer_then_close) as server:
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 204
        # the client closes its end as the server's close arrives (no socket
        # left in CLOSE_WAIT until the next request), and forgets the origin
        await eventually(lambda: asyncio.sleep(0, client._open), lambda o: o == set())
        assert client._idle == {}


async def test_an_idle_connection_is_closed_after_the_keepalive(client: Client) -> None:
    ends: dict[int, float] = {}

    async def answering_until_closed(conn: Conn, server: RawServer) -> None:
        await keep_answering(conn, server)
        ends[server.port] = time.monotonic()  # the client closed it: EOF

    lively = Client(keepalive=0.4)
    try:
        async with (
            raw_server(answering_until_closed) as used,
            raw_server(answering_until_closed) as unused,
        ):
            assert await lively.request("POST", unused.origin, b"{}", JSON, 5.0) == 204
            last = time.monotonic()
            for _ in range(8):  # one origin used every 0.1 s, the other no more
                assert await lively.request("POST", used.origin, b"{}", JSON, 5.0) == 204
                await asyncio.sleep(0.1)
            await eventually(lambda: asyncio.sleep(0, ends), lambda e: unused.port in e)
            assert 0.35 < ends[unused.port] - last < 1.2  # the keepalive (and an eighth)
            assert list(lively._idle) == [("http", "127.0.0.1", used.port)]  # its origin gone
            assert used.port not in ends and used.connections == 1  # the used one kept
            await eventually(lambda: asyncio.sleep(0, ends), lambda e: used.port in e)
            assert lively._idle == {} and lively._open == set() and lively._sweep is None
    finally:
        await lively.close()


async def test_idle_connections_per_origin_are_capped() -> None:
    closed: list[int] = []

    async def slow(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await asyncio.sleep(0.1)  # the four requests in flight together
            await conn.send(answer(204))
        closed.append(conn.number)

    capped = Client(max_idle=2)
    try:
        async with raw_server(slow) as server:
            sent = [capped.request("POST", server.origin, b"{}", JSON, 5.0) for _ in range(4)]
            assert await asyncio.gather(*sent) == [204] * 4
            assert server.connections == 4
            assert len(capped._idle[("http", "127.0.0.1", server.port)]) == 2
            await eventually(lambda: asyncio.sleep(0, closed), lambda c: len(c) == 2)
            assert len(capped._open) == 2
    finally:
        await capped.close()


async def test_a_pooled_connection_closed_as_the_request_goes_is_tried_again_once(
    client: Client,
) -> None:
    async def close_the_second_request_unanswered(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            if conn.number == 1 and len(server.requests) == 2:
                return  # closed with no byte of an answer: the race with an idle timeout
            await conn.send(answer(204))

    async with raw_server(close_the_second_request_unanswered) as server:
        assert await client.request("POST", server.origin, b"1", JSON, 5.0) == 204
        assert await client.request("POST", server.origin, b"2", JSON, 5.0) == 204
    assert [r.body for r in server.requests] == [b"1", b"2", b"2"]  # the same request again
    assert server.connections == 2


async def test_a_new_connection_closed_without_an_answer_is_a_failure(client: Client) -> None:
    async def close_unanswered(conn: Conn, server: RawServer) -> None:
        assert await server.take(conn) is not None

    async with raw_server(close_unanswered) as server:
        with pytest.raises(ClientError, match="^connection closed before the answer$"):
            await client.request("POST", server.origin, b"1", JSON, 5.0)
        assert server.connections == 1  # not tried again: nothing suggests a stale one


async def test_a_connection_closed_mid_head_is_a_failure(client: Client) -> None:
    async def half_a_head(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-")

    async with raw_server(half_a_head) as server:
        with pytest.raises(ClientError, match="^connection closed mid-answer$"):
            await client.request("POST", server.origin, b"1", JSON, 5.0)


async def test_an_answer_nobody_asked_for_ends_the_connection(client: Client) -> None:
    async def answering_twice_at_first(conn: Conn, server: RawServer) -> None:
        assert await server.take(conn) is not None
        await conn.send(answer(204) + answer(204))  # in one write: one read of the client
        await keep_answering(conn, server)

    async with raw_server(answering_twice_at_first) as server:
        assert await client.request("POST", server.origin, b"0", JSON, 5.0) == 204
        # the second answer is not left for the next request, and the
        # connection is not pooled twice (two requests on it at once)
        sent = [client.request("POST", server.origin, b"%d" % i, JSON, 5.0) for i in (1, 2)]
        assert await asyncio.wait_for(asyncio.gather(*sent), 3) == [204, 204]
    assert server.connections == 3


async def test_a_chunked_answer_is_read_and_the_connection_kept(client: Client) -> None:
    async def chunked(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await conn.send(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n")
            await conn.send(b"5\r\nhello\r\n")
            await asyncio.sleep(0.01)
            await conn.send(b"6\r\n world\r\n0\r\n\r\n")

    async with raw_server(chunked) as server:
        for _ in range(3):
            assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 202
    assert server.connections == 1 and len(server.requests) == 3


async def test_connection_close_and_close_delimited_answers(client: Client) -> None:
    async def closing(conn: Conn, server: RawServer) -> None:
        assert await server.take(conn) is not None
        if conn.number == 1:  # Connection: close, with a length
            await conn.send(answer(201, "Connection: close", body=b"created"))
            await asyncio.sleep(3)  # the client must not wait for the close
        else:  # no length: the body ends with the connection
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
            await asyncio.sleep(0.02)
            await conn.send(b"part two")

    async with raw_server(closing) as server:
        started = time.monotonic()
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 201
        assert time.monotonic() - started < 2
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 200
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 200
    assert server.connections == 3  # none of them reused


async def test_informational_answers_are_skipped(client: Client) -> None:
    async def with_1xx(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
            await conn.send(answer(503, body=b"busy"))

    async with raw_server(with_1xx) as server:
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 503
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 503
    assert server.connections == 1


async def test_a_redirect_is_an_answer_not_followed(client: Client) -> None:
    async def redirecting(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await conn.send(answer(307, f"Location: {server.origin}/elsewhere"))

    async with raw_server(redirecting) as server:
        assert await client.request("POST", f"{server.origin}/hooks", b"{}", JSON, 5.0) == 307
    assert [r.line for r in server.requests] == ["POST /hooks HTTP/1.1"]


async def test_cookies_set_by_a_receiver_are_not_sent_back(client: Client) -> None:
    async def setting_cookies(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await conn.send(answer(200, "Set-Cookie: session=abc; Path=/"))

    async with raw_server(setting_cookies) as server:
        for _ in range(2):
            assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 200
    assert [r.header("cookie") for r in server.requests] == [None, None]


async def test_no_answer_within_the_timeout(client: Client) -> None:
    async def silent(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await asyncio.sleep(5)

    async with raw_server(silent) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("POST", server.origin, b"{}", JSON, 0.3)
        assert 0.25 < time.monotonic() - started < 2
        assert client._open == set()  # the connection is dropped, not pooled


async def test_a_refused_connection(client: Client) -> None:
    port = free_port()
    with pytest.raises(ClientError) as refused:
        await client.request("POST", f"http://127.0.0.1:{port}/x", b"{}", JSON, 5.0)
    assert str(refused.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_a_connection_never_made_fails_within_the_deadline(client: Client) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with unaccepting_port() as port:
        started = time.monotonic()
        with pytest.raises(ClientError) as failed:
            await client.request("POST", f"http://127.0.0.1:{port}/x", b"{}", JSON, 0.3)
        assert 0.25 < time.monotonic() - started < 2
        assert str(failed.value) == f"cannot connect to 127.0.0.1:{port} within 0.3 s"
        assert client._open == set() and client._idle == {}
    assert len(os.listdir("/proc/self/fd")) == before  # its socket closed


async def test_a_large_body_to_a_slow_reader_arrives_whole(client: Client) -> None:
    body = os.urandom(8 << 20)
    got: list[bytes] = []

    async def slow_reader(conn: Conn, server: RawServer) -> None:
        while True:  # until the client closes (IncompleteReadError)
            request = await conn.reader.readuntil(b"\r\n\r\n")
            length = int(request.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            parts = []
            while length:
                part = await conn.reader.read(min(length, 256 << 10))
                parts.append(part)
                length -= len(part)
                await asyncio.sleep(0.005)  # slower than the client writes
            got.append(b"".join(parts))
            await conn.send(answer(204))

    async with raw_server(slow_reader) as server:
        for _ in range(2):
            assert await client.request("POST", server.origin, body, JSON, 10.0) == 204
    assert [hashlib.sha256(b).digest() for b in got] == [hashlib.sha256(body).digest()] * 2
    assert server.connections == 1  # kept once written and answered


async def test_an_answer_before_the_body_is_read_ends_the_connection(client: Client) -> None:
    body = b"x" * (16 << 20)  # more than the kernel's buffers of both ends
    received: list[int] = []

    async def refusing_early(conn: Conn, server: RawServer) -> None:
        if conn.number > 1:
            return await keep_answering(conn, server)
        await conn.reader.readuntil(b"\r\n\r\n")
        await conn.send(answer(413))  # at once (the body refused), the connection kept
        await asyncio.sleep(0.5)
        received.append(await read_to_the_end(conn))

    async with raw_server(refusing_early) as server:
        assert await client.request("POST", server.origin, body, JSON, 5.0) == 413
        # not pooled with the body's rest still to write, and that rest
        # dropped, not left in a socket kept open until it is read
        assert client._idle == {} and client._open == set()
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 204
        await eventually(lambda: asyncio.sleep(0, received), bool)
    assert server.connections == 2 and received[0] < len(body)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_a_receiver_that_never_reads_the_body(tls: bool, tmp_path: Path) -> None:
    body = b"x" * (16 << 20)
    received: list[int] = []

    async def not_reading(conn: Conn, server: RawServer) -> None:
        await conn.reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.5)  # past the attempt's deadline
        received.append(await read_to_the_end(conn))

    certificate = self_signed(tmp_path) if tls else None
    context = ssl.create_default_context(cafile=certificate[0]) if certificate else None
    client = Client(ssl_context=context)
    try:
        async with raw_server(not_reading, certificate=certificate) as server:
            started = time.monotonic()
            with pytest.raises(TimeoutError):  # never read, never answered: the deadline holds
                await client.request("POST", server.origin, body, JSON, 0.3)
            assert 0.25 < time.monotonic() - started < 2
            assert client._open == set()
            await eventually(lambda: asyncio.sleep(0, received), bool)
    finally:
        await client.close()
    # the unwritten rest was dropped with the connection (also below TLS),
    # not kept in a socket left open until the receiver reads it
    assert received[0] < len(body)


async def read_to_the_end(conn: Conn) -> int:
    """The bytes a connection still brings, up to its end (or reset)."""
    count = 0
    try:
        while data := await conn.reader.read(1 << 20):
            count += len(data)
    except (ConnectionError, ssl.SSLError):
        pass
    return count


async def test_an_answer_too_long_is_not_read_to_its_end(client: Client) -> None:
    ended: list[BaseException] = []

    async def endless(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:  # a body without end
                await conn.send(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
        except ConnectionError as exc:
            ended.append(exc)

    async with raw_server(endless) as server:
        started = time.monotonic()
        assert await client.request("POST", server.origin, b"{}", JSON, 5.0) == 200
        assert time.monotonic() - started < 2
        assert client._open == set()  # closed, not read to the end
        await eventually(lambda: asyncio.sleep(0, ended), bool)  # the server's writes fail

    async def endless_head(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\n")
        while True:
            await conn.send(b"X-Filler: " + b"y" * 1000 + b"\r\n")

    async with raw_server(endless_head) as server:
        with pytest.raises(ClientError, match="invalid answer: a head longer than"):
            await client.request("POST", server.origin, b"{}", JSON, 5.0)


async def test_garbage_is_an_invalid_answer(client: Client) -> None:
    async def garbage(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await conn.send(b"SMTP ready\r\n\r\n")

    async with raw_server(garbage) as server:
        with pytest.raises(ClientError, match="^invalid answer: "):
            await client.request("POST", server.origin, b"{}", JSON, 5.0)


async def test_tls_verifies_the_certificate_against_the_system_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed(tmp_path)
    async with raw_server(keep_answering, certificate=certificate) as server:
        untrusting = Client()
        try:
            with pytest.raises(ClientError) as failed:
                await untrusting.request("POST", f"{server.origin}/x", b"{}", JSON, 5.0)
        finally:
            await untrusting.close()
        assert re.fullmatch(  # OpenSSL's words: "self-signed" since 3.0, "self signed" before
            f"TLS with localhost:{server.port}: certificate verify failed: self.signed certificate",
            str(failed.value),
        )
        assert server.requests == []
        # the store the default context reads: SSL_CERT_FILE, as OpenSSL does
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        trusting = Client()
        try:
            for _ in range(3):
                assert await trusting.request("POST", f"{server.origin}/x", b"{}", JSON, 5.0) == 204
        finally:
            await trusting.close()
    assert len(server.requests) == 3 and trusting.connections == 1
    assert server.server_names[-1] == "localhost"  # SNI
    assert server.requests[0].header("host") == f"localhost:{server.port}"


async def test_a_cancelled_attempt_leaves_no_connection_for_the_next(client: Client) -> None:
    async def slow(conn: Conn, server: RawServer) -> None:
        while await server.take(conn) is not None:
            await asyncio.sleep(0.3)
            await conn.send(answer(204))

    async with raw_server(slow) as server:
        attempt = asyncio.create_task(client.request("POST", server.origin, b"1", JSON, 5.0))
        await asyncio.sleep(0.1)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        assert await client.request("POST", server.origin, b"2", JSON, 5.0) == 204
    assert server.connections == 2


async def test_last_errors_of_refused_silent_and_unreachable_destinations(
    database_url: str,
) -> None:
    async def silent(conn: Conn, server: RawServer) -> None:
        await conn.request()
        await asyncio.sleep(5)

    fast = {"retry_base": 5, "poll_interval": 0.2}
    async with raw_server(silent) as server, receiver(started=False) as refusing:
        slow = {"name": "silent", "kind": "webhook", "url": server.origin, "timeout": 0.3}
        slow["secrets"] = destination(refusing)["secrets"]
        with unaccepting_port() as port:
            unreachable = {**slow, "name": "unreachable", "url": f"http://127.0.0.1:{port}/"}
            dests = [destination(refusing), slow, unreachable]
            async with app_on(database_url, destinations=dests, delivery=fast) as api:
                contact = await routed(api, "chat")
                con = await asyncpg.connect(
                    database_url, server_settings={"search_path": "omniroute"}
                )
                try:
                    rows = await eventually(
                        lambda: con.fetch(
                            "SELECT destination, last_error FROM deliveries WHERE contact_id = $1",
                            contact["contact_id"],
                        ),
                        lambda rows: len(rows) == 3 and all(r["last_error"] for r in rows),
                    )
                finally:
                    await con.close()
    errors = {r["destination"]: r["last_error"] for r in rows}
    assert errors == {
        dests[0]["name"]: f"cannot connect to 127.0.0.1:{refusing.port}: Connection refused",
        "silent": "no answer within 0.3 s",
        "unreachable": f"cannot connect to 127.0.0.1:{port} within 0.3 s",
    }
