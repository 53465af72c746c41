"""The console's Rules page: the version each instance serves, the active
files, and a candidate edited in the browser: checked (every error at its
file and line), its tests run, its difference from the active files, and a
replay preview over the last N days (``router.replays``: contacts that would
move, per-queue before and after, overflow under the candidate).

With ``rules.source: database`` a session whose token also holds
``rules:write`` publishes the candidate with a required comment, and rolls
back by publishing an earlier version again (``governance``: the versions,
who serves which, the diff between two). Both go through the API's own
publication (``router.web.versions.publish_files``): checked, tested, the
parent checked, so a concurrent publication is a conflict, never overwritten.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from router import publishing
from router.errors import FieldError, NotFound, PublishConflict, RulesRejected
from router.replays import Report, replay
from router.rules.loader import version_of
from router.web import versions
from router.web.console import governance
from router.web.console.views import render
from router.web.ops import live_instances
from router.web.state import PRINCIPAL, RUNTIME

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
    #: the version the editor started from (the publication's parent)
    parent: str | None = None

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


@dataclass
class Refusal:
    """Why a publish or a rollback from the page was refused."""

    message: str
    fields: list[FieldError] = field(default_factory=list)
    #: the problems (failing tests, load errors) named on the page
    problems: list[Problem] = field(default_factory=list)
    #: the version published meanwhile, when the parent was stale
    conflict: str | None = None


def _placed(p: publishing.Problem) -> Problem:
    """A problem of ``router.publishing`` as the page shows it."""
    if not p.file:
        return Problem(p.message, message=p.message)
    return Problem(f"{p.file}:{p.line}:{p.col}: {p.message}", p.file, p.line, p.col, p.message)


async def _page(
    request: web.Request,
    candidate: Candidate | None,
    status: int = 200,
    refusal: Refusal | None = None,
) -> web.Response:
    rt = request.app[RUNTIME]
    active = rt.rules.active if rt.rules.ready else None
    files = sorted(active.sources) if active is not None else []
    chosen = request.query.get("file") or (files[0] if files else "")
    if candidate is None and active is not None and chosen in active.sources:
        candidate_text = active.sources[chosen]
    else:
        candidate_text = candidate.text if candidate is not None else ""
    instances = await live_instances(rt)
    published = request.query.get("published")
    return render(
        request,
        "rules.html",
        status=status,
        active=active,
        described=active.describe() if active is not None else None,
        loaded_at=rt.rules.loaded_at,
        reload_errors=rt.rules.last_error,
        instances=instances,
        files=files,
        chosen=candidate.file if candidate is not None else chosen,
        text=candidate_text,
        days=candidate.days if candidate is not None else 7,
        max_days=rt.settings.console.replay_max_days,
        candidate=candidate,
        parent=candidate.parent if candidate is not None else (active and active.version),
        just_published=published if published and governance.is_version(published) else None,
        rolled_back=request.query.get("rolled_back") == "1",
        refusal=refusal,
        governance=await governance.panel(request, instances),
    )


async def rules(request: web.Request) -> web.Response:
    return await _page(request, None)


def _days(value: object, high: int) -> int:
    try:
        days = int(str(value))
    except ValueError:
        return 0
    return max(0, min(days, high))


async def _base(request: web.Request, parent: str) -> tuple[str | None, dict[str, str]]:
    """The files the editor started from: those of ``parent`` when it is a
    stored version, else the active files (and the active version)."""
    rt = request.app[RUNTIME]
    if governance.is_version(parent):
        stored = await rt.store.rulesets.sources(parent)
        if stored is not None:
            return parent, stored
    if not rt.rules.ready:
        return None, {}
    return rt.rules.active.version, dict(rt.rules.active.sources)


def _diff(file: str, before: str, after: str) -> list[str]:
    return list(
        difflib.unified_diff(
            before.split("\n"),
            after.split("\n"),
            f"active/{file}",
            f"candidate/{file}",
            lineterm="",
        )
    )


async def check_candidate(request: web.Request) -> web.Response:
    """Check the edited file with the other files it started from, run the
    tests (``publishing.examine``, in a thread), and replay the last N days
    with it when it compiles."""
    rt = request.app[RUNTIME]
    form = await request.post()
    file = str(form.get("file") or "")
    text = str(form.get("text") or "").replace("\r\n", "\n")
    days = _days(form.get("days", "0"), rt.settings.console.replay_max_days)
    parent, sources = await _base(request, str(form.get("parent") or ""))
    if not file or file not in sources:
        candidate = Candidate(file or "(none)", text, days, parent=parent)
        candidate.errors.append(Problem("file: choose one of the active rules files"))
        return await _page(request, candidate, status=400)
    before = sources[file]
    sources[file] = text
    examined = await asyncio.to_thread(publishing.examine, sources)
    candidate = Candidate(
        file,
        text,
        days,
        errors=[_placed(e) for e in examined.errors],
        warnings=[_placed(w) for w in examined.warnings],
        diff=_diff(file, before, text),
        parent=parent,
    )
    if examined.ruleset is None or examined.errors:
        return await _page(request, candidate, status=422)
    candidate.version = examined.version
    candidate.tests_run = examined.tests
    candidate.test_failures = [_placed(f) for f in examined.failures]
    if days:
        until = datetime.now(UTC)
        candidate.report = await replay(
            rt.store, examined.ruleset, since=until - timedelta(days=days), until=until
        )
    return await _page(request, candidate)


def _comment(value: object) -> str | Refusal:
    """The form's comment, or the refusal when it is missing."""
    comment = str(value or "").strip() if isinstance(value, str) else ""
    if not comment:
        return Refusal(
            "Nothing was published: a comment is required (say what changes and why).",
            [FieldError("comment", "required")],
        )
    return comment


