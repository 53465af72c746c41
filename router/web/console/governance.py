"""The governance part of the console's Rules page (docs/rules.md,
"Governance"): the published versions with their author, comment, parent and
time (keyset pages, newest first), which instance serves which, the diff
between two stored versions, and whether this session may publish.

Everything goes through ``router.publishing`` and ``router.web.versions``,
as the API does: the same diff, the same check and tests, the same
publication (``versions.publish_files``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from router import publishing
from router.bodies import RULES_VERSION
from router.errors import FieldError, Forbidden
from router.runtime import Runtime
from router.store.rulesets import Publication
from router.web.state import PRINCIPAL, RUNTIME

#: The scope a console session's token must also hold to publish or roll back.
PUBLISH_SCOPE = "rules:write"
#: Publications per page of the versions table.
PAGE = 20
_VERSION = re.compile(RULES_VERSION)


def is_version(value: str) -> bool:
    """Whether ``value`` has the shape of a ruleset version (12 hex digits)."""
    return bool(_VERSION.fullmatch(value))


def may_publish(request: web.Request) -> bool:
    """Whether the session's token holds ``rules:write``."""
    return PUBLISH_SCOPE in request[PRINCIPAL].scopes


def require_publish_scope(request: web.Request) -> None:
    """``Forbidden`` naming the scope unless the session's token may publish."""
    if not may_publish(request):
        principal = request[PRINCIPAL]
        raise Forbidden(
            f"token {principal.name!r} lacks the scope {PUBLISH_SCOPE!r}: "
            "the console shows it the rules read-only",
            fields=[FieldError("cookie", f"the session's token needs scope {PUBLISH_SCOPE!r}")],
        )


@dataclass
class Row:
    """One publication as the versions table shows it."""

    publication: Publication
    #: the newest publication: the version published now
    current: bool
    #: the instances (short ids) serving this version, from their heartbeats
    served_by: list[str] = field(default_factory=list)


@dataclass
class Panel:
    """What ``rules_governance.html`` shows."""

    source: str
    #: publishing is possible here (``rules.source: database``) and the
    #: session's token holds ``rules:write``
    can_publish: bool
    #: why the page is read-only, when it is
    read_only: str | None
    published: str | None
    rows: list[Row]
    #: the cursor of the next (older) page, and whether this is the first
    next_cursor: int | None
    first_page: bool
    #: distinct versions of this page, for the diff's choices
    choices: list[str]
    diff_from: str | None = None
    diff_to: str | None = None
    #: the diff's files (``publishing.diff``), each with its lines
    diff: list[dict[str, Any]] | None = None
    diff_error: str | None = None


def _cursor(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return max(1, min(int(value), 2**62))


async def _diff(rt: Runtime, a: str, b: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    if not is_version(a) or not is_version(b):
        return None, "a ruleset version is 12 lowercase hex digits"
    older = await rt.store.rulesets.sources(a)
    newer = await rt.store.rulesets.sources(b)
    if older is None or newer is None:
        return None, f"no ruleset version {a if older is None else b} is stored"
    files = publishing.diff(older, newer, a=a, b=b)
    return [{**f, "lines": f["diff"].splitlines()} for f in files], None


async def panel(request: web.Request, instances: list[dict[str, Any]] | None) -> Panel:
    """The panel for this request: the page of versions its ``cursor`` asks
    for, and the diff between ``from`` and ``to`` when both are given."""
    rt = request.app[RUNTIME]
    source = rt.settings.rules.source
    read_only = None
    if source != "database":
        read_only = (
            "This service serves the rules files on its disk (rules.source: files): "
            "publishing needs rules.source: database."
        )
    elif not may_publish(request):
        read_only = (
            f"Your token ({request[PRINCIPAL].name}) lacks the scope {PUBLISH_SCOPE}: "
            "the versions are shown read-only."
        )
    cursor = _cursor(request.query.get("cursor"))
    found = await rt.store.rulesets.publications(before=cursor, limit=PAGE + 1)
    more = len(found) > PAGE
    found = found[:PAGE]
    newest = await rt.store.rulesets.published()
    serving: dict[str, list[str]] = {}
    for i in instances or []:
        serving.setdefault(str(i["ruleset"]), []).append(str(i["instance_id"])[:8])
    rows = [
        Row(
            p,
            current=newest is not None and p.publication == newest.publication,
            served_by=serving.get(p.version, []),
        )
        for p in found
    ]
    choices = list(dict.fromkeys(p.version for p in found))
    result = Panel(
        source=source,
        can_publish=read_only is None,
        read_only=read_only,
        published=newest.version if newest is not None else None,
        rows=rows,
        next_cursor=found[-1].publication if more else None,
        first_page=cursor is None,
        choices=choices,
    )
    a, b = request.query.get("from"), request.query.get("to")
    if a and b:
        result.diff_from, result.diff_to = a, b
        result.diff, result.diff_error = await _diff(rt, a, b)
    return result
