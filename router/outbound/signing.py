"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a
receiver checks with the ``standardwebhooks`` package, or by hand.

The signed content is ``f"{webhook-id}.{webhook-timestamp}.{body}"``; the
signature is ``v1,`` + base64 of its HMAC-SHA256 under the key (the base64
after ``whsec_``). Several secrets give several space-separated signatures,
so a receiver holding either the old or the new secret accepts the event
during a rotation.

Every event is signed with the same few keys, so each key's HMAC is set up
once (``_keyed``) and an event's signature copies it: less than half the CPU
of ``hmac.digest``, which sets the key up again for every event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache


def key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


@lru_cache(maxsize=256)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC-SHA256 of ``secret``'s key before any message (never updated:
    copied per message)."""
    return hmac.new(key(secret), digestmod=hashlib.sha256)


def mac(secret: str, content: bytes) -> bytes:
    """HMAC-SHA256 of ``content`` under ``secret``'s key (``hmac.digest``'s
    result, from the key's HMAC set up once)."""
    h = _keyed(secret).copy()
    h.update(content)
    return h.digest()


def signature(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(mac(s, content)).decode() for s in secrets)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a signed delivery, with the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(msg_id, timestamp, body, secrets),
    }
