"""Twilio Programmable Voice: the incoming-call webhook (the number's Voice URL)
and ``<Gather>`` action callbacks carrying IVR input become voice contacts;
status callbacks and other verb callbacks are acknowledged and ignored.

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
from collections.abc import Sequence
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
from router.models import Contact, Identifier, Routed, WebhookRequest

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
