"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a
receiver checks with the ``standardwebhooks`` package, or by hand.

The signed content is ``f"{webhook-id}.{webhook-timestamp}.{body}"``; the
signature is ``v1,`` + base64 of its HMAC-SHA256 under the key (the base64
after ``whsec_``). Several secrets give several space-separated signatures,
so a receiver holding either the old or the new secret accepts the event
during a rotation.

Every event is signed with the same few keys, so each key's HMAC is set up
once (``_keyed``: SHA-256 after the inner and after the outer padded key, per
RFC 2104) and an event's signature copies both: less than half the CPU of
``hmac.digest``, which sets the key up again for every event, and without
the Python frames of ``hmac.HMAC``'s ``copy``, ``update`` and ``digest``.
"""

from __future__ import annotations

import base64
import hashlib
from binascii import b2a_base64
from collections.abc import Sequence
from functools import lru_cache
from typing import Any


def key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


_BLOCK = hashlib.sha256().block_size
_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=256)
def _keyed(secret: str) -> tuple[Any, Any]:
    """SHA-256 after ``secret``'s key padded and xored with the inner and
    the outer pad (RFC 2104), before any message (never updated: copied per
    message)."""
    k = key(secret)
    if len(k) > _BLOCK:
        k = hashlib.sha256(k).digest()
    k = k.ljust(_BLOCK, b"\0")
    return hashlib.sha256(k.translate(_INNER)), hashlib.sha256(k.translate(_OUTER))


def mac(secret: str, content: bytes) -> bytes:
    """HMAC-SHA256 of ``content`` under ``secret``'s key (``hmac.digest``'s
    result, from the key's padded hashes set up once)."""
    inner, outer = _keyed(secret)
    h = inner.copy()
    h.update(content)
    o = outer.copy()
    o.update(h.digest())
    digest: bytes = o.digest()
    return digest


def signature(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret."""
    head = f"{msg_id}.{timestamp}.".encode()
    signed = []
    for s in secrets:
        inner, outer = _keyed(s)
        h = inner.copy()
        h.update(head)
        h.update(body)
        o = outer.copy()
        o.update(h.digest())
        signed.append("v1," + b2a_base64(o.digest(), newline=False).decode())
    return " ".join(signed)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a signed delivery, with the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(msg_id, timestamp, body, secrets),
    }