async def _publish(
    request: web.Request, files: dict[str, str], comment: str, parent: str | None
) -> str:
    """Publish ``files`` as the session's token; the version published. A
    conflict with the very same files already published (the form sent twice)
    is that version, not a second entry in the trail."""
    try:
        publication, _ = await versions.publish_files(
            request.app[RUNTIME],
            files,
            author=request[PRINCIPAL].name,
            comment=comment,
            parent=parent,
            check_parent=True,
        )
    except PublishConflict as exc:
        if exc.current is not None and exc.current == version_of(files):
            return exc.current
        raise
    return publication.version


def _refused(exc: RulesRejected | PublishConflict, candidate: Candidate | None) -> Refusal:
    """Why ``exc`` refused the publication, its problems also placed at their
    lines in ``candidate``."""
    refusal = Refusal(exc.message, list(exc.fields))
    if isinstance(exc, PublishConflict):
        refusal.conflict = exc.current
        return refusal
    refusal.problems = [problem(f.reason) for f in exc.fields]
    if candidate is not None:
        if "tests fail" in exc.message:
            candidate.test_failures = refusal.problems
        else:
            candidate.errors = refusal.problems
    return refusal


async def publish(request: web.Request) -> web.StreamResponse:
    """Publish the candidate (the edited file over the files of ``parent``,
    the version the editor started from) with a required comment."""
    governance.require_publish_scope(request)
    rt = request.app[RUNTIME]
    versions.require_database_source(rt)
    form = await request.post()
    file = str(form.get("file") or "")
    text = str(form.get("text") or "").replace("\r\n", "\n")
    parent, sources = await _base(request, str(form.get("parent") or ""))
    candidate = Candidate(file or "(none)", text, 0, parent=parent)
    if not file or file not in sources:
        refusal = Refusal(
            "Nothing was published: choose one of the rules files.",
            [FieldError("file", "not a file of the version edited")],
        )
        return await _page(request, candidate, 400, refusal)
    candidate.diff = _diff(file, sources[file], text)
    comment = _comment(form.get("comment"))
    if isinstance(comment, Refusal):
        return await _page(request, candidate, 400, comment)
    sources[file] = text
    try:
        version = await _publish(request, sources, comment, parent)
    except (RulesRejected, PublishConflict) as exc:
        status = 409 if isinstance(exc, PublishConflict) else 422
        return await _page(request, candidate, status, _refused(exc, candidate))
    raise web.HTTPSeeOther(f"/console/rules?published={version}")


async def rollback(request: web.Request) -> web.StreamResponse:
    """Publish an earlier version again, with a required comment; ``parent``
    is the version the page showed as published."""
    governance.require_publish_scope(request)
    rt = request.app[RUNTIME]
    versions.require_database_source(rt)
    form = await request.post()
    version = str(form.get("version") or "")
    files = await rt.store.rulesets.sources(version) if governance.is_version(version) else None
    if files is None:
        raise NotFound(
            f"no ruleset version {version!r} is stored",
            fields=[FieldError("version", "unknown ruleset version")],
        )
    comment = _comment(form.get("comment"))
    if isinstance(comment, Refusal):
        return await _page(request, None, 400, comment)
    parent = str(form.get("parent") or "") or None
    try:
        published = await _publish(request, files, comment, parent)
    except (RulesRejected, PublishConflict) as exc:
        status = 409 if isinstance(exc, PublishConflict) else 422
        return await _page(request, None, status, _refused(exc, None))
    raise web.HTTPSeeOther(f"/console/rules?published={published}&rolled_back=1")
