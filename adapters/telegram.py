"""Telegram Bot API: messages to the bot (private chats, groups, business
chats) become chat contacts.

Verification: ``setWebhook(secret_token=...)`` makes Telegram send the token in
``X-Telegram-Bot-Api-Secret-Token``; it is compared in constant time with every
configured secret. There is no signature over the body and no timestamp.

Dedupe: ``update_id``. Edited messages, channel posts, callback queries,
reactions and the other update kinds, and messages from bots, are ignored.
A contact the user shares of themselves (``message.contact`` with their own
``user_id``) adds their phone number.
"""

from __future__ import annotations

from pydantic import Field

from adapters.base import Parsed
from adapters.building import (
    Lenient,
    Short,
    attachment_summary,
    build,
    from_epoch,
    handle,
    international,
    parse_json,
    single,
    social,
)
from adapters.tokens import SharedTokenAdapter
from router.models import Contact, Identifier, WebhookRequest

HEADER = "X-Telegram-Bot-Api-Secret-Token"
MEDIA = ("photo", "video", "voice", "audio", "document", "sticker", "animation", "video_note")


class User(Lenient):
    id: Short
    is_bot: bool = False
    first_name: Short | None = None
    last_name: Short | None = None
    username: Short | None = None
    language_code: Short | None = None


class Chat(Lenient):
    id: Short
    type: Short = "private"


class Document(Lenient):
    mime_type: Short | None = None


class SharedContact(Lenient):
    phone_number: Short | None = None
    user_id: Short | None = None


class Message(Lenient):
    message_id: Short
    message_thread_id: Short | None = None
    from_: User | None = Field(default=None, alias="from")
    chat: Chat
    date: int | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[object] | None = None
    video: Document | None = None
    voice: Document | None = None
    audio: Document | None = None
    document: Document | None = None
    sticker: object | None = None
    animation: Document | None = None
    video_note: object | None = None
    contact: SharedContact | None = None
    forward_origin: object | None = None
    forward_date: int | None = None
    reply_to_message: object | None = None


class Update(Lenient):
    update_id: int
    message: Message | None = None
    business_message: Message | None = None


class TelegramAdapter(SharedTokenAdapter):
    kind = "telegram"
    default_header = HEADER
    header_option = False

    def parse(self, request: WebhookRequest) -> Parsed:
        update = parse_json(request, Update)
        contact = self._contact(update)
        return single(contact)

    def _contact(self, update: Update) -> Contact | None:
        message = update.message or update.business_message
        if message is None or message.from_ is None or message.from_.is_bot:
            return None
        sender = message.from_
        identifiers = [social("telegram", sender.id)]
        if sender.username:
            identifiers.append(handle("telegram", sender.username))
        shared = message.contact
        if shared and shared.phone_number and shared.user_id == sender.id:
            identifiers.append(
                Identifier(kind="phone", value=international(shared.phone_number), verified=True)
            )
        thread = message.chat.id
        if message.message_thread_id:
            thread = f"{thread}:{message.message_thread_id}"
        name = " ".join(n for n in (sender.first_name, sender.last_name) if n) or None
        media = [kind for kind in MEDIA if getattr(message, kind) is not None]
        return build(
            channel="chat",
            provider=self.kind,
            external_id=str(update.update_id),
            thread_id=thread,
            identifiers=identifiers,
            sender_name=name,
            text=message.text or message.caption,
            language=sender.language_code,
            sent_at=from_epoch(message.date),
            attributes={
                "platform": "telegram",
                "chat_type": message.chat.type,
                "public": message.chat.type != "private",
                "message_id": message.message_id,
                "business": True if update.business_message else None,
                "forwarded": True if message.forward_origin or message.forward_date else None,
                "reply": True if message.reply_to_message else None,
                **attachment_summary(media),
            },
        )
