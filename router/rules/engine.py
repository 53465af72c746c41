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

from router.models import CHANNELS, Contact, CustomerContext, Decision
from router.rules.actions import ChannelDefault, Queue, Route
from router.rules.calendars import Calendar
from router.rules.conditions import Check
from router.rules.fields import Input
from router.rules.index import RuleIndex
from router.rules.testing import Case

#: a rollout splits customers into this many buckets
BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Rollout:
    """A rule applies to ``percent`` of customers, chosen by a stable hash of the
    rule name and the customer id: the same customer is always on the same side."""

    percent: float
    salt: bytes
    #: buckets below this are in
    threshold: float

    def bucket(self, customer_id: uuid.UUID) -> int:
        digest = hashlib.sha256(self.salt + customer_id.bytes).digest()
        return int.from_bytes(digest[:8], "big") % BUCKETS

    def includes(self, customer_id: uuid.UUID) -> bool:
        return self.bucket(customer_id) < self.threshold


def rollout_for(rule: str, percent: float) -> Rollout:
    """The rollout of ``percent`` % for the rule named ``rule``: sha256(name, NUL, customer id)."""
    return Rollout(percent, rule.encode() + b"\x00", percent * BUCKETS / 100)


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule, with where it was written."""

    name: str
    #: the file's name (a key of Ruleset.sources) and the path it was read from
    file: str
    path: str
    line: int
    checks: tuple[Check, ...]
    route: Route
    cont: bool = False
    rollout: Rollout | None = None
    enabled: bool = True
    source: Mapping[str, Any] | None = None

    @property
    def reason(self) -> str:
        """Why the rule matches when it does: all its conditions."""
        return " and ".join(c.text for c in self.checks) or "always"


class _Extra:
    """What ``continue`` rules and rollouts add up to during one decision."""

    __slots__ = ("boost", "tags", "skills", "rollouts")

    def __init__(self) -> None:
        self.boost = 0
        self.tags: list[str] = []
        self.skills: list[str] = []
        self.rollouts: list[str] = []

    def add(self, route: Route) -> None:
        self.boost += route.boost
        self.tags.extend(route.tags)
        self.skills.extend(route.skills)

    def rollout(self, rule: Rule, customer_id: uuid.UUID) -> bool:
        assert rule.rollout is not None
        inside = rule.rollout.includes(customer_id)
        self.rollouts.append(f"{rule.name}:{'in' if inside else 'out'}")
        return inside


#: what a decision without continue rules or rollouts adds: nothing (never changed)
_NOTHING = _Extra()


@dataclass(slots=True)
class Evaluation:
    """A decision and how it was reached (never changed once made)."""

    decision: Decision
    #: with ``explain``: one entry per rule tried, in order, then the defaults if
    #: they decided; without: only the rules that matched (``continue`` ones too)
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
        #: the queues omniroute assigns to agents (declared with ``assign:``)
        self.assigned = frozenset(name for name, q in queues.items() if q.assign is not None)
        self.calendars = calendars
        self.defaults = defaults
        self.timezone = timezone
        self.rules = tuple(rules)
        #: the test cases written in the files
        self.cases = tuple(cases)
        enabled = [r for r in self.rules if r.enabled]
        #: the enabled rules, indexed by their equality tests (used without a trace)
        self.index = RuleIndex(enabled)
        # with a trace every enabled rule is tried; what the trace says is prepared here
        self._explained = tuple(
            (
                rule,
                tuple((c.test, c.text) for c in rule.checks),
                rule.reason,
                None
                if rule.rollout is None
                else f"rollout {rule.rollout.percent:g}%: customer not in it",
            )
            for rule in enabled
        )
        self._fallthrough = {
            channel: {"rule": None, "matched": True, "why": f"defaults for {channel}"}
            for channel in CHANNELS
        }
        self._defaults = Route()

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

        ``explain=False`` skips the trace and tries only the rules the index
        leaves (for bulk work); the decision is the same.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        i = Input(contact, customer, now)
        if explain:
            return self._explain(i)
        extra: _Extra | None = None
        applied: list[dict[str, Any]] = []  # the rules that matched, in order
        for rule, test in self.index.candidates(i):
            if test is not None and not test(i):
                continue
            if rule.rollout is not None:
                extra = extra or _Extra()
                if not extra.rollout(rule, customer.customer_id):
                    continue
            if rule.cont:
                extra = extra or _Extra()
                extra.add(rule.route)
                applied.append({"rule": rule.name, "matched": True, "continue": True})
                continue
            applied.append({"rule": rule.name, "matched": True})
            return self._finish(i, rule.route, rule.name, extra or _NOTHING, applied)
        return self._finish(i, self._defaults, None, extra or _NOTHING, applied)

    def _explain(self, i: Input) -> Evaluation:
        """``decide`` trying every rule in order and writing down why each (did not) match."""
        extra = _Extra()
        trace: list[dict[str, Any]] = []
        for rule, checks, reason, not_in_rollout in self._explained:
            why = reason
            for test, text in checks:
                if not test(i):
                    why = text
                    break
            else:
                entry: dict[str, Any] = {"rule": rule.name, "matched": True, "why": why}
                trace.append(entry)
                if rule.rollout is not None:
                    inside = extra.rollout(rule, i.customer.customer_id)
                    entry["rollout"] = "in" if inside else "out"
                    if not inside:
                        entry["matched"] = False
                        entry["why"] = not_in_rollout
                        continue
                if rule.cont:
                    entry["continue"] = True
                    extra.add(rule.route)
                    continue
                return self._finish(i, rule.route, rule.name, extra, trace)
            trace.append({"rule": rule.name, "matched": False, "why": why})
        trace.append(dict(self._fallthrough[i.contact.channel]))
        return self._finish(i, self._defaults, None, extra, trace)

    def _finish(
        self,
        i: Input,
        route: Route,
        rule: str | None,
        extra: _Extra,
        trace: list[dict[str, Any]],
    ) -> Evaluation:
        decision = route.decide(
            i,
            self.defaults[i.contact.channel],
            self.queues,
            boost=extra.boost,
            tags=extra.tags,
            skills=extra.skills,
            rule=rule,
            ruleset=self.version,
        )
        return Evaluation(decision, trace, ",".join(extra.rollouts) or None)

    def describe(self) -> dict[str, Any]:
        """The ruleset as JSON-able data (for ``GET /v1/rules``)."""
        return {
            "version": self.version,
            "files": sorted(self.sources),
            "timezone": self.timezone,
            "queues": {
                q.name: {
                    "description": q.description,
                    "skills": list(q.skills),
                    **({} if q.assign is None else {"assign": q.assign.model_dump()}),
                }
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
            "indexed_fields": list(self.index.fields),
        }
