"""Customer profiles, identity conflicts, merges, erasure and journeys
(``router.recognition.profiles`` does the work)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from router.bodies import JourneyIn, MergeIn, ProfileIn
from router.errors import FieldError, RequestError
from router.models import now_ms
from router.runtime import Runtime
from router.web.body import json_response, read_json
from router.web.query import check_known, parse_int, parse_uuid
from router.web.state import PRINCIPAL, RUNTIME


def _customer_id(request: web.Request, name: str = "id") -> uuid.UUID:
    return parse_uuid(name, request.match_info[name])


async def _show(
    rt: Runtime, customer_id: uuid.UUID, status: int = 200, extra: dict[str, Any] | None = None
) -> web.Response:
    profile = await rt.recognition.profiles.show(customer_id)
    return json_response({**dataclasses.asdict(profile), **(extra or {})}, status=status)


async def get_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return await _show(rt, _customer_id(request))


async def upsert_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = request[PRINCIPAL].name
    body = await read_json(request, ProfileIn)
    done = await rt.recognition.profiles.upsert(actor=actor, body=body)
    status = 201 if done.created else 200
    return await _show(rt, done.customer_id, status, {"conflicts": done.conflicts})


async def put_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = request[PRINCIPAL].name
    customer_id = _customer_id(request)
    body = await read_json(request, ProfileIn)
    done = await rt.recognition.profiles.update(actor=actor, customer_id=customer_id, body=body)
    return await _show(rt, customer_id, extra={"conflicts": done.conflicts})


async def merge_customers(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = request[PRINCIPAL].name
    into = _customer_id(request)
    body = await read_json(request, MergeIn)
    moved = await rt.recognition.profiles.merge(actor=actor, into=into, source=body.from_)
    return await _show(rt, into, extra={"merged": {"from": str(body.from_), **moved}})


async def erase_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = request[PRINCIPAL].name
    customer_id = _customer_id(request)
    details = await rt.recognition.profiles.erase(actor=actor, customer_id=customer_id)
    return json_response({"customer_id": str(customer_id), "erased": True, **details})


async def put_journey(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = request[PRINCIPAL].name
    customer_id = _customer_id(request)
    ref = request.match_info["ref"]
    if not 1 <= len(ref) <= 128:
        raise RequestError("bad journey ref", fields=[FieldError("ref", "1 to 128 characters")])
    body = await read_json(request, JourneyIn)
    journey = await rt.recognition.profiles.put_journey(
        actor=actor, customer_id=customer_id, ref=ref, body=body, at=now_ms()
    )
    return json_response(journey)


async def list_conflicts(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = request.query
    check_known(q, ("status", "cursor", "limit"))
    status = q.get("status", "open")
    if status not in ("open", "merged", "dismissed"):
        raise RequestError("bad status", fields=[FieldError("status", "open, merged or dismissed")])
    limit = parse_int("limit", q["limit"], low=1, high=1000) if "limit" in q else 100
    after = parse_int("cursor", q["cursor"], low=0, high=2**62) if "cursor" in q else None
    rows = await rt.recognition.profiles.conflicts(status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {"conflicts": rows, "next_cursor": str(rows[-1].conflict_id) if more else None}
    )
