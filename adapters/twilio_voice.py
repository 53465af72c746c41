"""Twilio Programmable Voice: the incoming-call webhook (the number's Voice URL)
and ``<Gather>`` action callbacks carrying IVR input become voice contacts;
the status callback of an inbound call that ended becomes an outcome event
for every contact of the call (``OUTCOMES``); other status and verb
callbacks are acknowledged and ignored.

Outcomes (docs/adapters.md): Twilio's ``CallStatus`` says how the call
ended, not whether an agent spoke with the caller, so only what it says
unambiguously moves the lifecycle: ``busy``, ``no-answer``, ``failed`` and
``canceled`` (the call was never connected) are ``abandoned``; ``completed``
(the call was connected and ended normally) is ``closed``, which ends the
contact without claiming it was answered or abandoned. The event id is
``<CallSid>:<CallStatus>``, so a retried callback is a duplicate; its time is
the callback's ``Timestamp`` when it has one.

Dedupe: the incoming call is ``CallSid``; a ``<Gather>`` result is
``CallSid:ivr:<hash of digits and speech>`` (so routing can happen again after
the IVR, and a retried callback is still a duplicate). ``thread_id`` is always
the ``CallSid``.

Reply: a Voice URL must answer TwiML, Twilio refuses other content types
(error 12300), so by default the decision's queue is answered as
``<Enqueue>queue</Enqueue>``. With ``workflow_sid`` (a TaskRouter workflow)
the call is enqueued as a TaskRouter task instead, keeping what a queue name
loses: ``<Enqueue workflowSid="WW…"><Task priority="…" timeout="…">{attributes
JSON}</Task></Enqueue>``, the attributes those of the ``twilio-taskrouter``
destination (queue, skills, priority, SLA, ids, tags). Set ``reply: json``
when a Studio flow or a Function calls us instead and reads the JSON decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from adapters.base import AdapterSpec, Parsed
from adapters.building import build
from adapters.options import Options
from adapters.twilio import (
    EMPTY_TWIML,
    TwilioAdapter,
    enqueue_task_twiml,
    enqueue_twiml,
    required,
)
from router.errors import FieldError, PayloadError
from router.models import (
    Contact,
    Identifier,
    OutcomeEvent,
    OutcomeType,
    Routed,
    WebhookRequest,
)

#: Parameters that only appear on callbacks that are not a new contact.
STATUS_MARKERS = (
    "CallbackSource",
    "SequenceNumber",
    "Timestamp",
    "CallDuration",
    "RecordingSid",
    "TranscriptionSid",
    "DialCallStatus",
    "QueueResult",
    "QueuePosition",
)
ENDED = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
#: An ended call's ``CallStatus`` -> the outcome event it is.
OUTCOMES: dict[str, OutcomeType] = {
    "completed": "closed",
    "busy": "abandoned",
    "no-answer": "abandoned",
    "failed": "abandoned",
    "canceled": "abandoned",
}
#: Parameters of verb callbacks (not of a status callback): their CallStatus is not the call's end.
VERB_MARKERS = ("DialCallStatus", "QueueResult", "RecordingSid", "TranscriptionSid")


class TwilioVoiceAdapter(TwilioAdapter):
    kind = "twilio-voice"
    options_allowed = (*TwilioAdapter.options_allowed, "workflow_sid", "task_timeout")

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__(spec)
        opts = Options(spec, allowed=self.options_allowed)
        self.workflow_sid = opts.optional_string("workflow_sid")
        if self.workflow_sid is not None and not (
            self.workflow_sid.startswith("WW")
            and len(self.workflow_sid) == 34
            and self.workflow_sid.isalnum()
        ):
            raise opts.error("option 'workflow_sid' must be a workflow SID (WW + 32 characters)")
        #: seconds the task may wait unassigned before TaskRouter cancels it
        self.task_timeout = opts.integer("task_timeout", 86400, minimum=1, maximum=1_209_600)

    def parse(self, request: WebhookRequest) -> Parsed:
        form = self.form(request)
        names = form.names()
        status = (form.get("CallStatus") or "").strip().lower()
        direction = (form.get("Direction") or "inbound").strip().lower()
        if status in ENDED and direction == "inbound" and not any(m in names for m in VERB_MARKERS):
            return Parsed(contacts=[], outcomes=[_outcome(form.get, status)])
        if any(m in names for m in STATUS_MARKERS) or status in ENDED or direction != "inbound":
            return Parsed(contacts=[], ignored=1)
        call_sid = required(form, "CallSid")
        digits = (form.get("Digits") or "").strip() or None
        speech = (form.get("SpeechResult") or "").strip() or None
        external_id = call_sid
        if digits is not None or speech is not None:
            fingerprint = hashlib.sha256(f"{digits}\x00{speech}".encode()).hexdigest()[:16]
            external_id = f"{call_sid}:ivr:{fingerprint}"
        caller = (form.get("From") or form.get("Caller") or "").strip()
        identifiers = [Identifier(kind="phone", value=caller)] if _dialable(caller) else []
        attributes: dict[str, Any] = {
            "callee": form.get("To") or form.get("Called"),
            "caller": caller or None,
            "caller_name": form.get("CallerName") or None,
            "forwarded_from": form.get("ForwardedFrom") or None,
            "ivr_digits": digits,
            "ivr_speech": speech,
            "speech_confidence": _confidence(form.get("Confidence")),
            "queue_seconds": _seconds(form.get("QueueTime")),
            "caller_country": form.get("FromCountry") or form.get("CallerCountry") or None,
            "call_status": status or None,
            "account_sid": form.get("AccountSid"),
            "stir_verstat": form.get("StirVerstat"),
        }
        contact: Contact = build(
            channel="voice",
            provider=self.kind,
            external_id=external_id,
            thread_id=call_sid,
            identifiers=identifiers,
            sender_name=form.get("CallerName") or None,
            text=speech,
            attributes=attributes,
        )
        return Parsed(contacts=[contact])

    def twiml(self, routed: Sequence[Routed]) -> bytes:
        if len(routed) != 1:
            return EMPTY_TWIML
        one = routed[0]
        if self.workflow_sid is None:
            return enqueue_twiml(one.decision.queue)
        decision = one.decision
        attributes = {
            "queue": decision.queue,
            "skills": list(decision.skills),
            "priority": decision.priority,
            "sla_seconds": decision.sla_seconds,
            "contact_id": str(one.contact_id),
            "customer_id": None if one.customer_id is None else str(one.customer_id),
            "channel": "voice",
            "external_id": one.external_id,
            "tags": list(decision.tags),
        }
        return enqueue_task_twiml(
            self.workflow_sid,
            attributes,
            priority=max(0, decision.priority),
            timeout=self.task_timeout,
        )


def _outcome(get: Callable[[str], str | None], status: str) -> OutcomeEvent:
    """The outcome event of an inbound call's status callback (``status`` in ``ENDED``)."""
    call_sid = (get("CallSid") or "").strip()
    if not call_sid:
        raise PayloadError("CallSid is missing", fields=[FieldError("CallSid", "is required")])
    data: dict[str, Any] = {"source": "twilio-status-callback", "call_status": status}
    duration = (get("CallDuration") or "").strip()
    if duration.isascii() and duration.isdigit() and len(duration) <= 9:
        data["call_duration"] = int(duration)
    return OutcomeEvent(
        type=OUTCOMES[status],
        event_id=f"{call_sid}:{status}"[:256],
        thread_id=call_sid,
        at=_timestamp(get("Timestamp")),
        data=data,
    )


def _timestamp(value: str | None) -> datetime | None:
    """A status callback's ``Timestamp`` (RFC 2822, e.g. ``Mon, 16 Aug 2010
    03:45:01 +0000``); ``None`` when missing or not a date."""
    if not value:
        return None
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at if 2000 <= at.year <= 9999 else None


def _dialable(caller: str) -> bool:
    """Phone-like callers only: not ``client:name`` identities or ``anonymous``."""
    return any(ch.isdigit() for ch in caller) and not caller.lower().startswith("client:")


def _seconds(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        raise PayloadError(
            "QueueTime is not seconds", fields=[FieldError("QueueTime", "expected an integer")]
        )
    return int(value)


def _confidence(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and 0.0 <= number <= 1.0 else None
