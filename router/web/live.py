"""The live view (docs/api.md#live): ``GET /v1/live/queues`` (figures per
queue and channel), ``GET /v1/live/contacts`` (the open contacts, the longest
waiting first) and ``GET /v1/live/stream`` (server-sent events of every
lifecycle change, from every instance, resumable with ``Last-Event-ID``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from router.feed import Subscription
from router.store import Store
from router.store.lifecycle import OPEN_STATES
from router.store.live import Change, Demand, LiveContact, QueueFigures
from router.web.body import json_response
from router.web.query import bad, check_known, decode_cursor, encode_cursor, parse_int
from router.web.state import RUNTIME

CONTACT_PARAMS = ("state", "queue", "channel", "cursor", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: A comment is sent after this many seconds without a change, so that
#: proxies and clients see the connection alive.
HEARTBEAT_SECONDS = 15.0
#: A write the client does not take within this many seconds ends the stream
#: (it resumes with ``Last-Event-ID``).
WRITE_TIMEOUT = 10.0
#: Changes replayed per read of the log.
REPLAY_BATCH = 500


def _time(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _queue(q: QueueFigures) -> dict[str, Any]:
    return {
        "queue": q.queue,
        "channel": q.channel,
        "waiting": q.waiting,
        "oldest_wait_seconds": None
        if q.oldest_wait_seconds is None
        else round(q.oldest_wait_seconds, 3),
        "past_sla": q.past_sla,
        "near_sla": q.near_sla,
        "assigned": q.assigned,
        "answered": q.answered,
        "last_15m": {
            "assigned": q.recent_assigned,
            "answered": q.recent_answered,
            "abandoned": q.recent_abandoned,
        },
    }


async def live_queues(request: web.Request) -> web.Response:
    check_known(request.query, ())
    rt = request.app[RUNTIME]
    figures = await rt.store.live.queues()
    # Agents serve a queue when they hold its declared skills (the active
    # ruleset's); a queue it no longer declares has no agent figures.
    declared = rt.rules.active.queues
    demands = {
        (q.queue, q.channel): Demand(
            declared[q.queue].skills, q.channel, rt.settings.agents.units_of(q.channel)
        )
        for q in figures
        if q.queue in declared
    }
    staffed = dict(zip(demands, await rt.store.live.staffing(list(demands.values())), strict=True))
    rows = []
    for q in figures:
        row = _queue(q)
        s = staffed.get((q.queue, q.channel))
        row["agents"] = None if s is None else {"available": s.available, "busy": s.busy}
        rows.append(row)
    return json_response({"queues": rows, "agents": await rt.store.live.agents()})


def _contact(c: LiveContact) -> dict[str, Any]:
    return {
        "contact_id": str(c.contact_id),
        "received_at": _time(c.received_at),
        "adapter": c.adapter,
        "channel": c.channel,
        "state": c.state,
        "placement": {"queue": c.queue, "priority": c.priority, "skills": list(c.skills)},
        "sla_seconds": c.sla_seconds,
        "wait_seconds": round(c.wait_seconds, 3),
        "next_step": c.step,
        "next_step_at": _time(c.next_step_at),
        "decision": c.decision,
    }


async def live_contacts(request: web.Request) -> web.Response:
    q = request.query
    check_known(q, CONTACT_PARAMS)
    state = q.get("state", "waiting")
    if state not in OPEN_STATES:
        raise bad("state", f"must be one of {', '.join(OPEN_STATES)}")
    for name in ("queue", "channel"):
        if name in q and not q[name]:
            raise bad(name, "must not be empty")
    after = decode_cursor(q["cursor"]) if "cursor" in q else None
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await request.app[RUNTIME].store.live.contacts(
        state=state, queue=q.get("queue"), channel=q.get("channel"), after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].received_at, rows[-1].contact_id) if more else None
    return json_response({"contacts": [_contact(c) for c in rows], "next_cursor": cursor})


def _event(change: Change) -> bytes:
    data = orjson.dumps(change.as_json())
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (change.id, change.kind.encode(), data)


def _last_event_id(request: web.Request) -> int | None:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise bad("Last-Event-ID", "must be the id of an event of this stream")
    return int(value)


async def live_stream(request: web.Request) -> web.StreamResponse:
    check_known(request.query, ("last_event_id",))
    last = _last_event_id(request)
    rt = request.app[RUNTIME]
    sub = rt.feed.subscribe()
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await _stream(response, rt.store, sub, last)
    except (ConnectionResetError, TimeoutError):
        pass  # the client went away or does not read: it resumes by id
    finally:
        rt.feed.unsubscribe(sub)
    return response


async def _write(response: web.StreamResponse, data: bytes) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT):
        await response.write(data)


async def _stream(
    response: web.StreamResponse, store: Store, sub: Subscription, last: int | None
) -> None:
    await _write(response, b": live\nretry: 2000\n\n")
    sent = last
    if last is not None:
        await sub.started(timeout=5.0)  # where the feed starts, when it was idle
    # the changes missed, from the log, up to where the live part starts
    while sent is not None and (sub.start is None or sent < sub.start):
        rows = await store.live.changes(after=sent, upto=sub.start, limit=REPLAY_BATCH)
        if not rows:
            break
        await _write(response, b"".join(_event(c) for c in rows))
        sent = rows[-1].id
    while True:
        changes = await sub.next(HEARTBEAT_SECONDS)
        if changes is None:
            await _write(response, b": heartbeat\n\n")
            continue
        if not changes:
            return  # ended: a slow client, or the server stops
        fresh = [c for c in changes if sent is None or c.id > sent]
        if fresh:
            await _write(response, b"".join(_event(c) for c in fresh))
            sent = fresh[-1].id
