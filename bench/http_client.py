"""The CPU of one delivery attempt's HTTP request, per client, in-process
(docs/deliveries.md, "Why not aiohttp's client here").

    python bench/http_client.py                       # aiohttp, its knobs, lean: 5 rounds
    python bench/http_client.py --clients aiohttp,lean --requests 20000
    python bench/http_client.py --clients lean --rounds 1 --requests 2000   # under callgrind

A local receiver (``bench/delivery.py --receiver``, aiohttp's server, 204 to
everything) runs in a process of its own; this process sends it signed
``contact.routed`` events as the dispatcher does (``outgoing.build`` for a
``webhook`` destination: 64 of them, made before the clock starts and sent
in turn), ``--concurrency`` at a time (a lane's slots), and counts its own
CPU (user + system, ``os.times``) per request. The clients take turns within each round
(the order rotates); the medians over the rounds are printed. Clients:

- ``aiohttp``: ``ClientSession.request`` as the dispatcher called it before
  (``TCPConnector(limit=0)``, no cookie jar, a ``ClientTimeout`` made once,
  ``allow_redirects=False``, the body read);
- ``aiohttp-knobs``: the same with every knob that saves work: the URL parsed
  once (``yarl.URL(encoded=True)``), no automatic ``Accept``/``Accept-Encoding``,
  no decompression, the answer released instead of read, no context manager;
- ``httpx``: ``httpx.AsyncClient`` (h11's parser, in Python), when installed
  (it is not a dependency); no limit on connections, as the others;
- ``lean``: ``router.outbound.client.Client``, the dispatcher's client.

For instruction counts run one client under callgrind twice, with
``--requests 1000`` and ``--requests 3000``, and divide the difference by 2000
(the start, imports and warm-up cancel out)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/http_client.py \\
        --clients lean --rounds 1 --warmup 200 --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import yarl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load import free_port, start, stop, wait_ready  # noqa: E402

from router.outbound.client import Client  # noqa: E402
from router.outbound.outgoing import Outbound, build  # noqa: E402
from router.settings import WebhookDestination  # noqa: E402

Send = Callable[[Outbound], Awaitable[int]]
Close = Callable[[], Awaitable[None]]

EVENT = orjson.dumps(
    {
        "type": "contact.routed",
        "timestamp": "2026-11-30T21:44:26.512Z",
        "data": {
            "contact_id": "01a22e6a-963d-7396-8d87-b7f7bc26b485",
            "customer_id": "01a22e6a-963d-7974-96c2-6e4fc7811ac4",
            "adapter": "chat",
            "channel": "chat",
            "external_id": "chat-e13ce6739cbd",
            "decision": {
                "queue": "orders",
                "priority": 55,
                "skills": [],
                "sla_seconds": 60,
                "tags": [],
                "preferred_agent": None,
                "overflow": [],
                "rule": "chat-order-page",
                "ruleset": "ddd573d89191",
            },
        },
    }
).decode()
TIMEOUT = 10.0
#: distinct requests made (signed) before the clock starts
DISTINCT = 64


async def aiohttp_as_before(url: str) -> tuple[Send, Close]:
    session = aiohttp.ClientSession(
        headers={"User-Agent": "omniroute"},
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)

    async def send(r: Outbound) -> int:
        async with session.request(
            r.method, r.url, data=r.body, headers=r.headers, timeout=timeout, allow_redirects=False
        ) as response:
            await response.read()
            return response.status

    return send, session.close


async def aiohttp_knobs(url: str) -> tuple[Send, Close]:
    session = aiohttp.ClientSession(
        headers={"User-Agent": "omniroute"},
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept", "Accept-Encoding"),
        auto_decompress=False,
    )
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    parsed = yarl.URL(url, encoded=True)

    async def send(r: Outbound) -> int:
        response = await session._request(
            r.method, parsed, data=r.body, headers=r.headers, timeout=timeout, allow_redirects=False
        )
        response.release()
        return response.status

    return send, session.close


async def lean(url: str) -> tuple[Send, Close]:
    client = Client()

    async def send(r: Outbound) -> int:
        return await client.request(r.method, r.url, r.body, r.headers, TIMEOUT)

    return send, client.close


async def httpx_client(url: str) -> tuple[Send, Close]:
    import httpx  # not a dependency: measured when installed

    client = httpx.AsyncClient(
        headers={"User-Agent": "omniroute"},
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
    )

    async def send(r: Outbound) -> int:
        response = await client.request(r.method, r.url, content=r.body, headers=r.headers)
        return response.status_code

    return send, client.aclose


CLIENTS: dict[str, Callable[[str], Awaitable[tuple[Send, Close]]]] = {
    "aiohttp": aiohttp_as_before,
    "aiohttp-knobs": aiohttp_knobs,
    "httpx": httpx_client,
    "lean": lean,
}


async def measure(name: str, url: str, requests: list[Outbound], args: argparse.Namespace) -> float:
    """CPU µs per request of ``name`` sending ``requests`` (after a warm-up)."""
    send, close = await CLIENTS[name](url)
    try:
        for r in requests[: args.warmup]:
            assert 200 <= await send(r) < 300
        todo = iter(requests[: args.requests])

        async def slot() -> None:
            for r in todo:
                status = await send(r)
                assert 200 <= status < 300, status

        t0 = os.times()
        await asyncio.gather(*(slot() for _ in range(args.concurrency)))
        t1 = os.times()
        user, system = t1.user - t0.user, t1.system - t0.system
        if args.split:
            print(
                f"  {name}: user {user * 1e6 / args.requests:.1f} µs, system "
                f"{system * 1e6 / args.requests:.1f} µs",
                flush=True,
            )
        return float((user + system) * 1e6 / args.requests)
    finally:
        await close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--clients", default="aiohttp,aiohttp-knobs,lean", help="which of " + ", ".join(CLIENTS)
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=10_000, help="per client and round")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (a lane's)")
    p.add_argument("--split", action="store_true", help="print user and system CPU apart")
    args = p.parse_args()
    names = args.clients.split(",")
    port = free_port()
    receiver = start([sys.executable, str(ROOT / "bench" / "delivery.py"), "--receiver", str(port)])
    try:
        await wait_ready(f"http://127.0.0.1:{port}", receiver)
        url = f"http://127.0.0.1:{port}/hook"
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        dest = WebhookDestination(name="bench", url=url, secrets=[secret])
        made = [r for _ in range(DISTINCT) if (r := build(dest, str(uuid.uuid4()), EVENT))]
        # a few distinct requests, sent in turn: building (signing) one is not
        # in the instructions per request either
        requests = list(itertools.islice(itertools.cycle(made), args.warmup + args.requests))
        spent: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                spent[name].append(await measure(name, url, requests, args))
            print(
                f"round {i + 1}: " + ", ".join(f"{n} {spent[n][-1]:.1f} µs" for n in names),
                flush=True,
            )
    finally:
        stop(receiver)
    base = statistics.median(spent[names[0]])
    print(
        f"CPU per request, median of {args.rounds} rounds of {args.requests} "
        f"({args.concurrency} in flight):"
    )
    for name in names:
        mid = statistics.median(spent[name])
        print(f"  {name:14} {mid:7.1f} µs  ({mid / base:.2f} of {names[0]})")


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())
