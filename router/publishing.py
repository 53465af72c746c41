"""Publishing a ruleset version (``rules.source: database``): the files are
checked and their own tests run before anything is stored; a version that
does not load or whose tests fail is refused, each problem named at its
file. A publication is stored with its author, comment, parent version and
time, and every instance switches to it (docs/rules.md, "Governance").

Used by the API (``POST /v1/rules/versions``, ``POST /v1/rules/check``);
``examine`` is what an editor shows of a candidate before it is published."""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router.errors import FieldError, RulesError, RulesRejected, RulesTestsFailed
from router.live_rules import load_checked
from router.metrics import Metrics
from router.rules import Ruleset
from router.rules.loader import build
from router.rules.testing import run_cases
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


_PLACE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem at its place in a file (``line``/``col`` 1-based)."""

    file: str
    line: int
    col: int
    message: str

    @classmethod
    def parse(cls, text: str) -> Problem:
        """``file:line:col: message`` as the loader and the tests write it."""
        found = _PLACE.match(text)
        if found is None:
            return cls("", 1, 1, text)
        return cls(found["file"], int(found["line"]), int(found["col"]), found["message"])

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


@dataclass(frozen=True, slots=True)
class Examined:
    """A candidate ruleset checked and its tests run, nothing stored."""

    #: the version it would have (``None`` when it does not load)
    version: str | None
    errors: list[Problem]
    warnings: list[Problem]
    #: tests run (0 when it does not load) and those that failed
    tests: int
    failures: list[Problem]

    @property
    def ok(self) -> bool:
        """Whether it could be published: it loads and every test passes."""
        return self.version is not None and not self.errors and not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": self.version,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
            "tests": self.tests,
            "failures": [p.as_dict() for p in self.failures],
        }


def examine(files: Mapping[str, str]) -> Examined:
    """Check ``files`` and run their tests, for an editor: every problem at its
    place, nothing raised, nothing counted (pure; run it in a thread)."""
    loaded = build([(name, name, text) for name, text in sorted(files.items())])
    errors = [Problem.parse(e) for e in loaded.errors]
    warnings = [Problem.parse(w) for w in loaded.warnings]
    if loaded.errors or loaded.ruleset is None:
        return Examined(None, errors, warnings, 0, [])
    count, failed = run_cases(loaded.ruleset)
    failures = [Problem.parse(f) for f in failed]
    return Examined(loaded.ruleset.version, errors, warnings, count, failures)
