"""Deciding stored contacts again with candidate rules, counting what would
change: the replay behind ``omniroute rules simulate --replay`` and the
console's replay preview.

Each record is decided from what was stored with it (the normalized contact
and the customer context the rules saw) at the moment it was received, so the
only difference is the rules. Records whose personal data was erased (in
whole, or the part of an erased customer's in another's record) are skipped
and counted. The records are streamed, and only counts are kept.

The report also tells how many contacts the candidate rules would have
overflowed, and to where: a contact stops waiting at its first recorded
outcome (assigned, answered, abandoned, resolved, closed, expired), and every
step of its new decision whose ``after_seconds`` passed before that would
have been applied (a contact with no outcome yet waits until the replay).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import orjson
from pydantic import ValidationError

from router.models import Decision
from router.redecide import Erased, Unreadable, redecide
from router.rules import Ruleset
from router.store import Snapshot, Store

#: what a record without a rule (decided by the defaults) shows as its rule
DEFAULTS = "(defaults)"
_FIELDS = tuple(name for name in Decision.model_fields if name != "ruleset")


@dataclass
class Report:
    """What a replay found: counts only, whatever the number of records."""

    total: int = 0
    unchanged: int = 0
    changed: int = 0
    erased: int = 0
    #: records whose stored snapshots no longer read as the current models
    unreadable: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules: Counter[tuple[str, str]] = field(default_factory=Counter)
    priorities: Counter[tuple[int, int]] = field(default_factory=Counter)
    #: decision fields that changed, and how often
    fields: Counter[str] = field(default_factory=Counter)
    #: overflow steps the candidate rules would have applied: (step, queue after it)
    overflows: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: contacts that would have overflowed at least once
    overflowed: int = 0
    #: contacts with no outcome recorded (counted as waiting until the replay)
    still_waiting: int = 0
    #: contacts decided per queue by the stored decisions, and by the candidate
    queues_before: Counter[str] = field(default_factory=Counter)
    queues_after: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def overflow(new: Decision, received_at: datetime, until: datetime) -> list[tuple[str, str]]:
    """The steps of ``new`` a contact received at ``received_at`` and waiting
    until ``until`` would have gone through: (step, the queue after it)."""
    waited = (until - received_at).total_seconds()
    queue = new.queue
    out = []
    for n, step in enumerate(new.overflow):
        if step.after_seconds > waited:
            break
        queue = step.queue or queue
        out.append((f"step {n} ({step.after_seconds}s)", queue))
    return out


def changed_fields(old: Decision, new: Decision) -> list[str]:
    """The decision fields (all but the ruleset version) in which ``new`` differs."""
    return [name for name in _FIELDS if getattr(old, name) != getattr(new, name)]


async def replay(
    store: Store,
    ruleset: Ruleset,
    *,
    since: datetime,
    until: datetime,
    out: IO[bytes] | None = None,
) -> Report:
    """Decide the records received in ``[since, until)`` with ``ruleset``; every
    changed one goes to ``out`` as a JSON line (contact id, old and new decision)."""
    rows = store.records.snapshots(since=since, until=until)
    return await decide_again(rows, ruleset, out=out)


async def decide_again(
    rows: AsyncIterable[Snapshot],
    ruleset: Ruleset,
    *,
    out: IO[bytes] | None = None,
    now: datetime | None = None,
) -> Report:
    """Decide each stored record of ``rows`` with ``ruleset`` and count what
    changes, and what would have overflowed (a contact still waiting waits
    until ``now``)."""
    now = now or datetime.now(UTC)
    report = Report()
    begin = time.perf_counter()
    async for row in rows:
        report.total += 1
        try:
            new = redecide(
                ruleset,
                contact=row.contact,
                context=row.context,
                received_at=row.received_at,
                explain=False,
            ).decision
            old = Decision.model_validate(row.decision)
        except Erased:
            report.erased += 1
            continue
        except (Unreadable, ValidationError):
            report.unreadable += 1
            continue
        report.queues_before[old.queue] += 1
        report.queues_after[new.queue] += 1
        if row.waited_until is None:
            report.still_waiting += 1
        steps = overflow(new, row.received_at, row.waited_until or now)
        report.overflows.update(steps)
        report.overflowed += bool(steps)
        changed = changed_fields(old, new)
        if not changed:
            report.unchanged += 1
            continue
        report.changed += 1
        report.fields.update(changed)
        report.rules[(old.rule or DEFAULTS, new.rule or DEFAULTS)] += 1
        if old.queue != new.queue:
            report.moves[(old.queue, new.queue)] += 1
        if old.priority != new.priority:
            report.priorities[(old.priority, new.priority)] += 1
        if out is not None:
            line = {
                "contact_id": str(row.contact_id),
                "received_at": row.received_at.isoformat(),
                "old": old.model_dump(mode="json"),
                "new": new.model_dump(mode="json"),
            }
            out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
    report.seconds = time.perf_counter() - begin
    return report
