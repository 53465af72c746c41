"""Bulk simulation: one decision per NDJSON input line.

Each line is ``{"contact": {...}, "customer": {...}, "now": "ISO time"}``; only
``contact.channel`` is required. Defaults: ``provider`` "simulate",
``external_id`` "line-<n>"; without ``customer`` the customer is unknown; the
customer id, unless given, is derived from the line (the same line always falls
on the same side of a rollout); ``now`` is the contact's ``sent_at``, else the
start of the run; a time without offset is in the ruleset's time zone.

A bad line is reported (with its number) and skipped; the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError

from router.models import Contact, Decision
from router.rules.engine import Evaluation, Ruleset
from router.rules.testing import customer_context

PROGRESS_EVERY = 50_000


@dataclass(frozen=True, slots=True)
class Summary:
    lines: int
    decided: int
    bad: int
    seconds: float


class BadLine(ValueError):
    """An input line that cannot be simulated."""


def record(n: int, contact: Contact, evaluation: Evaluation, *, trace: bool) -> dict[str, Any]:
    """The output object of one line."""
    decision: Decision = evaluation.decision
    out: dict[str, Any] = {
        "line": n,
        "external_id": contact.external_id,
        "channel": contact.channel,
        "queue": decision.queue,
        "priority": decision.priority,
        "skills": decision.skills,
        "sla_seconds": decision.sla_seconds,
        "tags": decision.tags,
        "preferred_agent": decision.preferred_agent,
        "overflow": [
            {
                "after_seconds": s.after_seconds,
                "queue": s.queue,
                "drop_skills": s.drop_skills,
                "priority": s.priority,
            }
            for s in decision.overflow
        ],
        "rule": decision.rule,
        "ruleset": decision.ruleset,
        "rollout": evaluation.rollout,
    }
    if trace:
        out["trace"] = evaluation.trace
    return out


def _where(prefix: str, error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    return f"{prefix}.{loc}: {error['msg']}" if loc else f"{prefix}: {error['msg']}"


class Simulator:
    """Decides input lines against one ruleset."""

    def __init__(self, ruleset: Ruleset, *, started: datetime, trace: bool = False) -> None:
        self.ruleset = ruleset
        self.started = started
        self.trace = trace
        self.zone = ZoneInfo(ruleset.timezone)

    def line(self, n: int, raw: bytes) -> bytes:
        """The output line for input line ``n``; raises BadLine."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadLine(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadLine("expected an object with contact, customer, now")
        contact_data = data.get("contact")
        if not isinstance(contact_data, dict):
            raise BadLine("missing 'contact' (an object with at least a channel)")
        contact_data.setdefault("provider", "simulate")
        contact_data.setdefault("external_id", f"line-{n}")
        try:
            contact = Contact.model_validate(contact_data)
        except ValidationError as exc:
            raise BadLine("; ".join(_where("contact", e) for e in exc.errors())) from None
        customer_data = data.get("customer")
        if customer_data is not None and not isinstance(customer_data, dict):
            raise BadLine("'customer' must be an object")
        try:
            customer = customer_context(customer_data, seed=raw.decode("utf-8", "replace"))
        except ValidationError as exc:
            raise BadLine("; ".join(_where("customer", e) for e in exc.errors())) from None
        now = self._now(data.get("now"), contact)
        evaluation = self.ruleset.decide(contact, customer, now, explain=self.trace)
        return orjson.dumps(
            record(n, contact, evaluation, trace=self.trace), option=orjson.OPT_APPEND_NEWLINE
        )

    def _now(self, value: Any, contact: Contact) -> datetime:
        if value is None:
            return contact.sent_at or self.started
        if not isinstance(value, str):
            raise BadLine("'now' must be an ISO time like 2026-03-02T10:00:00Z")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadLine(f"'now': {value!r} is not an ISO time") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.zone)

    def run(
        self,
        lines: Iterable[bytes],
        out: IO[bytes],
        errors: IO[str],
        *,
        progress: IO[str] | None = None,
    ) -> Summary:
        """Simulate every line; bad lines go to ``errors`` as ``line N: why``."""
        begin = time.perf_counter()
        decided = bad = n = 0
        pending: list[bytes] = []
        for n, raw in enumerate(lines, start=1):  # noqa: B007 (n is used after the loop)
            if not raw.strip():
                continue
            try:
                pending.append(self.line(n, raw))
                decided += 1
            except BadLine as exc:
                bad += 1
                errors.write(f"line {n}: {exc}\n")
            if len(pending) >= 1024:
                out.write(b"".join(pending))
                pending.clear()
            if progress is not None and n % PROGRESS_EVERY == 0:
                rate = n / max(time.perf_counter() - begin, 1e-9)
                progress.write(f"\r{n:,} lines, {rate:,.0f} lines/s")
                progress.flush()
        out.write(b"".join(pending))
        out.flush()
        seconds = time.perf_counter() - begin
        if progress is not None and n >= PROGRESS_EVERY:
            progress.write("\n")
        return Summary(n, decided, bad, seconds)
