"""The compiled ruleset and its one job: decide where a contact goes.

Evaluation is a pure function of (ruleset, contact, customer, now): rules are
tried in order; ``continue`` rules add tags, skills and priority boosts and
go on; the first other rule that matches decides; with none, the defaults of
the contact's channel decide.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.models import Contact, CustomerContext, Decision
from router.rules.actions import ChannelDefault, Queue, Route
from router.rules.calendars import Calendar
from router.rules.conditions import Check, Test, all_of
from router.rules.fields import Input
from router.rules.testing import Case

#: a rollout splits customers into this many buckets
BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Rollout:
    """A rule applies to ``percent`` of customers, chosen by a stable hash of the
    rule name and the customer id: the same customer is always on the same side."""

    percent: float
    salt: bytes

    def bucket(self, customer_id: uuid.UUID) -> int:
        digest = hashlib.sha256(self.salt + customer_id.bytes).digest()
        return int.from_bytes(digest[:8], "big") % BUCKETS

    def includes(self, customer_id: uuid.UUID) -> bool:
        return self.bucket(customer_id) < self.percent * BUCKETS / 100


def rollout_for(rule: str, percent: float) -> Rollout:
    return Rollout(percent, rule.encode() + b"\x00")


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule, with where it was written."""

    name: str
    file: str
    line: int
    checks: tuple[Check, ...]
    route: Route
    cont: bool = False
    rollout: Rollout | None = None
    enabled: bool = True
    source: Mapping[str, Any] | None = None

    @property
    def test(self) -> Test | None:
        return all_of([c.test for c in self.checks]) if self.checks else None

    def explain(self, i: Input) -> tuple[bool, str]:
        """Whether the conditions hold, and the condition that says so."""
        for check in self.checks:
            if not check.test(i):
                return False, check.text
        return True, " and ".join(c.text for c in self.checks) or "always"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A decision and how it was reached."""

    decision: Decision
    #: one entry per rule tried, in order, then the defaults if they decided
    trace: list[dict[str, Any]]
    #: "rule:in" / "rule:out" for every rollout rule whose conditions held
    rollout: str | None


class Ruleset:
    """A loaded, compiled ruleset. Build it with :func:`router.rules.load_ruleset`."""

    def __init__(
        self,
        *,
        version: str,
        sources: dict[str, str],
        warnings: list[str],
        queues: Mapping[str, Queue],
        calendars: Mapping[str, Calendar],
        defaults: Mapping[str, ChannelDefault],
        timezone: str,
        rules: Sequence[Rule],
        cases: Sequence[Case] = (),
    ) -> None:
        self.version = version
        self.sources = sources
        self.warnings = warnings
        self.queues = queues
        self.calendars = calendars
        self.defaults = defaults
        self.timezone = timezone
        self.rules = tuple(rules)
        #: the test cases written in the files
        self.cases = tuple(cases)
        self._plan = tuple((r, r.test) for r in self.rules if r.enabled)
        self._empty = Route()

    def __repr__(self) -> str:
        return f"<Ruleset {self.version}: {len(self.rules)} rules, {len(self.queues)} queues>"

    def decide(
        self,
        contact: Contact,
        customer: CustomerContext,
        now: datetime,
        *,
        explain: bool = True,
    ) -> Evaluation:
        """Where ``contact`` goes. Never raises for valid models; a naive ``now`` is UTC.

        ``explain=False`` skips the trace (for bulk simulation); the decision is the same.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        i = Input(contact, customer, now)
        trace: list[dict[str, Any]] = []
        rollouts: list[str] = []
        boost = 0
        tags: list[str] = []
        skills: list[str] = []
        for rule, test in self._plan:
            if explain:
                matched, why = rule.explain(i)
            else:
                matched, why = (test is None or test(i)), ""
            entry: dict[str, Any] | None = (
                {"rule": rule.name, "matched": matched, "why": why} if explain else None
            )
            if matched and rule.rollout is not None:
                side = "in" if rule.rollout.includes(customer.customer_id) else "out"
                rollouts.append(f"{rule.name}:{side}")
                if entry is not None:
                    entry["rollout"] = side
                    if side == "out":
                        entry["matched"] = False
                        entry["why"] = f"rollout {rule.rollout.percent:g}%: customer not in it"
                matched = side == "in"
            if entry is not None:
                trace.append(entry)
            if not matched:
                continue
            if rule.cont:
                if entry is not None:
                    entry["continue"] = True
                boost += rule.route.boost
                tags.extend(rule.route.tags)
                skills.extend(rule.route.skills)
                continue
            decision = rule.route.decide(
                i,
                self.defaults[contact.channel],
                self.queues,
                boost=boost,
                tags=tags,
                skills=skills,
                rule=rule.name,
                ruleset=self.version,
            )
            return Evaluation(decision, trace, ",".join(rollouts) or None)
        if explain:
            trace.append({"rule": None, "matched": True, "why": f"defaults for {contact.channel}"})
        decision = self._empty.decide(
            i,
            self.defaults[contact.channel],
            self.queues,
            boost=boost,
            tags=tags,
            skills=skills,
            rule=None,
            ruleset=self.version,
        )
        return Evaluation(decision, trace, ",".join(rollouts) or None)

    def describe(self) -> dict[str, Any]:
        """The ruleset as JSON-able data (for ``GET /v1/rules``)."""
        return {
            "version": self.version,
            "files": sorted(self.sources),
            "timezone": self.timezone,
            "queues": {
                q.name: {"description": q.description, "skills": list(q.skills)}
                for q in self.queues.values()
            },
            "calendars": {name: c.describe() for name, c in self.calendars.items()},
            "defaults": {
                channel: {
                    "queue": d.queue,
                    "priority": d.priority,
                    "sla_seconds": d.sla_seconds,
                    "skills": list(d.skills),
                }
                for channel, d in self.defaults.items()
            },
            "rules": [
                {"name": r.name, "file": r.file, "line": r.line, **(r.source or {})}
                for r in self.rules
            ],
            "warnings": list(self.warnings),
        }
