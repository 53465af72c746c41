"""Postmark inbound webhook: one inbound email as JSON.

Verification: Postmark does not sign inbound webhooks. Put HTTP Basic
credentials in the webhook URL (``https://user:password@host/v1/webhooks/{name}``);
the user name is the ``username`` option and the password any configured
secret. (Postmark also publishes its webhook IP ranges for a firewall.)

Mapping: ``StrippedTextReply`` (the reply without the quoted thread) is
preferred over ``TextBody``, then ``HtmlBody`` as text; threading from the
``Message-ID``/``In-Reply-To``/``References`` entries of ``Headers``.
Dedupe: Postmark's ``MessageID`` (stable across its retries); the RFC
``Message-ID`` is kept in ``attributes.message_id``. Answering 403 would stop
Postmark's retries; we answer 200 or the usual errors.
"""

from __future__ import annotations

from pydantic import Field

from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.building import Id, Lenient, Short, parse_json
from adapters.mail import choose_text, from_headers, parse_date, to_contact
from adapters.options import Options
from adapters.signing import check_basic_auth
from router.models import WebhookRequest


class Address(Lenient):
    Email: Short | None = None
    Name: Short | None = None


class Header(Lenient):
    Name: Short
    Value: str = ""


class Attachment(Lenient):
    Name: Short | None = None
    ContentType: Short | None = None


class Inbound(Lenient):
    MessageID: Id
    From: Short | None = None
    FromName: Short | None = None
    FromFull: Address | None = None
    ToFull: list[Address] = Field(default_factory=list, max_length=500)
    CcFull: list[Address] = Field(default_factory=list, max_length=500)
    OriginalRecipient: Short | None = None
    Subject: str | None = None
    Date: Short | None = None
    MailboxHash: Short | None = None
    MessageStream: Short | None = None
    Tag: Short | None = None
    TextBody: str | None = None
    HtmlBody: str | None = None
    StrippedTextReply: str | None = None
    Headers: list[Header] = Field(default_factory=list, max_length=1000)
    Attachments: list[Attachment] = Field(default_factory=list, max_length=1000)


class PostmarkAdapter(Adapter):
    kind = "postmark"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=("username",))
        self.username = opts.string("username", required=True)

    def verify(self, request: WebhookRequest) -> None:
        check_basic_auth(
            request.headers.get("authorization"), username=self.username, secrets=self.secrets
        )

    def parse(self, request: WebhookRequest) -> Parsed:
        inbound = parse_json(request, Inbound)
        headers: dict[str, str] = {}
        for h in inbound.Headers:
            headers.setdefault(h.Name.lower(), h.Value)
        sender = inbound.FromFull or Address(Email=inbound.From, Name=inbound.FromName)
        stripped = inbound.StrippedTextReply
        mail = from_headers(
            self.kind,
            headers,
            from_header=None,
            from_address=sender.Email,
            from_name=sender.Name,
            external_id=inbound.MessageID,
            to=[a.Email for a in inbound.ToFull if a.Email],
            cc=[a.Email for a in inbound.CcFull if a.Email],
            subject=inbound.Subject,
            text=choose_text(stripped, inbound.TextBody, inbound.HtmlBody),
            sent_at=parse_date(inbound.Date),
            attachment_types=[a.ContentType or "unknown" for a in inbound.Attachments],
            attributes={
                "stripped": True if stripped and stripped.strip() else None,
                "recipient": inbound.OriginalRecipient,
                "mailbox_hash": inbound.MailboxHash or None,
                "message_stream": inbound.MessageStream,
                "tag": inbound.Tag or None,
                "spam": _spam(headers.get("x-spam-status")),
            },
        )
        return Parsed(contacts=[to_contact(mail)])


def _spam(status: str | None) -> bool | None:
    if not status:
        return None
    return status.strip().lower().startswith("yes")
