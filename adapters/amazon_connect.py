"""Amazon Connect contact events, delivered by an EventBridge rule to an API
destination that posts to ``/v1/webhooks/{name}``.

Verification: EventBridge does not sign the body. The API destination's
connection uses "API key" authorization, which sends a header of our choice
with a secret value; the header name is the ``header`` option (default
``x-omniroute-token``) and its value must equal a configured secret.

An ``INITIATED`` event of an ``INBOUND`` ``VOICE`` contact becomes a voice
contact (dedupe: ``contactId``; thread: ``initialContactId``, stable across
transfers). Every other event type, channel or initiation method, and any
other EventBridge event, is acknowledged and ignored. AWS mixes key casing in
its samples (``AgentInfo``/``agentInfo``), so keys are read case-insensitively.

The contact event carries no caller number as far as AWS documents; if a
``customerEndpoint``/``systemEndpoint`` object is present (as in the contact
record) its ``address`` is used as the caller / callee.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from adapters.base import Parsed, require_json, validate
from adapters.building import Id, Lenient, Short, build, single
from adapters.tokens import SharedTokenAdapter
from router.models import Contact, Identifier, WebhookRequest

DETAIL_TYPE = "Amazon Connect Contact Event"
MAX_DEPTH = 32


def lower_keys(value: Any, depth: int = 0) -> Any:
    """``value`` with every object key lower-cased (to read AWS's mixed casing)."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v, depth + 1) for v in value]
    return value


class Endpoint(Lenient):
    address: Short | None = None
    type: Short | None = None


class QueueInfo(Lenient):
    queuearn: Short | None = None
    queuetype: Short | None = None
    enqueuetimestamp: datetime | None = None


class Detail(Lenient):
    eventtype: Short
    contactid: Id
    initialcontactid: Id | None = None
    previouscontactid: Id | None = None
    channel: Short = ""
    initiationmethod: Short = ""
    instancearn: Short | None = None
    initiationtimestamp: datetime | None = None
    queueinfo: QueueInfo | None = None
    customerendpoint: Endpoint | None = None
    systemendpoint: Endpoint | None = None


class Event(Lenient):
    id: Short | None = None
    detail_type: Short = Field(alias="detail-type")
    source: Short | None = None
    account: Short | None = None
    region: Short | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AmazonConnectAdapter(SharedTokenAdapter):
    kind = "amazon-connect"
    default_header = "x-omniroute-token"

    def parse(self, request: WebhookRequest) -> Parsed:
        event = validate(Event, lower_keys(require_json(request)))
        if event.detail_type != DETAIL_TYPE:
            return Parsed(contacts=[], ignored=1)
        detail = validate(Detail, event.detail, prefix="detail")
        contact = self._contact(event, detail)
        return single(contact)

    def _contact(self, event: Event, detail: Detail) -> Contact | None:
        if (
            detail.eventtype.upper() != "INITIATED"
            or detail.channel.upper() != "VOICE"
            or detail.initiationmethod.upper() != "INBOUND"
        ):
            return None
        caller = detail.customerendpoint.address if detail.customerendpoint else None
        queue = detail.queueinfo or QueueInfo()
        return build(
            channel="voice",
            provider=self.kind,
            external_id=detail.contactid,
            thread_id=detail.initialcontactid or detail.contactid,
            identifiers=[Identifier(kind="phone", value=caller)] if caller else [],
            sent_at=detail.initiationtimestamp,
            attributes={
                "caller": caller,
                "callee": detail.systemendpoint.address if detail.systemendpoint else None,
                "initiation_method": detail.initiationmethod.upper(),
                "previous_contact_id": detail.previouscontactid,
                "instance_arn": detail.instancearn,
                "queue_arn": queue.queuearn,
                "aws_region": event.region,
                "aws_account": event.account,
                "event_id": event.id,
            },
        )
