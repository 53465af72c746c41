"""What Twilio's voice and messaging webhooks share: the ``X-Twilio-Signature``
check over the public URL and the form parameters, and TwiML replies.

Signature (HMAC-SHA1 with the account's auth token, base64)::

    s = url + "".join(key + value for key, value in sorted(set(params)))

``url`` is the URL exactly as Twilio requested it. Behind a proxy the URL we
receive differs, so the candidates tried are: the received URL, the configured
``public_url`` (its scheme, host, port and path with the received query), and,
when ``trust_forwarded_headers`` is set, the URL rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``. Each is tried with the port removed
and with the scheme's default port added, as Twilio's own SDK does, because
Twilio is inconsistent about which form it signs.

JSON-bodied callbacks carry ``bodySHA256=<hex sha256 of the body>`` in the URL;
then the URL alone is signed and the body hash is checked as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

import orjson

from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.building import missing_field
from adapters.forms import URLENCODED, Form, parse_form
from adapters.options import Options
from adapters.signing import decode_b64, hmac_sha1, matches_any, mismatch, missing
from router.errors import FieldError, PayloadError, SignatureError
from router.models import Routed, WebhookReply, WebhookRequest

HEADER = "X-Twilio-Signature"
DEFAULT_PORTS = {"https": 443, "http": 80}
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def signature(url: str, params: Sequence[tuple[str, str]], token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for ``url`` and ``params`` (tests, tools)."""
    return base64.b64encode(hmac_sha1(token.encode(), signed_bytes(url, params))).decode()


def signed_bytes(url: str, params: Sequence[tuple[str, str]]) -> bytes:
    return (url + "".join(key + value for key, value in sorted(set(params)))).encode("utf-8")


def port_variants(url: str) -> list[str]:
    """``url`` without its port and with the scheme's default port (both forms Twilio uses)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    bare = urlunsplit(parts._replace(netloc=prefix + host))
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    with_port = port or default
    variants = [bare]
    if with_port is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{with_port}")))
    if url not in variants:
        variants.append(url)
    return variants


class TwilioAdapter(Adapter):
    """Signature check, option handling and replies of the two Twilio kinds."""

    options_allowed: ClassVar[tuple[str, ...]] = ("public_url", "trust_forwarded_headers", "reply")

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=self.options_allowed)
        self.public_url = opts.optional_string("public_url")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
                raise opts.error("option 'public_url' must be an absolute http(s) URL")
        self.trust_forwarded = opts.boolean("trust_forwarded_headers", False)
        self.reply_format = opts.choice("reply", ("twiml", "json"), "twiml")

    # -- signature -----------------------------------------------------------

    def candidate_urls(self, request: WebhookRequest) -> Iterator[str]:
        received = urlsplit(request.url)
        yield request.url
        if self.public_url is not None:
            base = urlsplit(self.public_url)
            yield urlunsplit(base._replace(query=received.query, fragment=""))
        if self.trust_forwarded:
            proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
            host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
            host = host or request.headers.get("host", "")
            if proto or host:
                yield urlunsplit(
                    received._replace(
                        scheme=proto or received.scheme, netloc=host or received.netloc
                    )
                )

    def verify(self, request: WebhookRequest) -> None:
        value = request.headers.get(HEADER.lower(), "").strip()
        if not value:
            raise missing(HEADER)
        presented = decode_b64(value, HEADER)
        params: list[tuple[str, str]] = []
        if request.content_type == "application/json":
            self._check_body_hash(request)
        elif request.method.upper() != "GET":
            params = parse_form(request, accept=(URLENCODED,)).pairs
        seen: set[str] = set()
        for url in self.candidate_urls(request):
            for variant in port_variants(url):
                if variant in seen:
                    continue
                seen.add(variant)
                if matches_any(presented, self.secrets, signed_bytes(variant, params), hmac_sha1):
                    return
        raise mismatch(HEADER)

    @staticmethod
    def _check_body_hash(request: WebhookRequest) -> None:
        query = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
        presented = query.get("bodySHA256", "")
        expected = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(presented.lower().encode(), expected.encode()):
            raise SignatureError(
                "body hash does not match",
                fields=[FieldError("bodySHA256", "missing or not the SHA-256 of the body")],
            )

    # -- parsing and replies -------------------------------------------------

    @staticmethod
    def form(request: WebhookRequest) -> Form:
        return parse_form(request, accept=(URLENCODED,))

    def twiml(self, routed: Sequence[Routed]) -> bytes:
        """The TwiML answer; messaging answers with an empty ``<Response/>``."""
        return EMPTY_TWIML

    def reply(self, routed: Sequence[Routed], parsed: Parsed) -> WebhookReply:
        if self.reply_format == "json":
            return super().reply(routed, parsed)
        return WebhookReply(status=200, body=self.twiml(routed), content_type="text/xml")


def enqueue_twiml(queue: str) -> bytes:
    """TwiML that puts the call in the named Twilio queue."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Enqueue>'
        f"{escape(queue)}</Enqueue></Response>"
    ).encode()


def enqueue_task_twiml(
    workflow_sid: str, attributes: dict[str, Any], *, priority: int, timeout: int
) -> bytes:
    """TwiML that enqueues the call as a TaskRouter task of ``workflow_sid``,
    with ``attributes`` as the task's JSON (XML-escaped)."""
    task = escape(orjson.dumps(attributes).decode())
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Enqueue workflowSid={quoteattr(workflow_sid)}>"
        f'<Task priority="{int(priority)}" timeout="{int(timeout)}">{task}</Task>'
        "</Enqueue></Response>"
    ).encode()


def required(form: Form, name: str) -> str:
    """A form field that must be present and non-empty."""
    value = (form.get(name) or "").strip()
    if not value:
        raise missing_field(name)
    return value


def count(form: Form, name: str) -> int:
    """A non-negative integer form field (absent counts as 0)."""
    raw = (form.get(name) or "0").strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise PayloadError(
            f"{name} is not a count", fields=[FieldError(name, "expected an integer")]
        )
    return int(raw)
