"""Signature checks shared by adapters: HMAC digests compared in constant time
against every configured secret (rotation), and replay windows."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from router.errors import FieldError, SignatureError
from router.models import Nonce

#: How far a signed timestamp may lie from our clock, either way.
DEFAULT_TOLERANCE_SECONDS = 300
#: A claimed nonce is kept this much longer than its signature is accepted,
#: for clocks of several instances that disagree by that much.
NONCE_MARGIN_SECONDS = 60

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


class HmacKeys:
    """HMAC-SHA256 under every secret, each key set up once (padded and hashed
    into the inner and outer states): a message's digest starts from a copy.
    ``matches_any`` as the function of that name: every secret is tried."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keyed = tuple(_keyed(s) for s in secrets)

    def matches_any(self, presented: bytes, message: bytes) -> bool:
        found = False
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(message)
            found |= hmac.compare_digest(mac.digest(), presented)
        return found


def _keyed(secret: str) -> Any:
    """HMAC-SHA256 keyed with ``secret``: the C object under ``hmac.HMAC``
    where OpenSSL backs it (its ``copy``, ``update`` and ``digest`` without
    the Python wrapper's calls around each, a fifth of a digest's cost),
    else the wrapper, which has the same methods."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    return getattr(mac, "_hmac", None) or mac


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


def hmac_header(
    request_headers: Mapping[str, str],
    header: str,
    secrets: Iterable[str],
    message: bytes,
    *,
    digest: Digest = hmac_sha256,
    prefix: str = "",
    encoding: Literal["hex", "base64"] = "hex",
) -> None:
    """Check a ``<prefix><hex or base64 digest>`` header against every secret.

    ``header`` is the display name (``X-Hub-Signature-256``); it is looked up
    lower-cased. Raises ``SignatureError`` when missing, malformed or wrong.
    """
    value = request_headers.get(header.lower(), "").strip()
    if not value:
        raise missing(header)
    if prefix:
        if value[: len(prefix)].lower() != prefix.lower():
            raise SignatureError(
                "malformed signature header",
                fields=[FieldError(header, f"expected {prefix}<digest>")],
            )
        value = value[len(prefix) :]
    presented = decode_hex(value, header=header) if encoding == "hex" else decode_b64(value, header)
    if not matches_any(presented, secrets, message, digest):
        raise mismatch(header)


def decode_b64(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError(
            "signature is not base64", fields=[FieldError(header, "expected base64 digest")]
        ) from None


def shared_token(presented: str | None, secrets: Iterable[str], *, header: str) -> None:
    """A static shared-secret token (header or query), compared in constant time."""
    if not presented:
        raise missing(header)
    if not equals_any(presented, secrets):
        raise mismatch(header)


def basic_auth(header_value: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic`` header, or ``None``."""
    if not header_value:
        return None
    scheme, _, encoded = header_value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_basic_auth(header_value: str | None, *, username: str, secrets: Iterable[str]) -> None:
    """HTTP Basic credentials: the configured user name and any configured password."""
    credentials = basic_auth(header_value)
    if credentials is None:
        raise SignatureError(
            "missing or malformed Basic credentials",
            fields=[FieldError("Authorization", "expected Basic <base64 user:password>")],
        )
    user_ok = hmac.compare_digest(credentials[0].encode(), username.encode())
    if not (equals_any(credentials[1], secrets) and user_ok):
        raise mismatch("Authorization")


def nonce(
    *,
    kind: str,
    adapter: str,
    value: str,
    external_ids: Iterable[str],
    signed_at: int,
    tolerance: int,
    field: str,
) -> Nonce:
    """The one-time ``value`` of a signature that does not cover the body.

    Scoped by provider ``kind`` (not adapter name), so a value seen by one
    adapter cannot be spent again at another adapter with the same key. The
    fingerprint is the adapter name and the delivery's external ids: the
    provider's retry of the delivery matches even if its bytes differ (a new
    multipart boundary), and is answered as a duplicate; any other delivery
    does not match and is refused.
    """
    digest = hashlib.sha256(adapter.encode())
    for external_id in external_ids:
        digest.update(b"\0" + external_id.encode())
    expires = signed_at + tolerance + NONCE_MARGIN_SECONDS
    return Nonce(
        scope=kind,
        value=value,
        fingerprint=digest.digest(),
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
        field=field,
    )
