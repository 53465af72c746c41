"""Slack Events API: customer messages in channels, DMs and mentions of our
app become chat contacts.

Verification: ``X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
"v0:" + X-Slack-Request-Timestamp + ":" + raw body)>``; timestamps more than
five minutes away are refused (replay window).
Handshake: the (signed) ``url_verification`` POST is answered with its
``challenge`` as plain text, if it looks like one (``adapters.challenges``).

Skipped (counted as ignored): messages with a ``subtype`` other than
``file_share``/``thread_broadcast`` (edits, deletions, joins, bot messages),
messages with a ``bot_id``, messages from our own bot (``bot_user_id`` option or
a bot authorization), and every other event type.

Dedupe: a message is ``<team>:<channel>:<ts>``, the same for the ``message``
and ``app_mention`` events of one message and for Slack's retries; the
``event_id`` is kept in ``attributes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import Field

from adapters.base import Adapter, AdapterSpec, Parsed
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
from adapters.challenges import challenge, echo
from adapters.options import Options
from adapters.signing import check_timestamp, hmac_header, missing
from router.errors import FieldError, PayloadError
from router.models import Contact, WebhookRequest

SIGNATURE = "X-Slack-Signature"
TIMESTAMP = "X-Slack-Request-Timestamp"
KEPT_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
MESSAGE_EVENTS = frozenset({"message", "app_mention"})


class File(Lenient):
    mimetype: Short | None = None
    filetype: Short | None = None


class Event(Lenient):
    type: Short = ""
    subtype: Short | None = None
    channel: Short | None = None
    channel_type: Short | None = None
    user: Short | None = None
    bot_id: Short | None = None
    text: str | None = None
    ts: Short | None = None
    thread_ts: Short | None = None
    team: Short | None = None
    files: list[File] = Field(default_factory=list, max_length=100)
    hidden: bool = False


class Authorization(Lenient):
    user_id: Short | None = None
    is_bot: bool = False


class Envelope(Lenient):
    type: Short
    challenge: Short | None = None
    team_id: Short | None = None
    event_id: Id | None = None
    event: Event | None = None
    authorizations: list[Authorization] = Field(default_factory=list)


class SlackAdapter(Adapter):
    kind = "slack"

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=("bot_user_id",))
        self.bot_user_id = opts.optional_string("bot_user_id")
        self.clock: Callable[[], float] = time.time

    def verify(self, request: WebhookRequest) -> None:
        timestamp = request.headers.get(TIMESTAMP.lower(), "").strip()
        if not timestamp:
            raise missing(TIMESTAMP)
        check_timestamp(timestamp, header=TIMESTAMP, now=self.clock())
        message = b"v0:" + timestamp.encode() + b":" + request.body
        hmac_header(request.headers, SIGNATURE, self.secrets, message, prefix="v0=")

    def parse(self, request: WebhookRequest) -> Parsed:
        envelope = parse_json(request, Envelope)
        if envelope.type == "url_verification":
            value = challenge(envelope.challenge, field="challenge", error=PayloadError)
            return Parsed(contacts=[], reply=echo(value))
        contact = self._contact(envelope) if envelope.type == "event_callback" else None
        return single(contact)

    def _own(self, user: str, envelope: Envelope) -> bool:
        if self.bot_user_id is not None and user == self.bot_user_id:
            return True
        return any(a.is_bot and a.user_id == user for a in envelope.authorizations)

    def _contact(self, envelope: Envelope) -> Contact | None:
        event = envelope.event
        if event is None or event.type not in MESSAGE_EVENTS:
            return None
        if event.subtype not in KEPT_SUBTYPES or event.bot_id or event.hidden:
            return None
        if not event.user or self._own(event.user, envelope):
            return None
        if not event.channel or not event.ts:
            raise PayloadError(
                "message event without channel or ts",
                fields=[
                    FieldError(f"event.{name}", "required for message events")
                    for name in ("channel", "ts")
                    if not getattr(event, name)
                ],
            )
        team = event.team or envelope.team_id or "-"
        if event.thread_ts:
            thread = f"{event.channel}:{event.thread_ts}"
        elif event.channel_type == "im":
            thread = event.channel
        else:
            thread = f"{event.channel}:{event.ts}"
        return build(
            channel="chat",
            provider=self.kind,
            external_id=f"{team}:{event.channel}:{event.ts}",
            thread_id=thread,
            identifiers=[social("slack", event.user)],
            text=event.text,
            sent_at=from_epoch(event.ts),
            attributes={
                "platform": "slack",
                "team": team,
                "channel_id": event.channel,
                "channel_type": event.channel_type,
                "public": event.channel_type == "channel",
                "mention": event.type == "app_mention",
                "event_id": envelope.event_id,
                **attachment_summary(f.mimetype or f.filetype for f in event.files),
            },
        )
