"""Publishing a ruleset version (``rules.source: database``): the files are
checked and their own tests run before anything is stored; a version that
does not load or whose tests fail is refused, each problem named at its
file. A publication is stored with its author, comment, parent version and
time, and every instance switches to it (docs/rules.md, "Governance").

Used by the API (``POST /v1/rules/versions``) and at start-up (the first
version, from the files)."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Mapping

from router.errors import FieldError, RulesError, RulesRejected, RulesTestsFailed
from router.live_rules import load_checked
from router.metrics import Metrics
from router.rules import Ruleset
from router.store import Store
from router.store.rulesets import Publication


def rejected(exc: RulesError, files: Mapping[str, str]) -> RulesRejected:
    """``exc``'s problems as field errors, each at the file it names
    (``files.<name>``), else at ``files``."""
    fields = []
    for problem in exc.problems:
        name = problem.split(":", 1)[0]
        fields.append(FieldError(f"files.{name}" if name in files else "files", problem))
    what = "tests fail" if isinstance(exc, RulesTestsFailed) else "do not load"
    return RulesRejected(f"the rules {what}: {exc.message}; nothing was published", fields=fields)


async def check(files: Mapping[str, str], metrics: Metrics) -> Ruleset:
    """The ruleset of ``files``, loaded and its tests passed; else ``RulesRejected``."""
    try:
        return await asyncio.to_thread(load_checked, dict(files), metrics, "publish")
    except RulesError as exc:
        raise rejected(exc, files) from None


async def publish(
    store: Store,
    metrics: Metrics,
    files: Mapping[str, str],
    *,
    author: str,
    comment: str,
    parent: str | None,
    check_parent: bool,
) -> tuple[Publication, Ruleset]:
    """Check and test ``files``, then make them the published version."""
    ruleset = await check(files, metrics)
    publication = await store.rulesets.publish(
        ruleset.version,
        ruleset.sources,
        author=author,
        comment=comment,
        parent=parent,
        check_parent=check_parent,
    )
    return publication, ruleset


def diff(
    older: Mapping[str, str], newer: Mapping[str, str], *, a: str, b: str
) -> list[dict[str, str]]:
    """A unified diff per file that differs (added, removed or changed), by name."""
    out = []
    for name in sorted(set(older) | set(newer)):
        before, after = older.get(name), newer.get(name)
        if before == after:
            continue
        status = "added" if before is None else "removed" if after is None else "changed"
        lines = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"{a}/{name}" if before is not None else "/dev/null",
            tofile=f"{b}/{name}" if after is not None else "/dev/null",
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        out.append({"file": name, "status": status, "diff": text})
    return out
