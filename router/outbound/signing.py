"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a
receiver checks with the ``standardwebhooks`` package, or by hand.

The signed content is ``f"{webhook-id}.{webhook-timestamp}.{body}"``; the
signature is ``v1,`` + base64 of its HMAC-SHA256 under the key (the base64
after ``whsec_``). Several secrets give several space-separated signatures,
so a receiver holding either the old or the new secret accepts the event
during a rotation.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=256)
def key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (decoded once per secret: the
    configured ones are few and every event is signed with them)."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key(s), content, "sha256")).decode() for s in secrets
    )


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a signed delivery, with the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(msg_id, timestamp, body, secrets),
    }
