"""The routing path of one delivery: adapter -> identity -> context -> rules ->
record -> answer. Pure stages are called from here; I/O is in the store."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from adapters.base import Adapter
from router.errors import FieldError, SignatureError, UnstorableValue
from router.logs import Logger
from router.metrics import Metrics
from router.models import (
    Contact,
    CustomerContext,
    Decision,
    Nonce,
    OutcomeEvent,
    Routed,
    WebhookReply,
    WebhookRequest,
    replace_unstorable,
    trusted,
    unstorable_fields,
    uuid7,
    uuid_text,
)
from router.recognition.identity import Normalizer
from router.recognition.provider import ContextProvider
from router.recognition.resolution import Lookup, Recognized
from router.rules import Evaluation, Ruleset
from router.store import EarlierDelivery, NewRecord
from router.store.batching import Batcher

log = Logger("omniroute.route")


@dataclass(frozen=True, slots=True)
class Pipeline:
    ruleset: Callable[[], Ruleset]
    metrics: Metrics
    #: the database work of concurrent contacts, batched (unbatched when not started):
    #: resolution to a customer and context (``router.recognition.resolution``) and
    #: the record's write (``Store.records.insert_many``)
    resolver: Batcher[Lookup, EarlierDelivery | Recognized]
    writer: Batcher[NewRecord, EarlierDelivery | None]
    #: claims a replay nonce in the store: True if this delivery holds it
    claim: Callable[[Nonce], Awaitable[bool]]
    normalizer: Normalizer = field(default_factory=Normalizer)
    provider: ContextProvider | None = None
    on_routed: Callable[[Evaluation], None] = lambda evaluation: None  # rule match counts
    #: seconds a contact of (adapter, channel) stays open; ``None``: no lifecycle
    lifetime: Callable[[str, str], float | None] = lambda adapter, channel: None
    #: records a provider's outcome event for the contacts of the adapter it
    #: names (as ``POST /v1/contacts/{id}/events``); how many it named
    #: (``None``: outcome events are not recorded, only logged)
    record_outcome: Callable[[str, OutcomeEvent], Awaitable[int]] | None = None

    async def deliver(self, adapter: Adapter, request: WebhookRequest) -> WebhookReply:
        """Verify, parse and route one delivery; the reply the provider gets."""
        started = time.perf_counter()
        adapter.verify(request)
        parsed = adapter.parse(request)
        if parsed.reply is not None:
            return parsed.reply
        for outcome in parsed.outcomes:
            await self.outcome(adapter.name, outcome)
        contacts = parsed.contacts if parsed.storable else self.storable(adapter, parsed.contacts)
        parse_ms = (time.perf_counter() - started) * 1000
        if parsed.nonce is not None:
            await self._claim(adapter.name, parsed.nonce)
        routed: list[Routed] = []
        failed: list[FieldError] = []
        for n, contact in enumerate(contacts):
            try:
                routed.append(await self.route(adapter.name, contact, request, parse_ms))
            except UnstorableValue as exc:
                # Not retryable: the contacts after this one are still routed,
                # so that no answer leaves part of a delivery recorded and the
                # rest lost. (A 503 stops here: the retry routes the rest and
                # answers the recorded ones as duplicates.)
                self.metrics.unstorable.labels(adapter=adapter.name, action="rejected").inc()
                log.warning(
                    "contact_rejected",
                    adapter=adapter.name,
                    external_id=contact.external_id,
                    item=n,
                    error=exc.message,
                )
                where = f"contacts.{n}" if len(contacts) > 1 else "body"
                failed.append(FieldError(where, "the database refused a value of this contact"))
        if parsed.ignored:
            self.metrics.ignored.labels(adapter=adapter.name).inc(parsed.ignored)
        if failed and adapter.unstorable == "refuse":
            raise UnstorableValue(
                "a contact of the delivery could not be stored; the others were recorded "
                "(a corrected resend is answered with their original decisions)",
                fields=failed,
            )
        return adapter.reply(routed, parsed)

    async def outcome(self, adapter: str, event: OutcomeEvent) -> None:
        """Record a provider's outcome event; one that names no contact of
        the adapter (a call routed elsewhere, or before its record was
        written) is logged and changes nothing."""
        named = 0 if self.record_outcome is None else await self.record_outcome(adapter, event)
        log.info(
            "provider_outcome" if named else "provider_outcome_unmatched",
            adapter=adapter,
            type=event.type,
            event_id=event.event_id,
            external_id=event.external_id,
            thread_id=event.thread_id,
            contacts=named,
        )

    def storable(self, adapter: Adapter, contacts: Sequence[Contact]) -> list[Contact]:
        """The delivery's contacts, checked before any is routed for values
        PostgreSQL cannot store: refused whole (422 naming each field) or with
        the characters replaced, as the adapter decides."""
        out = list(contacts)
        bad = {n: fields for n, c in enumerate(out) if (fields := unstorable_fields(c))}
        if not bad:
            return out
        if adapter.unstorable == "refuse":
            prefix = "contacts.{}." if len(out) > 1 else ""
            raise UnstorableValue(
                "a value of the delivery cannot be stored; no contact of it was routed",
                fields=[
                    FieldError(prefix.format(n) + f, "contains a character that cannot be stored")
                    for n, fields in bad.items()
                    for f in fields
                ],
            )
        for n, fields in bad.items():
            out[n] = replace_unstorable(out[n])
            self.metrics.unstorable.labels(adapter=adapter.name, action="replaced").inc()
            log.warning(
                "unstorable_replaced",
                adapter=adapter.name,
                external_id=out[n].external_id,
                fields=fields,
            )
        return out

    async def route(
        self, adapter: str, contact: Contact, request: WebhookRequest, parse_ms: float
    ) -> Routed:
        t0 = time.perf_counter()
        at = request.received_at
        identifiers = self.normalizer.all(contact.identifiers)
        if identifiers is not contact.identifiers:  # unchanged: the same tuple, no copy
            # the contact with normalized identifiers (of their field's type): no
            # validation again, nor model_copy's deep look at the fields
            contact = trusted(Contact, {**contact.__dict__, "identifiers": identifiers})
        contact_id = uuid7(at)
        lookup = Lookup(adapter, contact, contact_id, at)
        found = await self.resolver.submit(lookup)
        if isinstance(found, EarlierDelivery):
            return self._duplicate(adapter, contact, found)
        context = found.context
        if self.provider is not None and not found.anonymous:
            context = await self.provider.enrich(contact, context)
        t1 = time.perf_counter()
        ruleset = self.ruleset()
        # The record keeps the rules that matched; GET /v1/contacts/{id}?explain=true
        # re-runs the stored version for the full rule-by-rule explanation.
        evaluation = ruleset.decide(contact, context, at, explain=False)
        t2 = time.perf_counter()
        assignment = _assignment(ruleset, evaluation.decision, context, at)
        # by position, in the order of NewRecord's fields (15 keywords, one of
        # them a ``**``, cost as much again as the record itself)
        record = NewRecord(
            contact_id,  # contact_id
            at,  # received_at
            adapter,  # adapter
            contact,  # contact
            None if found.anonymous else found.context.customer_id,  # customer_id
            context,  # context
            evaluation.decision,  # decision
            evaluation.trace,  # trace
            # timings, in milliseconds to the microsecond: round(x * 1000) / 1000
            # is round(x, 3) (which formats x in decimal to round it, twice
            # the cost) but for a tie within a float's precision
            {
                "parse_ms": round(parse_ms * 1000) / 1000,
                "context_ms": round((t1 - t0) * 1_000_000) / 1000,
                "rules_ms": round((t2 - t1) * 1_000_000) / 1000,
                "total_ms": round(((t2 - t0) * 1000 + parse_ms) * 1000) / 1000,
            },
            context.degraded,  # context_degraded
            self.lifetime(adapter, contact.channel),  # lifetime
            *assignment,  # assign, preferred_agent, preferred_until
            evaluation.rollout,  # rollout
        )
        earlier = await self.writer.submit(record)
        if earlier is not None:
            return self._duplicate(adapter, contact, earlier)
        total_ms = (time.perf_counter() - t0) * 1000 + parse_ms
        decision = evaluation.decision
        self.metrics.routed(contact.channel, decision.queue, adapter, total_ms / 1000)
        self.on_routed(evaluation)
        log.info(
            "contact_routed",
            contact_id=uuid_text(record.contact_id),
            customer_id=uuid_text(record.customer_id) if record.customer_id else None,
            known=context.known,
            degraded=context.degraded,
            adapter=adapter,
            channel=contact.channel,
            external_id=contact.external_id,
            queue=decision.queue,
            priority=decision.priority,
            rule=decision.rule,
            ruleset=decision.ruleset,
            duration_ms=round(total_ms * 100) / 100,  # round(total_ms, 2), as the timings
        )
        return trusted(
            Routed,
            {
                "contact_id": record.contact_id,
                "customer_id": record.customer_id,
                "duplicate": False,
                "decision": decision,
                "external_id": contact.external_id,
            },
        )

    async def _claim(self, adapter: str, nonce: Nonce) -> None:
        """Spend the signature's one-time value, or refuse a replay of it (401)."""
        held = await self.claim(nonce)
        if not held:
            log.warning("signature_replayed", adapter=adapter, field=nonce.field)
            raise SignatureError(
                "signature already used by another delivery",
                fields=[FieldError(nonce.field, "already used; each is good for one delivery")],
            )

    def _duplicate(self, adapter: str, contact: Contact, earlier: EarlierDelivery) -> Routed:
        self.metrics.duplicates.labels(adapter=adapter).inc()
        log.info(
            "contact_duplicate",
            adapter=adapter,
            external_id=contact.external_id,
            contact_id=str(earlier.contact_id),
        )
        return Routed(
            contact_id=earlier.contact_id,
            customer_id=earlier.customer_id,
            duplicate=True,
            decision=earlier.decision,
            external_id=contact.external_id,
        )


#: the record's assignment facts of a queue omniroute does not assign
_UNASSIGNED: tuple[bool, str | None, datetime | None] = (False, None, None)


def _assignment(
    ruleset: Ruleset, decision: Decision, context: CustomerContext, at: datetime
) -> tuple[bool, str | None, datetime | None]:
    """The record's assignment facts, in ``NewRecord``'s order: whether
    omniroute assigns its queue, its preferred agent (the decision's, else
    the customer's last one) and the end of the wait for it (docs/agents.md)."""
    queue = ruleset.queues.get(decision.queue)
    if queue is None or queue.assign is None:
        return _UNASSIGNED
    preferred = decision.preferred_agent or (
        context.last.agent if context.last is not None else None
    )
    wait = queue.assign.preferred_wait
    return True, preferred, at + timedelta(seconds=wait) if preferred and wait else None
