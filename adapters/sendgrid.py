"""SendGrid Inbound Parse: inbound emails posted as ``multipart/form-data``,
either parsed into fields (default) or, with "send raw", as the full MIME
message in the ``email`` field.

Verification: SendGrid's optional Parse security policy signs with ECDSA or
sends an OAuth bearer token, but which headers Inbound Parse uses is not
confirmed, and the adapters hold no public keys. So the Parse URL carries a
shared secret instead, chosen by the ``auth`` option:

* ``query`` (default): ``https://host/v1/webhooks/{name}?token=<secret>``
  (parameter name: ``query_param`` option, default ``token``);
* ``basic``: ``https://user:<secret>@host/v1/webhooks/{name}`` with the
  ``username`` option.

Either way the secret is compared in constant time with every configured secret.
SendGrid does not follow redirects and retries only on 5xx (for 3 days).

Mapping: parsed mode decodes each text field with the charset SendGrid names
in ``charsets``; threading from the raw ``headers`` block; sender from
``from`` (header) or ``envelope.from`` (SMTP). Dedupe: the ``Message-Id`` (a
hash of the content when absent). SendGrid has no stripped-reply field, so the
full text is kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.forms import MULTIPART, URLENCODED, Form, decode_text, parse_form
from adapters.mail import (
    Mail,
    choose_text,
    from_headers,
    from_mime,
    header_block,
    to_contact,
)
from adapters.options import Options
from adapters.signing import check_basic_auth, shared_token
from router.models import WebhookRequest


def _json_object(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class SendGridAdapter(Adapter):
    kind = "sendgrid"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=("auth", "query_param", "username"))
        self.auth = opts.choice("auth", ("query", "basic"), "query")
        self.query_param = opts.string("query_param", "token")
        self.username = opts.string("username", required=True) if self.auth == "basic" else ""

    def verify(self, request: WebhookRequest) -> None:
        if self.auth == "basic":
            check_basic_auth(
                request.headers.get("authorization"), username=self.username, secrets=self.secrets
            )
        else:
            shared_token(request.query.get(self.query_param), self.secrets, header=self.query_param)

    def parse(self, request: WebhookRequest) -> Parsed:
        form = parse_form(request, accept=(MULTIPART, URLENCODED))
        raw = form.raw.get("email")
        mail = from_mime(raw, provider=self.kind) if raw else self._fields(form)
        envelope = _json_object(form.get("envelope"))
        sender = envelope.get("from")
        mail.envelope_from = sender if isinstance(sender, str) else None
        recipients = envelope.get("to")
        if isinstance(recipients, list):
            mail.attributes["recipient"] = [r for r in recipients if isinstance(r, str)] or None
        spam = form.get("spam_score")
        mail.attributes["spam_score"] = spam or None
        return Parsed(contacts=[to_contact(mail)])

    def _fields(self, form: Form) -> Mail:
        charsets = _json_object(form.get("charsets"))

        def text(name: str) -> str | None:
            data = form.raw.get(name)
            charset = charsets.get(name)
            if data is None or not isinstance(charset, str):
                return form.get(name)
            return decode_text(data, charset)

        headers = dict(header_block(text("headers") or ""))
        uploads = [u.content_type for u in form.uploads]
        if not uploads:
            info = _json_object(form.get("attachment-info"))
            uploads = [
                str(v.get("type") or "unknown") if isinstance(v, dict) else "unknown"
                for v in info.values()
            ]
        for name in ("from", "to", "cc", "subject"):  # the parsed fields win over headers
            value = text(name)
            if value:
                headers[name] = value
        return from_headers(
            self.kind,
            headers,
            text=choose_text(None, text("text"), text("html")),
            attachment_types=uploads,
            fallback=(text("headers"), text("from"), text("subject"), text("text")),
        )
