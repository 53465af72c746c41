"""The routed-contact history: ``GET /v1/contacts`` (JSON pages, or a CSV /
NDJSON export) and ``GET /v1/contacts/{id}``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from router.errors import NotFound
from router.models import CHANNELS
from router.store import ContactSummary, Selection
from router.store.lifecycle import TERMINAL, OpenContact
from router.store.records import FILTERS
from router.web import export
from router.web.body import json_response
from router.web.explain import assignment, explanation
from router.web.query import (
    bad,
    check_known,
    decode_cursor,
    encode_cursor,
    parse_bool,
    parse_contact_id,
    parse_int,
    parse_time,
    parse_uuid,
)
from router.web.state import RUNTIME

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
PARAMS = (*FILTERS, "state", "tag", "since", "until", "cursor", "order", "limit", "format")
ORDERS = {"asc": True, "desc": False}
#: ``state=``: the open contacts in that lifecycle state (docs/lifecycle.md)
STATES = ("waiting", "assigned", "answered")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def summary(row: ContactSummary) -> dict[str, Any]:
    """A record as the history API lists it: the decision and timings as
    objects, the reporting and outcome columns flat (named as in the view)."""
    return {
        "contact_id": str(row.contact_id),
        "received_at": row.received_at.isoformat(),
        "adapter": row.adapter,
        "provider": row.provider,
        "channel": row.channel,
        "external_id": row.external_id,
        "thread_id": row.thread_id,
        "customer_id": str(row.customer_id) if row.customer_id else None,
        "known_customer": row.known_customer,
        "decision": row.decision,
        "timings": row.timings,
        "tier": row.tier,
        "repeat_24h": row.repeat_24h,
        "repeat_7d": row.repeat_7d,
        "previous_channel": row.previous_channel,
        "channel_switch": row.channel_switch,
        "context_degraded": row.context_degraded,
        "routing_ms": row.routing_ms,
        "outcome": row.outcome,
        "agent": row.agent,
        "assigned_at": _iso(row.assigned_at),
        "answered_at": _iso(row.answered_at),
        "abandoned_at": _iso(row.abandoned_at),
        "resolved_at": _iso(row.resolved_at),
        "closed_at": _iso(row.closed_at),
        "sla_met": row.sla_met,
        "rollout": row.rollout,
        "offers_made": row.offers_made,
        "offered_at": _iso(row.offered_at),
        "wait_to_assign_ms": wait_to_assign_ms(row.received_at, row.assigned_at),
    }


def wait_to_assign_ms(received_at: datetime, assigned_at: datetime | None) -> float | None:
    """Milliseconds from receipt to assignment, as the BI view computes it
    (never negative: a platform's clock may run behind ours)."""
    if assigned_at is None:
        return None
    return round(max((assigned_at - received_at).total_seconds() * 1000, 0.0), 3)


def lifecycle(record: ContactSummary, opened: OpenContact | None) -> dict[str, Any]:
    """The contact's lifecycle: its state and, while it is open, where it is
    now (after any overflow steps), its next step and when it expires."""
    if opened is not None:
        return {
            "state": opened.state,
            "queue": opened.queue,
            "priority": opened.priority,
            "skills": opened.skills,
            "next_step": opened.step if opened.next_step_at is not None else None,
            "next_step_at": _iso(opened.next_step_at),
            "expires_at": opened.expires_at.isoformat(),
        }
    state = record.outcome if record.outcome in TERMINAL else None
    return {"state": state}


def selection(
    q: MultiMapping[str], *, customer_id: uuid.UUID | None = None, ascending: bool = False
) -> Selection:
    """The filters, time range, order and cursor of a history query; 400
    naming the parameter when one is bad. ``order=asc|desc`` overrides the
    default order, ``ascending`` (oldest first) or newest first."""
    filters: dict[str, Any] = {}
    for key in FILTERS:
        if key in q:
            if not q[key]:
                raise bad(key, "must not be empty")
            filters[key] = q[key]
    state = q.get("state")
    if state is not None and state not in STATES:
        raise bad("state", f"must be one of {', '.join(STATES)}")
    if filters.get("outcome") == "pending":  # no outcome yet: the contacts still waiting
        del filters["outcome"]
        if state not in (None, "waiting"):
            raise bad("outcome", "pending means state=waiting")
        state = "waiting"
    if "channel" in filters and filters["channel"] not in CHANNELS:
        raise bad("channel", f"must be one of {', '.join(CHANNELS)}")
    if "customer_id" in filters:
        filters["customer_id"] = parse_uuid("customer_id", filters["customer_id"])
    if customer_id is not None:
        filters["customer_id"] = customer_id
    if "tag" in q and not q["tag"]:
        raise bad("tag", "must not be empty")
    since = parse_time("since", q["since"]) if "since" in q else None
    until = parse_time("until", q["until"]) if "until" in q else None
    if since and until and since >= until:
        raise bad("until", "must be later than since")
    after = decode_cursor(q["cursor"]) if "cursor" in q else None
    if "order" in q:
        if q["order"] not in ORDERS:
            raise bad("order", "must be asc (oldest first) or desc (newest first)")
        ascending = ORDERS[q["order"]]
    return Selection(
        filters=filters,
        since=since,
        until=until,
        tag=q.get("tag"),
        after=after,
        ascending=ascending,
        state=state,
    )


async def page(request: web.Request, chosen: Selection) -> dict[str, Any]:
    """One page of ``chosen``: ``contacts`` and ``next_cursor``."""
    q = request.query
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await request.app[RUNTIME].store.records.page(chosen, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].received_at, rows[-1].contact_id) if more else None
    return {"contacts": [summary(r) for r in rows], "next_cursor": cursor}


async def list_contacts(request: web.Request) -> web.StreamResponse:
    q = request.query
    check_known(q, PARAMS)
    fmt = export.negotiate(request)
    if fmt == "json":
        return json_response(await page(request, selection(q)))
    # A file is chronological unless asked otherwise; it also reads the
    # table forwards, which is what the disk's read-ahead serves fastest.
    return await export.stream(request, selection(q, ascending=True), fmt)


async def get_contact(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    contact_id = parse_contact_id("id", request.match_info["id"])
    explain = parse_bool("explain", request.query.get("explain", "false"))
    record = await rt.store.records.one(contact_id)
    if record is None:
        raise NotFound(f"no contact {contact_id}")
    body = summary(record)
    opened = await rt.store.lifecycle.open(contact_id)
    body.update(
        lifecycle=lifecycle(record, opened),
        steps=record.steps,
        contact=record.contact,
        context=record.context,
        trace=record.trace,
    )
    if explain:
        body.update(await explanation(rt, record.snapshot))
        body.update(await assignment(rt, contact_id))
    return json_response(body)
