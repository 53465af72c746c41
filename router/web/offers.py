"""Offers to agents (docs/agents.md): ``POST /v1/offers/{id}/accept`` and
``/reject`` (an agent desktop answers an offer), ``GET /v1/offers`` (what an
agent has been offered, newest first, for a desktop that polls)."""

from __future__ import annotations

from aiohttp import web

from router.errors import Conflict, FieldError, NotFound
from router.store.offers import STATUSES
from router.web.body import json_response
from router.web.query import bad, check_known, decode_cursor, encode_cursor, parse_int, parse_uuid
from router.web.state import RUNTIME

PARAMS = ("agent", "status", "cursor", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: the longest agent id a query may name (as the agents' ids)
AGENT_MAX = 200


async def list_offers(request: web.Request) -> web.Response:
    q = request.query
    check_known(q, PARAMS)
    agent = q.get("agent")
    if agent is not None and not 0 < len(agent) <= AGENT_MAX:
        raise bad("agent", f"must be 1 to {AGENT_MAX} characters")
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise bad("status", f"must be one of {', '.join(STATUSES)}")
    before = decode_cursor(q["cursor"]) if "cursor" in q else None
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await request.app[RUNTIME].store.offers.page(
        agent=agent, status=status, before=before, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].offered_at, rows[-1].offer_id) if more else None
    return json_response({"offers": [o.as_json() for o in rows], "next_cursor": cursor})


async def accept_offer(request: web.Request) -> web.Response:
    return await _decide(request, accept=True)


async def reject_offer(request: web.Request) -> web.Response:
    return await _decide(request, accept=False)


async def _decide(request: web.Request, *, accept: bool) -> web.Response:
    rt = request.app[RUNTIME]
    offer_id = parse_uuid("id", request.match_info["id"])
    done = await rt.store.offers.decide(
        offer_id, accept=accept, outbox=rt.destinations.moved if rt.destinations else None
    )
    if done is None:
        raise NotFound(f"no offer {offer_id}", fields=[FieldError("id", "unknown offer")])
    if done.changed or done.expired:
        rt.metrics.offers(done.offer.queue, result=done.offer.status)
    if done.waited is not None:
        rt.metrics.assign_wait.labels(queue=done.offer.queue).observe(done.waited)
    if not done.changed:
        status = done.offer.status
        raise Conflict(
            f"offer {offer_id} is no longer open: it was {status}",
            fields=[FieldError("id", f"the offer is {status}, not open")],
        )
    body = done.offer.as_json()
    if done.outcome is not None:
        body["state"] = done.outcome.state
    return json_response(body)
