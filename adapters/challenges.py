"""Verification handshakes that echo or sign a value the caller chose (Meta's
``hub.challenge``, Slack's ``url_verification`` challenge, X's ``crc_token``).

Such a value is accepted only if it *looks like a challenge*: 1 to
``MAX_CHALLENGE`` characters of ``CHALLENGE_CHARACTERS`` (letters, digits and
the few marks of base64, URL-safe base64 and UUIDs). This matters twice:

* X answers ``base64(HMAC-SHA256(consumer secret, crc_token))``, which is also
  how X signs a delivery's body. Every delivery is a JSON object, so it holds
  ``{`` and ``"``; a ``crc_token`` never can, and the handshake cannot be used
  to sign a forged delivery.
* An echoed value can never carry markup (``<``, ``>``, ``&``, quotes), and is
  answered as ``text/plain`` with ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import re

from router.errors import FieldError, RequestError
from router.models import WebhookReply

#: Longest challenge accepted (the providers' are 10 to about 60 characters).
MAX_CHALLENGE = 256
#: What a challenge may consist of.
CHALLENGE_CHARACTERS = "A-Z a-z 0-9 - _ . ~ + / ="
_CHALLENGE = re.compile(rf"[A-Za-z0-9\-_.~+/=]{{1,{MAX_CHALLENGE}}}")


def challenge(value: str | None, *, field: str, error: type[RequestError]) -> str:
    """``value`` if it can only be a handshake challenge, else ``error`` naming ``field``."""
    if not value:
        raise error(f"missing {field}", fields=[FieldError(field, "required for the handshake")])
    if _CHALLENGE.fullmatch(value) is None:
        raise error(
            f"{field} is not a handshake challenge",
            fields=[
                FieldError(
                    field,
                    f"must be 1 to {MAX_CHALLENGE} characters of {CHALLENGE_CHARACTERS}",
                )
            ],
        )
    return value


def echo(value: str) -> WebhookReply:
    """A checked challenge sent back as plain text."""
    return WebhookReply(
        status=200,
        body=value.encode("ascii"),
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )
