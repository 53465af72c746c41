"""Signatures as each provider computes them, for deliveries the tests send:
the headers (or, for Mailgun, the form fields) a real delivery carries."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from adapters.twilio import signature as twilio_signature


def meta(body: bytes, secret: str) -> dict[str, str]:
    """Meta (WhatsApp, Messenger, Instagram): HMAC-SHA256 of the body, hex."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}


def intercom(body: bytes, secret: str) -> dict[str, str]:
    """Intercom: HMAC-SHA1 of the body, hex."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature": f"sha1={digest}"}


def x_digest(message: bytes, secret: str) -> str:
    """X: ``sha256=`` and the base64 HMAC-SHA256 of ``message`` (a delivery's
    signature, and the answer to a CRC challenge)."""
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def x(body: bytes, secret: str) -> dict[str, str]:
    """X (Account Activity API)."""
    return {"x-twitter-webhooks-signature": x_digest(body, secret)}


def slack(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Slack: HMAC-SHA256 of ``v0:<timestamp>:<body>``, hex."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}


def twilio(url: str, body: bytes, token: str) -> dict[str, str]:
    """Twilio: over the URL it posted to and the sorted form fields."""
    params = parse_qsl(body.decode(), keep_blank_values=True)
    return {"X-Twilio-Signature": twilio_signature(url, params, token)}


def mailgun(fields: Mapping[str, str], key: str, timestamp: int, token: str) -> dict[str, str]:
    """Mailgun: ``fields`` with ``timestamp``, ``token`` and ``signature``
    (HMAC-SHA256 of timestamp + token, hex; it does not cover the message)."""
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": str(timestamp), "token": token, "signature": digest}
