"""Operations endpoints: liveness, readiness, metrics, the API description,
and the active ruleset."""

from __future__ import annotations

import asyncio

from aiohttp import web

from router.errors import StoreUnavailable
from router.runtime import Runtime
from router.store.replica import ReplicaStatus
from router.web.body import json_response
from router.web.openapi import SPEC
from router.web.state import RUNTIME

READY_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(rt.store.ping(), READY_TIMEOUT)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["rules"] = f"ok: {rt.rules.active.version}" if rt.rules.ready else "no ruleset loaded"
    ready = all(v.startswith("ok") for v in checks.values())
    body: dict[str, object] = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "ruleset": rt.rules.active.version if rt.rules.ready else None,
        "rules_source": rt.rules.source,
        "instance_id": str(rt.instance.instance_id),
    }
    if rt.rules.last_error:
        body["rules_reload_errors"] = rt.rules.last_error
    if rt.store.replica.configured:
        # Reported, never a reason for "not ready": routing does not read it.
        body["replica"] = (await _replica(rt)).as_dict()
    return json_response(body, status=200 if ready else 503)


async def _replica(rt: Runtime) -> ReplicaStatus:
    """The reporting replica measured now (the last measurement when that
    takes too long)."""
    try:
        status = await asyncio.wait_for(rt.store.replica.measure(), READY_TIMEOUT)
    except TimeoutError:
        status = rt.store.replica.status
    rt.metrics.replica(status)
    return status


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = rt.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(SPEC)


async def rules(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = rt.rules.active.describe()
    body["loaded_at"] = rt.rules.loaded_at.isoformat() if rt.rules.loaded_at else None
    body["sources"] = rt.rules.active.sources
    for rule in body["rules"]:  # since the version was loaded, in this process
        rule["matches"] = rt.rules.matches[rule["name"]]
    since = rt.rules.counting_since
    body["matches_since"] = since.isoformat() if since else None
    if rt.rules.last_error:
        body["reload_errors"] = rt.rules.last_error
    body["source"] = rt.rules.source
    body["instance_id"] = str(rt.instance.instance_id)
    body["instances"] = await live_instances(rt)
    return json_response(body)


async def live_instances(rt: Runtime) -> list[dict[str, object]] | None:
    """Every instance with a recent heartbeat and the ruleset it serves; ``None``
    while the database cannot be reached (the ruleset itself is still shown)."""
    try:
        found = await asyncio.wait_for(rt.store.instances.live(), READY_TIMEOUT)
    except (StoreUnavailable, TimeoutError):
        return None
    me = str(rt.instance.instance_id)
    return [
        {
            "instance_id": str(i.instance_id),
            "host": i.host,
            "port": i.port,
            "pid": i.pid,
            "ruleset": i.ruleset,
            "rules_errors": i.rules_errors,
            "started_at": i.started_at.isoformat(),
            "heartbeat_at": i.heartbeat_at.isoformat(),
            "self": str(i.instance_id) == me,
        }
        for i in found
    ]
