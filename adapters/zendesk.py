"""Zendesk messaging (Sunshine Conversations v2 webhooks): messages authored
by end users become chat contacts, whatever channel they came through (Web
Widget, WhatsApp, Messenger, ...: ``attributes.platform`` is the source type).

Verification: each webhook has a ``secret``; Zendesk sends it in a request
header compared as a shared secret. The header name is not confirmed by the
docs we could check (``X-API-Key`` per general knowledge), so it is the
``header`` option, default ``x-api-key``.

One delivery carries ``events[]``; each ``conversation:message`` from a user is
a contact (dedupe: the event ``id``, which Zendesk documents for exactly this).
Messages authored by the business (agents, bots, our own replies), postbacks,
reads, typing and other triggers are ignored.

The Support ticket of a conversation is ``attributes.ticket_id`` when the
conversation's ``metadata`` names it (``ticket_id``, or ``zen:ticket_id``);
the ``zendesk`` destination updates that ticket. Messaging creates the
ticket only when the conversation reaches an agent, so early messages
usually have none (*uncertain*: which metadata key Zendesk itself fills).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from adapters.base import Parsed, validate
from adapters.building import (
    Batch,
    Id,
    Lenient,
    Short,
    attachment_summary,
    build,
    parse_json,
    social,
)
from adapters.tokens import SharedTokenAdapter
from router.models import Contact, Identifier, WebhookRequest


class Profile(Lenient):
    givenName: Short | None = None  # field names as the provider spells them
    surname: Short | None = None
    email: Short | None = None
    locale: Short | None = None


class FullUser(Lenient):
    id: Short | None = None
    externalId: Short | None = None
    profile: Profile | None = None


class Author(Lenient):
    type: Short = "user"
    userId: Short | None = None
    displayName: Short | None = None
    user: FullUser | None = None


class Content(Lenient):
    type: Short = "text"
    text: str | None = None
    mediaType: Short | None = None


class Source(Lenient):
    type: Short | None = None
    integrationId: Short | None = None


class Message(Lenient):
    id: Id
    received: datetime | None = None
    author: Author
    content: Content = Field(default_factory=Content)
    source: Source | None = None


class ConversationRef(Lenient):
    id: Id
    type: Short | None = None
    metadata: Any = None  # a flat object; only the ticket id is read from it


class MessagePayload(Lenient):
    conversation: ConversationRef
    message: Message


class Event(Lenient):
    id: Id
    type: Short
    payload: dict[str, Any] = Field(default_factory=dict)


class Delivery(Lenient):
    events: list[Event] = Field(max_length=5000)


class ZendeskAdapter(SharedTokenAdapter):
    kind = "zendesk"
    default_header = "x-api-key"

    def parse(self, request: WebhookRequest) -> Parsed:
        delivery = parse_json(request, Delivery)
        batch = Batch()
        for i, event in enumerate(delivery.events):
            with batch.guard():
                batch.keep(self._contact(event, f"events.{i}.payload"))
        return batch.parsed(self.kind)

    def _contact(self, event: Event, prefix: str) -> Contact | None:
        if event.type != "conversation:message":
            return None
        payload = validate(MessagePayload, event.payload, prefix=prefix)
        message = payload.message
        author = message.author
        if author.type != "user":
            return None
        user = author.user or FullUser()
        profile = user.profile or Profile()
        identifiers: list[Identifier] = []
        if user.externalId:
            identifiers.append(Identifier(kind="crm", value=user.externalId, verified=True))
        if author.userId or user.id:
            identifiers.append(social("zendesk", author.userId or user.id or ""))
        if profile.email:
            identifiers.append(Identifier(kind="email", value=profile.email))
        name = " ".join(n for n in (profile.givenName, profile.surname) if n) or None
        content = message.content
        source = message.source or Source()
        return build(
            channel="chat",
            provider=self.kind,
            external_id=event.id,
            thread_id=payload.conversation.id,
            identifiers=identifiers,
            sender_name=author.displayName or name,
            text=content.text,
            language=profile.locale,
            sent_at=message.received,
            attributes={
                "platform": source.type,
                "integration_id": source.integrationId,
                "message_id": message.id,
                "content_type": content.type,
                "conversation_type": payload.conversation.type,
                "ticket_id": _ticket_id(payload.conversation.metadata),
                **attachment_summary(
                    [content.mediaType or content.type] if content.type in ("image", "file") else []
                ),
            },
        )


#: The conversation metadata keys that may name the conversation's ticket.
TICKET_KEYS = ("ticket_id", "zen:ticket_id")


def _ticket_id(metadata: Any) -> str | None:
    """The ticket id from conversation metadata: digits only, else none."""
    if not isinstance(metadata, dict):
        return None
    for key in TICKET_KEYS:
        value = metadata.get(key)
        if isinstance(value, bool):
            continue
        text = str(value).strip() if isinstance(value, int | str) else ""
        if text.isascii() and text.isdigit() and 0 < len(text) < 19 and int(text) > 0:
            return text
    return None
