"""``omniroute rules simulate RULES --replay --since 7d``: decide the stored
contacts of a time window again with candidate rules and report what would
change.

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

import asyncio
import contextlib
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from router import logs
from router.commands.database import with_store
from router.errors import ConfigError, RouterError
from router.models import Decision
from router.redecide import Erased, Unreadable, redecide
from router.rules import Ruleset
from router.rules.schema import parse_duration
from router.settings import load_settings
from router.store import Snapshot, Store
from router.times import parse_time

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


def moment(value: str, now: datetime) -> datetime:
    """``7d``, ``12h``, ``1h30m`` (that long before ``now``) or an ISO time (UTC without offset)."""
    if re.fullmatch(r"\d+", value) is None:
        with contextlib.suppress(ValueError):
            return now - timedelta(seconds=parse_duration(value))
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a duration (7d, 12h) nor a time (2026-03-01T00:00:00Z)"
        ) from None


def _table(title: str, counts: Counter[Any]) -> list[str]:
    if not counts:
        return []
    rows = [(f"{old} -> {new}", n) for (old, new), n in counts.most_common()]
    width = max(len(label) for label, _ in rows)
    return [title, *(f"  {label:<{width}}  {n:>8,}" for label, n in rows)]


def render(report: Report, ruleset: Ruleset, since: datetime, until: datetime) -> str:
    """The report as text."""
    decided = report.changed + report.unchanged
    lines = [
        f"replayed {report.total:,} contacts received {since.isoformat()} to {until.isoformat()}"
        f" with ruleset {ruleset.version} ({report.seconds:.1f} s)",
        f"  changed    {report.changed:>8,}",
        f"  unchanged  {report.unchanged:>8,}",
        f"  erased     {report.erased:>8,}  (skipped)",
    ]
    if report.unreadable:
        lines.append(
            f"  unreadable {report.unreadable:>8,}  (skipped: stored data no longer reads)"
        )
    if decided:
        lines.append(f"  {report.changed / decided:.1%} of the contacts decided would change")
    lines += _table("queue moves (old queue -> new queue):", report.moves)
    lines += _table("changes by rule (old rule -> new rule):", report.rules)
    lines += _table("priority changes (old -> new):", report.priorities)
    if report.fields:
        changed = ", ".join(f"{name} {n:,}" for name, n in report.fields.most_common())
        lines.append(f"changed decision fields: {changed}")
    if decided:
        lines.append(
            f"  would overflow {report.overflowed:>8,}  under these rules, by recorded outcome"
            f" times ({report.still_waiting:,} without an outcome counted as still waiting)"
        )
    lines += _table("overflow (step -> queue):", report.overflows)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _sink(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout.buffer
    else:
        with open(path, "wb") as handle:
            yield handle


def main(
    ruleset: Ruleset,
    *,
    since: str,
    until: str | None,
    output: str | None,
    config: Path | None,
) -> int:
    """Run a replay for the rules CLI; the report goes to standard output (to
    standard error when the changed contacts do)."""
    now = datetime.now(UTC)
    try:
        start = moment(since, now)
        end = moment(until, now) if until else now
    except ValueError as exc:
        print(f"omniroute rules simulate: {exc}", file=sys.stderr)
        return 2
    if start >= end:
        print("omniroute rules simulate: --since must be before --until", file=sys.stderr)
        return 2
    try:
        settings = load_settings(config)
        logs.configure(settings.log)
        with _sink(output) as out:

            async def work(store: Store) -> Report:
                return await replay(store, ruleset, since=start, until=end, out=out)

            report = asyncio.run(with_store(settings, work))
    except (ConfigError, RouterError) as exc:
        print(f"omniroute: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 1
    print(
        render(report, ruleset, start, end),
        end="",
        file=sys.stderr if output == "-" else sys.stdout,
    )
    return 0
