"""A brake on guessing API tokens: failed bearer-token attempts are counted
per client address, and an address with too many in a window gets 429 for
every token it presents until the window has passed.

The counts live in the process's memory: each instance (and each worker of
``serve --workers N``) brakes on its own, and a restart forgets. That is
enough for a brake; tokens are long random strings, not passwords.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

import structlog
from aiohttp import web

from router.errors import TooManyRequests

log = structlog.get_logger("omniroute.auth")

#: Addresses tracked at most (the least recently failing are forgotten first).
MAX_TRACKED = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """The address a request comes from: the peer, or, when the peer is one of
    the ``trusted`` proxies, the nearest untrusted address its
    ``X-Forwarded-For`` names. IPv6 clients are grouped by /64 (what one
    client usually holds)."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._trusted = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)

    def of(self, request: web.BaseRequest) -> str:
        peer = _address(request.remote or "")
        if peer is None:
            return request.remote or "unknown"
        client = peer
        if self._trusted and self._is_trusted(peer):
            hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
            for hop in reversed(hops):
                address = _address(hop)
                if address is None:
                    break
                client = address
                if not self._is_trusted(address):
                    break
        if isinstance(client, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((client, 64), strict=False))
        return str(client)


class FailureLimiter:
    """At most ``limit`` failures per ``window`` seconds per key; ``limit`` 0
    means no limit."""

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, key: str) -> None:
        """``TooManyRequests`` while ``key`` has ``limit`` failures in the window."""
        if not self.limit:
            return
        failures = self._failures.get(key)
        if failures is None or len(failures) < self.limit:
            return
        wait = failures[0] + self.window - self._clock()
        if wait > 0:
            raise TooManyRequests(
                "too many failed token attempts from this address; try again later",
                retry_after=math.ceil(wait),
            )

    def failed(self, key: str) -> None:
        if not self.limit:
            return
        now = self._clock()
        failures = self._failures.get(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            while len(self._failures) > MAX_TRACKED:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        failures.append(now)
        if len(failures) == self.limit and now - failures[0] < self.window:
            log.warning(
                "auth_failures_limited", client=key, failures=self.limit, window=self.window
            )
