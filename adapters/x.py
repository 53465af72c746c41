"""X (Twitter) Account Activity API: direct messages and public posts
(mentions, replies) to the subscribed account become social contacts.

Verification: ``x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer
secret, raw body)>`` (header confirmed by X's docs; the ``sha256=`` + base64 form
from secondary sources and from the CRC recipe).
Handshake: ``GET ?crc_token=..`` answers ``{"response_token": "sha256=<base64
HMAC-SHA256(consumer secret, crc_token)>"}``. X signs with the app's current
consumer secret, so the CRC is answered with the *first* configured secret;
deliveries are accepted with any of them (rotation). That answer is exactly the
signature of a delivery whose body is the token, so only tokens that cannot be
a delivery are answered (``adapters.challenges``: no ``{`` or ``"``, at most
256 characters); anything else is a 400 naming ``crc_token``.

Events authored by the subscribed account itself (``for_user_id``), retweets,
typing indicators, read receipts, likes, follows and the like are ignored.
Dedupe: the DM event ``id`` / the post's ``id_str``.
"""

from __future__ import annotations

import base64

from pydantic import Field

from adapters.base import Adapter, AdapterSpec, Parsed, json_reply, require_json, validate
from adapters.building import (
    Batch,
    Id,
    Lenient,
    Short,
    attachment_summary,
    build,
    from_epoch,
    handle,
    social,
)
from adapters.challenges import challenge
from adapters.options import Options
from adapters.signing import hmac_header, hmac_sha256
from router.errors import BadQuery
from router.models import Contact, Identifier, WebhookReply, WebhookRequest

HEADER = "x-twitter-webhooks-signature"
#: Event arrays that never carry a contact (counted as ignored).
OTHER_EVENTS = (
    "favorite_events",
    "follow_events",
    "unfollow_events",
    "block_events",
    "unblock_events",
    "mute_events",
    "unmute_events",
    "tweet_delete_events",
    "direct_message_indicate_typing_events",
    "direct_message_mark_read_events",
    "user_event",
)


def crc_response(token: str, secret: str) -> str:
    digest = hmac_sha256(secret.encode(), token.encode())
    return "sha256=" + base64.b64encode(digest).decode()


class UserInfo(Lenient):
    id: Short | None = None
    id_str: Short | None = None
    name: Short | None = None
    screen_name: Short | None = None


class Media(Lenient):
    type: Short | None = None


class DmAttachment(Lenient):
    media: Media | None = None


class QuickReplyResponse(Lenient):
    metadata: Short | None = None


class MessageData(Lenient):
    text: str | None = None
    attachment: DmAttachment | None = None
    quick_reply_response: QuickReplyResponse | None = None


class Target(Lenient):
    recipient_id: Short | None = None


class MessageCreate(Lenient):
    sender_id: Id
    target: Target | None = None
    message_data: MessageData | None = None


class DmEvent(Lenient):
    type: Short = ""
    id: Id
    created_timestamp: Short | None = None
    message_create: MessageCreate | None = None


class Entities(Lenient):
    media: list[Media] = Field(default_factory=list)


class ExtendedTweet(Lenient):
    full_text: str | None = None
    extended_entities: Entities | None = None


class Tweet(Lenient):
    id_str: Id
    text: str | None = None
    truncated: bool = False
    extended_tweet: ExtendedTweet | None = None
    user: UserInfo
    in_reply_to_status_id_str: Short | None = None
    retweeted_status: object | None = None
    lang: Short | None = None
    timestamp_ms: Short | None = None
    extended_entities: Entities | None = None


class Activity(Lenient):
    for_user_id: Short | None = None
    direct_message_events: list[DmEvent] = Field(default_factory=list, max_length=5000)
    tweet_create_events: list[Tweet] = Field(default_factory=list, max_length=5000)
    users: dict[str, UserInfo] = Field(default_factory=dict)


class XAdapter(Adapter):
    kind = "x"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        Options(spec)  # no options: unknown keys are refused

    def verify(self, request: WebhookRequest) -> None:
        hmac_header(
            request.headers, HEADER, self.secrets, request.body, prefix="sha256=", encoding="base64"
        )

    def handshake(self, request: WebhookRequest) -> WebhookReply:
        # The answer is the signature a delivery with the body ``crc_token`` would
        # carry: only a token that can never be a delivery (no JSON) is signed.
        token = challenge(request.query.get("crc_token"), field="crc_token", error=BadQuery)
        return json_reply({"response_token": crc_response(token, self.secrets[0])})

    def parse(self, request: WebhookRequest) -> Parsed:
        data = require_json(request)
        activity = validate(Activity, data)
        batch = Batch()
        me = activity.for_user_id
        for event in activity.direct_message_events:
            with batch.guard():
                batch.keep(self._dm(event, me, activity.users))
        for tweet in activity.tweet_create_events:
            with batch.guard():
                batch.keep(self._post(tweet, me))
        for name in OTHER_EVENTS:
            events = data.get(name) if isinstance(data, dict) else None
            if events:
                batch.skip(len(events) if isinstance(events, list) else 1)
        return batch.parsed(self.kind)

    def _dm(self, event: DmEvent, me: str | None, users: dict[str, UserInfo]) -> Contact | None:
        create = event.message_create
        if event.type != "message_create" or create is None or create.sender_id == me:
            return None
        sender = create.sender_id
        recipient = create.target.recipient_id if create.target else me
        data = create.message_data or MessageData()
        info = users.get(sender) or UserInfo()
        media = data.attachment.media if data.attachment else None
        quick = data.quick_reply_response
        return build(
            channel="social",
            provider=self.kind,
            external_id=event.id,
            thread_id="-".join(sorted(p for p in (sender, recipient) if p)),
            identifiers=_identifiers(sender, info.screen_name),
            sender_name=info.name,
            text=data.text,
            sent_at=from_epoch(event.created_timestamp, millis=True),
            attributes={
                "platform": "x",
                "public": False,
                "quick_reply_metadata": quick.metadata if quick else None,
                **attachment_summary([media.type] if media else []),
            },
        )

    def _post(self, tweet: Tweet, me: str | None) -> Contact | None:
        author = tweet.user.id_str or tweet.user.id
        if not author or author == me or tweet.retweeted_status is not None:
            return None
        extended = tweet.extended_tweet
        text = extended.full_text if extended and extended.full_text else tweet.text
        entities = (extended.extended_entities if extended else None) or tweet.extended_entities
        return build(
            channel="social",
            provider=self.kind,
            external_id=tweet.id_str,
            thread_id=tweet.in_reply_to_status_id_str or tweet.id_str,
            identifiers=_identifiers(author, tweet.user.screen_name),
            sender_name=tweet.user.name,
            text=text,
            language=tweet.lang if tweet.lang and tweet.lang != "und" else None,
            sent_at=from_epoch(tweet.timestamp_ms, millis=True),
            attributes={
                "platform": "x",
                "public": True,
                "in_reply_to": tweet.in_reply_to_status_id_str,
                **attachment_summary(m.type for m in (entities.media if entities else [])),
            },
        )


def _identifiers(user_id: str, screen_name: str | None) -> list[Identifier]:
    ids = [social("x", user_id)]
    if screen_name:
        ids.append(handle("x", screen_name))
    return ids
