"""Intercom webhooks: a customer starting a conversation
(``conversation.user.created``) or replying (``conversation.user.replied``)
becomes a contact; other topics are acknowledged and ignored.

Verification: ``X-Hub-Signature: sha1=<hex HMAC-SHA1(app client secret, raw body)>``
(from secondary sources quoting Intercom; not on an Intercom page we could check).
Handshake: the ``ping`` topic Intercom sends when a webhook is saved is answered
200 without contacts.

Dedupe: ``conversation:<id>`` for a new conversation and ``part:<id>`` for a
reply: both stay the same across retries whatever the notification envelope
does; the notification ``id`` is kept in ``attributes``. Bodies are HTML and
are turned into plain text. Conversations whose source is an email arrive on
the ``email`` channel, all others on ``chat``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from adapters.base import Adapter, AdapterSpec, Parsed, json_reply, validate
from adapters.building import (
    Id,
    Lenient,
    Short,
    attachment_summary,
    build,
    from_epoch,
    parse_json,
    single,
    social,
)
from adapters.mail import html_to_text
from adapters.options import Options
from adapters.signing import hmac_header, hmac_sha1
from router.models import Contact, Identifier, WebhookRequest

HEADER = "X-Hub-Signature"
CUSTOMER_AUTHORS = frozenset({"user", "lead", "contact"})
CUSTOMER_PARTS = frozenset({"comment", "open"})


class Author(Lenient):
    type: Short | None = None
    id: Short | None = None
    name: Short | None = None
    email: Short | None = None


class Attachment(Lenient):
    content_type: Short | None = None


class Part(Lenient):
    id: Id
    part_type: Short | None = None
    body: str | None = None
    author: Author | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    created_at: int | None = None


class Parts(Lenient):
    conversation_parts: list[Part] = Field(default_factory=list, max_length=1000)


class Source(Lenient):
    type: Short | None = None
    delivered_as: Short | None = None
    subject: str | None = None
    body: str | None = None
    author: Author | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    url: str | None = None


class ContactRef(Lenient):
    id: Short | None = None
    external_id: Short | None = None


class ContactList(Lenient):
    contacts: list[ContactRef] = Field(default_factory=list, max_length=100)


class Conversation(Lenient):
    id: Id
    created_at: int | None = None
    source: Source | None = None
    contacts: ContactList | None = None
    conversation_parts: Parts | None = None


class Data(Lenient):
    item: dict[str, Any] = Field(default_factory=dict)


class Notification(Lenient):
    topic: Short
    id: Short | None = None
    app_id: Short | None = None
    data: Data | None = None


class IntercomAdapter(Adapter):
    kind = "intercom"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        Options(spec)  # no options: unknown keys are refused

    def verify(self, request: WebhookRequest) -> None:
        hmac_header(
            request.headers, HEADER, self.secrets, request.body, digest=hmac_sha1, prefix="sha1="
        )

    def parse(self, request: WebhookRequest) -> Parsed:
        note = parse_json(request, Notification)
        if note.topic == "ping":
            return Parsed(contacts=[], reply=json_reply({"ok": True}))
        if note.topic not in ("conversation.user.created", "conversation.user.replied"):
            return Parsed(contacts=[], ignored=1)
        item = (note.data or Data()).item
        conversation = validate(Conversation, item, prefix="data.item")
        contact = self._contact(note, conversation)
        return single(contact)

    def _contact(self, note: Notification, conversation: Conversation) -> Contact | None:
        source = conversation.source or Source()
        if note.topic == "conversation.user.created":
            external_id = f"conversation:{conversation.id}"
            author, body, files = source.author, source.body, source.attachments
            sent = conversation.created_at
        else:
            parts = (conversation.conversation_parts or Parts()).conversation_parts
            replies = [
                p
                for p in parts
                if p.author and p.author.type in CUSTOMER_AUTHORS and p.part_type in CUSTOMER_PARTS
            ]
            if not replies:
                return None
            part = replies[-1]
            external_id = f"part:{part.id}"
            author, body, files, sent = part.author, part.body, part.attachments, part.created_at
        author = author or Author()
        identifiers: list[Identifier] = []
        refs = (conversation.contacts or ContactList()).contacts
        for ref in refs:  # the author's own record (or the only participant)
            if ref.external_id and (ref.id == author.id or len(refs) == 1):
                identifiers.append(Identifier(kind="crm", value=ref.external_id, verified=True))
        if author.id:
            identifiers.append(social("intercom", author.id))
        if author.email:
            identifiers.append(Identifier(kind="email", value=author.email))
        is_email = source.type == "email" or source.delivered_as == "customer_initiated_email"
        return build(
            channel="email" if is_email else "chat",
            provider=self.kind,
            external_id=external_id,
            thread_id=conversation.id,
            identifiers=identifiers,
            sender_name=author.name,
            subject=html_to_text(source.subject) if source.subject else None,
            text=html_to_text(body) if body else None,
            sent_at=from_epoch(sent),
            attributes={
                "platform": "intercom",
                "topic": note.topic,
                "notification_id": note.id,
                "source_type": source.type,
                "page_url": source.url,
                **attachment_summary(a.content_type for a in files),
            },
        )
