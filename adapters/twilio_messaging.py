"""Twilio Messaging: inbound SMS, MMS and WhatsApp (and other ``channel:``
addressed senders such as ``messenger:``) become chat contacts; delivery status
callbacks are acknowledged and ignored.

WhatsApp senders arrive as ``whatsapp:+<E.164>``: the prefix gives the platform
(``attributes.platform``) and the number is the customer's phone, verified
because WhatsApp verified it. ``WaId``/``ProfileName`` are used when present
(field names from Twilio's WhatsApp docs, not from a captured request).
The conversation (``thread_id``) is the sender-recipient pair.
"""

from __future__ import annotations

from typing import Any

from adapters.base import Parsed
from adapters.building import build, international, social
from adapters.twilio import TwilioAdapter, count, required
from router.models import Identifier, WebhookRequest

#: ``MessageStatus`` values of status callbacks (an inbound message is ``received``).
RECEIVED = frozenset({"", "received", "receiving"})
PHONE_PLATFORMS = frozenset({"sms", "mms", "whatsapp", "rcs", "tel"})


def split_address(address: str) -> tuple[str, str]:
    """``("whatsapp", "+1415...")`` for ``whatsapp:+1415...``; plain numbers are ``sms``."""
    platform, sep, rest = address.partition(":")
    if sep and platform.isalpha():
        return platform.lower(), rest
    return "sms", address


class TwilioMessagingAdapter(TwilioAdapter):
    kind = "twilio-messaging"

    def parse(self, request: WebhookRequest) -> Parsed:
        form = self.form(request)
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        if status not in RECEIVED or form.get("ErrorCode"):
            return Parsed(contacts=[], ignored=1)
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or required(form, "SmsSid")
        sender = required(form, "From")
        recipient = (form.get("To") or "").strip()
        platform, address = split_address(sender)
        if platform == "sms" and count(form, "NumMedia"):
            platform = "mms"
        identifiers: list[Identifier] = []
        wa_id = (form.get("WaId") or "").strip()
        if platform in PHONE_PLATFORMS:
            phone = international(wa_id) if wa_id else address
            identifiers.append(
                Identifier(kind="phone", value=phone, verified=platform == "whatsapp")
            )
        else:
            identifiers.append(social(platform, address))
        media = count(form, "NumMedia")
        types = [form.get(f"MediaContentType{i}") or "unknown" for i in range(min(media, 20))]
        attributes: dict[str, Any] = {
            "platform": platform,
            "to": recipient or None,
            "attachments": media,
            "attachment_types": sorted(set(types)) or None,
            "segments": count(form, "NumSegments") or None,
            "from_country": form.get("FromCountry") or None,
            "opt_out_type": form.get("OptOutType") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "account_sid": form.get("AccountSid") or None,
            "referral": True if form.get("ReferralNumMedia") is not None else None,
        }
        contact = build(
            channel="chat",
            provider=self.kind,
            external_id=sid,
            thread_id=f"{sender}|{recipient}",
            identifiers=identifiers,
            sender_name=form.get("ProfileName") or None,
            text=form.get("Body"),
            attributes=attributes,
        )
        return Parsed(contacts=[contact])
