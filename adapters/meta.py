"""Meta: Messenger, Instagram messaging (and Instagram comments) and the
WhatsApp Cloud API, all from one app webhook.

Verification: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``.
Meta signs the body as it sends it (non-ASCII escaped as ``\\uXXXX``), so the
raw bytes are hashed, never re-serialized JSON.
Handshake: ``GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..``
answers the challenge as plain text when the token equals ``verify_token`` and
the challenge looks like one (``adapters.challenges``: Meta's are digits).

One POST may batch many entries and events; each customer message becomes its
own contact. Echoes of our own messages, delivery/read receipts, reactions,
WhatsApp ``statuses`` and unknown fields are counted as ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from adapters.base import Adapter, AdapterSpec, Parsed, json_reply, validate
from adapters.building import (
    Batch,
    Id,
    Lenient,
    Short,
    attachment_summary,
    build,
    from_epoch,
    handle,
    international,
    parse_json,
    social,
)
from adapters.challenges import challenge, echo
from adapters.options import Options
from adapters.signing import equals_any, hmac_header
from router.errors import BadQuery, FieldError
from router.models import Contact, Identifier, WebhookReply, WebhookRequest

HEADER = "X-Hub-Signature-256"
PLATFORMS = {"page": "messenger", "instagram": "instagram"}


class User(Lenient):
    id: Id


class Attachment(Lenient):
    type: Short | None = None


class QuickReply(Lenient):
    payload: Short | None = None


class Ref(Lenient):
    mid: Id | None = None


class Message(Lenient):
    mid: Id
    text: str | None = None
    is_echo: bool = False
    is_deleted: bool = False
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    quick_reply: QuickReply | None = None
    reply_to: Ref | None = None


class Postback(Lenient):
    mid: Id | None = None
    title: Short | None = None
    payload: Short | None = None


class Messaging(Lenient):
    sender: User | None = None
    recipient: User | None = None
    timestamp: int | None = None
    message: Message | None = None
    postback: Postback | None = None


class Change(Lenient):
    field: Short = ""
    value: dict[str, Any] = Field(default_factory=dict)


class Entry(Lenient):
    id: Id | None = None
    time: int | None = None
    messaging: list[Messaging] = Field(default_factory=list)
    changes: list[Change] = Field(default_factory=list)


class Envelope(Lenient):
    object: Short
    entry: list[Entry] = Field(max_length=5000)


# WhatsApp Cloud API ``messages`` change value


class Profile(Lenient):
    name: Short | None = None


class WaContact(Lenient):
    wa_id: Short | None = None
    profile: Profile | None = None


class Metadata(Lenient):
    display_phone_number: Short | None = None
    phone_number_id: Short | None = None


class Body(Lenient):
    body: str | None = None


class Media(Lenient):
    mime_type: Short | None = None
    caption: str | None = None


class Reply(Lenient):
    title: str | None = None


class Interactive(Lenient):
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class ButtonText(Lenient):
    text: str | None = None


class Context(Lenient):
    id: Short | None = None
    from_: Short | None = Field(default=None, alias="from")


class WaMessage(Lenient):
    from_: Id = Field(alias="from")
    id: Id
    timestamp: Short | None = None
    type: Short = "text"
    text: Body | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    button: ButtonText | None = None
    interactive: Interactive | None = None
    context: Context | None = None


class WaValue(Lenient):
    metadata: Metadata | None = None
    contacts: list[WaContact] = Field(default_factory=list)
    messages: list[WaMessage] = Field(default_factory=list, max_length=5000)
    statuses: list[Any] = Field(default_factory=list)


# Instagram ``comments`` change value


class Commenter(Lenient):
    id: Id
    username: Short | None = None


class IgMedia(Lenient):
    id: Short | None = None
    media_product_type: Short | None = None


class Comment(Lenient):
    id: Id
    text: str | None = None
    from_: Commenter = Field(alias="from")
    media: IgMedia | None = None


WA_SKIPPED_TYPES = frozenset({"reaction", "system", "unsupported", "request_welcome"})
WA_MEDIA = ("image", "video", "audio", "document", "sticker")
IG_COMMENTS = frozenset({"comments", "live_comments"})


class MetaAdapter(Adapter):
    kind = "meta"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=("verify_token",))
        self.verify_token = opts.string("verify_token", required=True)

    def verify(self, request: WebhookRequest) -> None:
        hmac_header(request.headers, HEADER, self.secrets, request.body, prefix="sha256=")

    def handshake(self, request: WebhookRequest) -> WebhookReply:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token", "")
        if mode != "subscribe":
            raise BadQuery(
                "expected hub.mode=subscribe",
                fields=[FieldError("hub.mode", "must be subscribe")],
            )
        value = challenge(request.query.get("hub.challenge"), field="hub.challenge", error=BadQuery)
        if not equals_any(token, (self.verify_token,)):
            return json_reply(
                {"error": "forbidden", "message": "hub.verify_token does not match"}, status=403
            )
        return echo(value)

    def parse(self, request: WebhookRequest) -> Parsed:
        envelope = parse_json(request, Envelope)
        batch = Batch()
        for i, entry in enumerate(envelope.entry):
            for event in entry.messaging:
                with batch.guard():
                    batch.keep(self._message(envelope, entry.id, event))
            for j, change in enumerate(entry.changes):
                prefix = f"entry.{i}.changes.{j}.value"
                with batch.guard():
                    if (
                        envelope.object == "whatsapp_business_account"
                        and change.field == "messages"
                    ):
                        self._whatsapp(batch, change.value, prefix)
                    elif envelope.object == "instagram" and change.field in IG_COMMENTS:
                        batch.keep(self._comment(entry.id, change, prefix))
                    else:
                        batch.skip()
        return batch.parsed(self.kind)

    def _message(self, envelope: Envelope, owner: str | None, event: Messaging) -> Contact | None:
        platform = PLATFORMS.get(envelope.object)
        if platform is None or event.sender is None:
            return None
        sender = event.sender.id
        if sender == owner:
            return None  # sent by the page / business account itself
        page = event.recipient.id if event.recipient else owner
        common: dict[str, Any] = {
            "channel": "social",
            "provider": self.kind,
            "thread_id": f"{page}:{sender}",
            "identifiers": [social(platform, sender)],
            "sent_at": from_epoch(event.timestamp, millis=True),
        }
        message = event.message
        if message is not None:
            if message.is_echo or message.is_deleted:
                return None
            quick = message.quick_reply
            return build(
                external_id=message.mid,
                text=message.text,
                attributes={
                    "platform": platform,
                    "public": False,
                    "recipient_id": page,
                    "quick_reply_payload": quick.payload if quick else None,
                    "reply_to": message.reply_to.mid if message.reply_to else None,
                    **attachment_summary(a.type for a in message.attachments),
                },
                **common,
            )
        if event.postback is not None and event.postback.mid:
            return build(
                external_id=event.postback.mid,
                text=event.postback.title,
                attributes={
                    "platform": platform,
                    "public": False,
                    "recipient_id": page,
                    "postback_payload": event.postback.payload,
                },
                **common,
            )
        return None  # delivery, read, reaction, optin, referral, ...

    def _whatsapp(self, batch: Batch, raw: dict[str, Any], prefix: str) -> None:
        value = validate(WaValue, raw, prefix=prefix)
        batch.skip(len(value.statuses))
        names = {c.wa_id: c.profile.name for c in value.contacts if c.wa_id and c.profile}
        metadata = value.metadata or Metadata()
        for message in value.messages:
            with batch.guard():
                batch.keep(self._wa_message(message, names, metadata))

    def _wa_message(
        self, message: WaMessage, names: dict[str, str | None], metadata: Metadata
    ) -> Contact | None:
        if message.type in WA_SKIPPED_TYPES:
            return None
        media = [getattr(message, kind) for kind in WA_MEDIA]
        present = [m for m in media if m is not None]
        text = message.text.body if message.text else None
        if text is None and present:
            text = present[0].caption
        if text is None and message.button:
            text = message.button.text
        if text is None and message.interactive:
            reply = message.interactive.button_reply or message.interactive.list_reply
            text = reply.title if reply else None
        return build(
            channel="chat",
            provider=self.kind,
            external_id=message.id,
            thread_id=f"{metadata.phone_number_id}:{message.from_}",
            identifiers=[
                Identifier(kind="phone", value=international(message.from_), verified=True)
            ],
            sender_name=names.get(message.from_),
            text=text,
            sent_at=from_epoch(message.timestamp),
            attributes={
                "platform": "whatsapp",
                "message_type": message.type,
                "to": metadata.display_phone_number,
                "phone_number_id": metadata.phone_number_id,
                "reply_to": message.context.id if message.context else None,
                **attachment_summary(m.mime_type or message.type for m in present),
            },
        )

    def _comment(self, owner: str | None, change: Change, prefix: str) -> Contact | None:
        comment = validate(Comment, change.value, prefix=prefix)
        if comment.from_.id == owner:
            return None
        identifiers = [social("instagram", comment.from_.id)]
        if comment.from_.username:
            identifiers.append(handle("instagram", comment.from_.username))
        media = comment.media or IgMedia()
        return build(
            channel="social",
            provider=self.kind,
            external_id=comment.id,
            thread_id=media.id,
            identifiers=identifiers,
            text=comment.text,
            attributes={
                "platform": "instagram",
                "public": True,
                "media_id": media.id,
                "media_product_type": media.media_product_type,
            },
        )
