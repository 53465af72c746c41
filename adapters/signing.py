"""Signature checks shared by adapters: HMAC digests compared in constant time
against every configured secret (rotation), and replay windows."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable

from router.errors import FieldError, SignatureError

#: How far a signed timestamp may lie from our clock, either way.
DEFAULT_TOLERANCE_SECONDS = 300

Digest = Callable[[bytes, bytes], bytes]


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def hmac_sha1(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha1).digest()


def matches_any(
    presented: bytes, secrets: Iterable[str], message: bytes, digest: Digest = hmac_sha256
) -> bool:
    """True if ``presented`` equals ``digest(secret, message)`` for some secret.

    Every secret is tried (no early exit), so timing does not reveal which
    one matched or how many are configured.
    """
    found = False
    for secret in secrets:
        expected = digest(secret.encode(), message)
        found |= hmac.compare_digest(expected, presented)
    return found


def equals_any(presented: str, secrets: Iterable[str]) -> bool:
    """Constant-time comparison of a shared-secret token against every secret."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(secret.encode(), presented.encode())
    return found


def check_timestamp(
    timestamp: str,
    *,
    header: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """The timestamp as seconds, or ``SignatureError`` if malformed or outside the window."""
    try:
        value = int(timestamp)
    except ValueError:
        raise SignatureError(
            "signature timestamp is not an integer",
            fields=[FieldError(header, "timestamp must be unix seconds")],
        ) from None
    skew = abs((time.time() if now is None else now) - value)
    if skew > tolerance:
        raise SignatureError(
            "signature timestamp outside the allowed window",
            fields=[FieldError(header, f"timestamp is {int(skew)} s away; at most {tolerance} s")],
        )
    return value


def decode_hex(value: str, *, header: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise SignatureError(
            "signature is not hexadecimal", fields=[FieldError(header, "expected hex digest")]
        ) from None


def missing(header: str) -> SignatureError:
    return SignatureError(
        f"missing {header} header", fields=[FieldError(header, "required header is missing")]
    )


def mismatch(header: str) -> SignatureError:
    return SignatureError(
        "signature does not match", fields=[FieldError(header, "no configured secret matches")]
    )
