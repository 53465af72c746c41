"""``omniroute rules simulate RULES --replay --since 7d``: decide the stored
contacts of a time window again with candidate rules and report what would
change.

The replay itself and its report are :mod:`router.replays` (the console's
replay preview uses them too); this module reads the options and prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from router import logs
from router.commands.database import with_store
from router.errors import ConfigError, RouterError
from router.replays import Report, replay
from router.rules import Ruleset
from router.rules.schema import parse_duration
from router.settings import load_settings
from router.store import Store
from router.times import parse_time


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
