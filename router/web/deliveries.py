"""``GET /v1/deliveries`` (the outbox: what was sent to the destinations,
what waits, what died) and ``POST /v1/deliveries/{id}/retry`` (send again)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router.errors import FieldError, NotFound
from router.store.deliveries import STATUSES, Delivery
from router.web.body import json_response
from router.web.query import bad, check_known, decode_cursor, encode_cursor, parse_int, parse_uuid
from router.web.state import RUNTIME

PARAMS = ("status", "destination", "cursor", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _time(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def shown(d: Delivery) -> dict[str, Any]:
    """A delivery as the API shows it; ``id`` is the ``webhook-id`` sent."""
    return {
        "id": str(d.delivery_id),
        "destination": d.destination,
        "type": d.event_type,
        "contact_id": None if d.contact_id is None else str(d.contact_id),
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _time(d.next_attempt_at) if d.status == "pending" else None,
        "last_error": d.last_error,
        "created_at": _time(d.created_at),
        "delivered_at": _time(d.delivered_at),
        "event": d.payload,
    }


async def list_deliveries(request: web.Request) -> web.Response:
    q = request.query
    check_known(q, PARAMS)
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise bad("status", f"must be one of {', '.join(STATUSES)}")
    destination = q.get("destination")
    if destination is not None and not destination:
        raise bad("destination", "must not be empty")
    after = decode_cursor(q["cursor"]) if "cursor" in q else None
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await request.app[RUNTIME].store.outbox.page(
        status=status, destination=destination, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].created_at, rows[-1].delivery_id) if more else None
    dispatcher = request.app[RUNTIME].dispatcher
    circuits = [] if dispatcher is None else dispatcher.paused()
    return json_response(
        {
            "deliveries": [shown(d) for d in rows],
            "next_cursor": cursor,
            "destinations": [
                {
                    "name": c.destination,
                    "state": c.state,
                    "consecutive_failures": c.failures,
                    "paused_until": _time(c.paused_until),
                }
                for c in circuits
            ],
        }
    )


async def retry_delivery(request: web.Request) -> web.Response:
    delivery_id = parse_uuid("id", request.match_info["id"])
    row = await request.app[RUNTIME].store.outbox.retry(delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}", fields=[FieldError("id", "unknown delivery")])
    return json_response(shown(row), status=202)
