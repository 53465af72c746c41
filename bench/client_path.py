"""The instructions of the dispatcher's HTTP client's own steady-state path,
without the network's timing (docs/deliveries.md, "Attempts over HTTP").

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/client_path.py --requests 2000     # and 10000: the difference / 8000

``bench/http_client.py`` measures a whole attempt against a receiver in
another process; under callgrind its count per request moves by about
±1,000 from run to run (how many answers each turn of the loop finds ready
depends on the two processes' timing). This runs the client's part alone:
one pooled connection over a socket pair, each request sent through
``Client.request`` and its answer handed to the connection's protocol as
the transport would, so every run does the same work; repeated runs agree
to about ±200 instructions a request. Run it with ``PYTHONHASHSEED=0`` for
the steadiest figures. ``--root`` measures another checkout's client.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from functools import partial
from pathlib import Path

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_2mYq7eZzvWq6pD3kSo0v6w",
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}
BODY = b"x" * 600  # a contact.routed event's size


async def run(requests: int) -> None:
    from router.outbound.client import Client, _Connection

    loop = asyncio.get_running_loop()
    client = Client()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    origin = ("http", "127.0.0.1", 9)
    _, conn = await loop.create_connection(partial(_Connection, client, origin), sock=ours)
    client._release(conn)
    try:
        for i in range(requests):
            sent = asyncio.ensure_future(
                client.request("POST", "http://127.0.0.1:9/hook", BODY, HEADERS, 10.0)
            )
            await asyncio.sleep(0)  # written; waiting for its answer
            conn.data_received(ANSWER)
            assert await sent == 204
            if i % 32 == 0:  # the requests read off the other end
                try:
                    while theirs.recv(1 << 16):
                        pass
                except BlockingIOError:
                    pass
        assert client.connections == 0  # all on the one pooled connection
    finally:
        await client.close()
        theirs.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = p.parse_args()
    sys.path.insert(0, str(args.root))
    import uvloop

    uvloop.install()
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
