"""The console's Rules page: the version each instance serves, the active
files, and a candidate edited in the browser: checked (every error at its
file and line), its tests run, its difference from the active files, and a
replay preview over the last N days (``router.replays``: contacts that would
move, per-queue before and after, overflow under the candidate).

Publishing, the versions with their author and comment, the diff between two
versions and rollback belong to rules governance; ``governance_panel`` is the
one place the page asks for them, and the template ``rules_governance.html``
already holds their forms.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from router.replays import Report, replay
from router.rules.loader import build
from router.rules.testing import run_cases
from router.runtime import Runtime
from router.web.console.views import render
from router.web.ops import live_instances
from router.web.state import RUNTIME

_PLACE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$", re.S)


@dataclass
class Problem:
    """One line of ``rules check`` output, with its place when it names one."""

    text: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    message: str = ""


@dataclass
class Candidate:
    """What the console found about an edited file."""

    file: str
    text: str
    days: int
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    version: str | None = None
    tests_run: int = 0
    test_failures: list[Problem] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    report: Report | None = None

    def lines(self) -> list[tuple[int, str, list[Problem]]]:
        """The edited file's lines, each with the errors placed on it."""
        placed: dict[int, list[Problem]] = {}
        for p in [*self.errors, *self.test_failures]:
            if p.file == self.file and p.line is not None:
                placed.setdefault(p.line, []).append(p)
        return [(n, text, placed.get(n, [])) for n, text in enumerate(self.text.split("\n"), 1)]


def problem(text: str) -> Problem:
    found = _PLACE.match(text)
    if found is None:
        return Problem(text, message=text)
    return Problem(
        text,
        found["file"],
        int(found["line"]),
        int(found["col"]),
        found["message"],
    )


def governance_panel(rt: Runtime, candidate: Candidate | None) -> dict[str, Any] | None:
    """The governance part of the Rules page: ``None`` until rules governance
    (``POST/GET /v1/rules/versions``) is in this build; then a mapping for
    ``rules_governance.html``: ``versions`` (each with ``version``, ``author``,
    ``comment``, ``published_at``, ``parent``, ``active``), ``diff`` (the
    unified diff lines of two chosen versions, or ``None``), ``publishable``
    (the candidate passed its check and tests) and ``candidate``. The page's
    forms post to ``/console/rules/publish`` (the candidate's files and a
    required comment) and ``/console/rules/rollback`` (a version), and ask
    ``/console/rules?from=A&to=B`` for a diff; all three go through the console's
    session and CSRF checks like every change."""
    return None


async def _page(
    request: web.Request, candidate: Candidate | None, status: int = 200
) -> web.Response:
    rt = request.app[RUNTIME]
    active = rt.rules.active if rt.rules.ready else None
    files = sorted(active.sources) if active is not None else []
    chosen = request.query.get("file") or (files[0] if files else "")
    if candidate is None and active is not None and chosen in active.sources:
        candidate_text = active.sources[chosen]
    else:
        candidate_text = candidate.text if candidate is not None else ""
    return render(
        request,
        "rules.html",
        status=status,
        active=active,
        described=active.describe() if active is not None else None,
        loaded_at=rt.rules.loaded_at,
        reload_errors=rt.rules.last_error,
        instances=await live_instances(rt),
        files=files,
        chosen=candidate.file if candidate is not None else chosen,
        text=candidate_text,
        days=candidate.days if candidate is not None else 7,
        max_days=rt.settings.console.replay_max_days,
        candidate=candidate,
        governance=governance_panel(rt, candidate),
    )


async def rules(request: web.Request) -> web.Response:
    return await _page(request, None)


def _days(value: object, high: int) -> int:
    try:
        days = int(str(value))
    except ValueError:
        return 0
    return max(0, min(days, high))


async def check_candidate(request: web.Request) -> web.Response:
    """Check the edited file with the other active files, run the tests, and
    replay the last N days with it when it compiles."""
    rt = request.app[RUNTIME]
    form = await request.post()
    file = str(form.get("file") or "")
    text = str(form.get("text") or "").replace("\r\n", "\n")
    days = _days(form.get("days", "0"), rt.settings.console.replay_max_days)
    sources = dict(rt.rules.active.sources) if rt.rules.ready else {}
    if not file or file not in sources:
        candidate = Candidate(file or "(none)", text, days)
        candidate.errors.append(Problem("file: choose one of the active rules files"))
        return await _page(request, candidate, status=400)
    before = sources[file]
    sources[file] = text
    loaded = build([(name, name, body) for name, body in sorted(sources.items())])
    candidate = Candidate(
        file,
        text,
        days,
        errors=[problem(e) for e in loaded.errors],
        warnings=[problem(w) for w in loaded.warnings],
        diff=list(
            difflib.unified_diff(
                before.split("\n"),
                text.split("\n"),
                f"active/{file}",
                f"candidate/{file}",
                lineterm="",
            )
        ),
    )
    if loaded.errors or loaded.ruleset is None:
        return await _page(request, candidate, status=422)
    ruleset = loaded.ruleset
    candidate.version = ruleset.version
    candidate.tests_run, failed = run_cases(ruleset)
    candidate.test_failures = [problem(f) for f in failed]
    if days:
        until = datetime.now(UTC)
        candidate.report = await replay(
            rt.store, ruleset, since=until - timedelta(days=days), until=until
        )
    return await _page(request, candidate)
