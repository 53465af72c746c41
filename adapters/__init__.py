"""Channel adapters: each verifies a provider's delivery and parses it into
normalized contacts. ``KINDS`` maps the ``kind`` named in config to its class."""

from __future__ import annotations

from adapters.amazon_connect import AmazonConnectAdapter
from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.generic import GENERIC
from adapters.intercom import IntercomAdapter
from adapters.mailgun import MailgunAdapter
from adapters.meta import MetaAdapter
from adapters.postmark import PostmarkAdapter
from adapters.sendgrid import SendGridAdapter
from adapters.slack import SlackAdapter
from adapters.telegram import TelegramAdapter
from adapters.twilio_messaging import TwilioMessagingAdapter
from adapters.twilio_voice import TwilioVoiceAdapter
from adapters.x import XAdapter
from adapters.zendesk import ZendeskAdapter
from router.errors import ConfigError

#: The real provider adapters, beside the generic JSON ones.
PROVIDERS: tuple[type[Adapter], ...] = (
    ZendeskAdapter,
    IntercomAdapter,
    SlackAdapter,
    MailgunAdapter,
    PostmarkAdapter,
    SendGridAdapter,
    TwilioVoiceAdapter,
    TwilioMessagingAdapter,
    MetaAdapter,
    AmazonConnectAdapter,
    TelegramAdapter,
    XAdapter,
)

KINDS: dict[str, type[Adapter]] = {cls.kind: cls for cls in (*GENERIC, *PROVIDERS)}


def build(spec: AdapterSpec) -> Adapter:
    """The adapter instance for one configured ``{name, kind, secrets}`` entry."""
    try:
        cls = KINDS[spec.kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(
            f"adapter {spec.name!r}: unknown kind {spec.kind!r} (known: {known})"
        ) from None
    return cls(spec)


__all__ = ["KINDS", "PROVIDERS", "Adapter", "AdapterSpec", "Parsed", "build"]
