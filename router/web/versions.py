"""The rules' versions and their audit trail (docs/rules.md, "Governance"):
``POST /v1/rules/versions`` publishes files (checked, their tests run),
``POST /v1/rules/versions/{version}/publish`` publishes a stored version again
(a rollback), ``GET /v1/rules/versions`` lists the publications newest first,
``GET /v1/rules/versions/{version}`` returns a version's files and
``GET /v1/rules/versions/{a}/diff/{b}`` the unified diff between two;
``POST /v1/rules/check`` checks a candidate and runs its tests, storing nothing."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog
from aiohttp import web

from router import publishing
from router.bodies import RULES_VERSION, CandidateIn, PublishIn, RepublishIn
from router.errors import Conflict, FieldError, NotFound
from router.runtime import Runtime, serve_published
from router.store.rulesets import Publication
from router.web.body import json_response, read_json
from router.web.query import bad, check_known, parse_int
from router.web.state import PRINCIPAL, RUNTIME

log = structlog.get_logger("omniroute.rules")

PARAMS = ("cursor", "limit")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_VERSION = re.compile(RULES_VERSION)


def shown(p: Publication, *, current: str | None = None) -> dict[str, Any]:
    """A publication as the API shows it."""
    out: dict[str, Any] = {
        "publication": p.publication,
        "version": p.version,
        "parent": p.parent,
        "author": p.author,
        "comment": p.comment,
        "published_at": p.published_at.isoformat(),
    }
    if current is not None:
        out["current"] = p.version == current
    return out


def _version(request: web.Request, name: str = "version") -> str:
    value = request.match_info[name]
    if not _VERSION.match(value):
        raise bad(name, "a ruleset version is 12 lowercase hex digits")
    return value


def _database_source(rt: Runtime) -> None:
    if rt.settings.rules.source != "database":
        raise Conflict(
            "this service serves the rules files on its disk (rules.source: files); "
            "publishing needs rules.source: database",
            fields=[FieldError("rules.source", "is files: publishing is refused")],
        )


async def _sources(rt: Runtime, version: str, field: str = "version") -> dict[str, str]:
    files = await rt.store.rulesets.sources(version)
    if files is None:
        raise NotFound(
            f"no ruleset version {version} is stored",
            fields=[FieldError(field, "unknown ruleset version")],
        )
    return files


async def _published(
    request: web.Request, files: dict[str, str], comment: str, parent: str | None, given: bool
) -> web.Response:
    rt = request.app[RUNTIME]
    author = request[PRINCIPAL].name
    publication, ruleset = await publishing.publish(
        rt.store,
        rt.metrics,
        files,
        author=author,
        comment=comment,
        parent=parent,
        check_parent=given,
    )
    log.info(
        "rules_published",
        version=publication.version,
        parent=publication.parent,
        author=author,
        publication=publication.publication,
    )
    await serve_published(rt)
    body = shown(publication)
    body["files"] = sorted(ruleset.sources)
    body["tests"] = len(ruleset.cases)
    body["warnings"] = list(ruleset.warnings)
    body["serving"] = rt.rules.active.version
    return json_response(body, status=201)


async def publish_version(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    _database_source(rt)
    body = await read_json(request, PublishIn)
    return await _published(
        request, body.files, body.comment, body.parent, "parent" in body.model_fields_set
    )


async def republish_version(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    version = _version(request)
    _database_source(rt)
    body = await read_json(request, RepublishIn)
    files = await _sources(rt, version)
    return await _published(
        request, files, body.comment, body.parent, "parent" in body.model_fields_set
    )


async def list_versions(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = request.query
    check_known(q, PARAMS)
    before = parse_int("cursor", q["cursor"], low=1, high=2**62) if "cursor" in q else None
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await rt.store.rulesets.publications(before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    current = await rt.store.rulesets.published_version()
    return json_response(
        {
            "source": rt.settings.rules.source,
            "published": current,
            "serving": rt.rules.active.version if rt.rules.ready else None,
            "versions": [shown(p, current=current or "") for p in rows],
            "next_cursor": str(rows[-1].publication) if more else None,
        }
    )


async def get_version(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    version = _version(request)
    stored = await rt.store.rulesets.stored(version)
    if stored is None:
        raise NotFound(
            f"no ruleset version {version} is stored",
            fields=[FieldError("version", "unknown ruleset version")],
        )
    publications = await rt.store.rulesets.publications(
        before=None, limit=MAX_LIMIT, version=version
    )
    return json_response(
        {
            "version": stored.version,
            "origin": stored.origin,
            "first_stored_at": stored.first_loaded_at.isoformat(),
            "files": stored.sources,
            "publications": [shown(p) for p in publications],
        }
    )


async def diff_versions(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    a, b = _version(request, "version"), _version(request, "other")
    check_known(request.query, ("format",))
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise bad("format", "must be json or text")
    older = await _sources(rt, a, "version")
    newer = await _sources(rt, b, "other")
    files = publishing.diff(older, newer, a=a, b=b)
    if fmt == "text":
        return web.Response(text="".join(f["diff"] for f in files), content_type="text/x-diff")
    return json_response({"from": a, "to": b, "files": files})


async def check_files(request: web.Request) -> web.Response:
    """Check a candidate and run its tests (for an editor): every problem at
    its file, line and column; 200 whether or not it could be published."""
    body = await read_json(request, CandidateIn)
    examined = await asyncio.to_thread(publishing.examine, body.files)
    return json_response(examined.as_dict())
