"""``POST /v1/contacts/{id}/events``: outcomes reported by the platform."""

from __future__ import annotations

from datetime import UTC

from aiohttp import web

from router.bodies import EventIn
from router.errors import FieldError, NotFound
from router.models import now_ms
from router.web.body import json_response, read_json
from router.web.query import parse_contact_id
from router.web.state import RUNTIME


async def post_event(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    contact_id = parse_contact_id("id", request.match_info["id"])
    body = await read_json(request, EventIn)
    at = body.at or now_ms()
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    event_id = body.event_id or f"{body.type}:{at.isoformat()}"
    result = await rt.store.events.record(
        contact_id,
        event_id=event_id,
        type_=body.type,
        at=at,
        agent=body.agent,
        data=body.data,
        outbox=rt.destinations.moved if rt.destinations else None,
    )
    if result is None:
        raise NotFound(f"no contact {contact_id}", fields=[FieldError("id", "unknown contact")])
    return json_response(
        {
            "event_id": event_id,
            "recorded": result.recorded,
            "duplicate": result.duplicate,
            "outcome": result.outcome,
            "agent": result.agent,
            "sla_met": result.sla_met,
            "state": result.state,
        },
        status=201 if result.recorded else 200,
    )
