"""Mailgun Routes ``forward()``: inbound emails posted as
``application/x-www-form-urlencoded`` or, with attachments, ``multipart/form-data``.

Verification: the form's ``signature`` is ``hex(HMAC-SHA256(webhook signing key,
timestamp + token))``; the ``timestamp`` must be within ``tolerance_seconds``
(default 300) of our clock, because the signature does not cover the body.
Whether Mailgun re-signs its retries (they run for 8 hours) is not documented:
if retries are refused as expired, raise ``tolerance_seconds``.
Because the body is not signed, each ``token`` is good for one delivery
(``Parsed.nonce``, claimed in PostgreSQL by the pipeline, as Mailgun advises):
the same token with another message is refused with 401; a retry of the same
message is answered as a duplicate.

Mapping: ``stripped-text`` (the reply without quotes and signature) is preferred
over ``body-plain``, then ``body-html`` as text. A route whose URL ends in
``mime`` posts the raw message in ``body-mime``; it is parsed instead.
Dedupe: the ``Message-Id`` (a hash of the content when absent).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.building import missing_field
from adapters.forms import Form, parse_form
from adapters.mail import Mail, choose_text, from_headers, from_mime, to_contact
from adapters.options import Options
from adapters.signing import check_timestamp, decode_hex, matches_any, mismatch, missing, nonce
from router.models import WebhookRequest

SIGNATURE_FIELDS = ("timestamp", "token", "signature")


class MailgunAdapter(Adapter):
    kind = "mailgun"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=("tolerance_seconds",))
        self.tolerance = opts.integer("tolerance_seconds", 300, minimum=30, maximum=86_400)
        self.clock: Callable[[], float] = time.time

    def verify(self, request: WebhookRequest) -> None:
        form = parse_form(request)
        timestamp, token, signature = (form.get(name) or "" for name in SIGNATURE_FIELDS)
        for name, value in zip(SIGNATURE_FIELDS, (timestamp, token, signature), strict=True):
            if not value:
                raise missing(name)
        check_timestamp(timestamp, header="timestamp", tolerance=self.tolerance, now=self.clock())
        digest = decode_hex(signature, header="signature")
        if not matches_any(digest, self.secrets, (timestamp + token).encode()):
            raise mismatch("signature")

    def parse(self, request: WebhookRequest) -> Parsed:
        form = parse_form(request)
        raw = form.raw.get("body-mime") or (form.get("body-mime") or "").encode()
        mail = from_mime(raw, provider=self.kind) if raw else self._fields(form)
        if mail.from_header is None and mail.envelope_from is None:
            raise missing_field("from")
        mail.attributes["recipient"] = form.get("recipient")
        contact = to_contact(mail)
        timestamp, token = form.get("timestamp") or "", form.get("token") or ""
        once = None
        if token and timestamp.isascii() and timestamp.isdigit():  # so once verified
            once = nonce(
                kind=self.kind,
                adapter=self.name,
                value=token,
                external_ids=[contact.external_id],
                signed_at=int(timestamp),
                tolerance=self.tolerance,
                field="token",
            )
        return Parsed(contacts=[contact], nonce=once)

    def _fields(self, form: Form) -> Mail:
        # Each MIME header also arrives as its own field; ``message-headers`` has the rest.
        headers = _message_headers(form.get("message-headers"))
        headers.update((key.lower(), value) for key, value in reversed(form.pairs))
        stripped = form.get("stripped-text")
        uploads = [u.content_type for u in form.uploads if u.field.startswith("attachment")]
        declared = form.get("attachment-count") or "0"
        if not uploads and declared.isascii() and declared.isdigit() and len(declared) <= 6:
            uploads = ["unknown"] * min(int(declared), 100)
        return from_headers(
            self.kind,
            headers,
            envelope_from=form.get("sender"),
            text=choose_text(stripped, form.get("body-plain"), form.get("body-html")),
            attachment_types=uploads,
            attributes={"stripped": True if stripped and stripped.strip() else None},
            fallback=tuple(headers.get(k) for k in ("from", "subject", "date", "body-plain")),
        )


def _message_headers(value: str | None) -> dict[str, str]:
    """``message-headers``: a JSON list of ``[name, value]`` pairs (first value kept)."""
    if not value:
        return {}
    try:
        pairs = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, str] = {}
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
                out.setdefault(pair[0].lower(), pair[1])
    return out
