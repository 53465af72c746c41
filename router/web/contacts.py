"""The routed-contact history: ``GET /v1/contacts`` and ``GET /v1/contacts/{id}``."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from router.errors import NotFound
from router.models import CHANNELS
from router.store import contacts as store
from router.store.db import unavailable_as_503
from router.web.body import json_response
from router.web.explain import explanation
from router.web.query import (
    bad,
    check_known,
    decode_cursor,
    encode_cursor,
    parse_bool,
    parse_int,
    parse_time,
    parse_uuid,
)
from router.web.runtime import RUNTIME

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
PARAMS = (*store.FILTERS, "tag", "since", "until", "cursor", "limit")


def summary(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "contact_id": str(row["contact_id"]),
        "received_at": row["received_at"].isoformat(),
        "adapter": row["adapter"],
        "provider": row["provider"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "thread_id": row["thread_id"],
        "customer_id": str(row["customer_id"]) if row["customer_id"] else None,
        "known_customer": row["known_customer"],
        "decision": row["decision"],
        "timings": row["timings"],
    }


async def list_contacts(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    rt.tokens.require(request, "reports:read")
    q = request.query
    check_known(q, PARAMS)
    filters: dict[str, Any] = {}
    for key in store.FILTERS:
        if key in q:
            if not q[key]:
                raise bad(key, "must not be empty")
            filters[key] = q[key]
    if "channel" in filters and filters["channel"] not in CHANNELS:
        raise bad("channel", f"must be one of {', '.join(CHANNELS)}")
    if "customer_id" in filters:
        filters["customer_id"] = parse_uuid("customer_id", filters["customer_id"])
    since = parse_time("since", q["since"]) if "since" in q else None
    until = parse_time("until", q["until"]) if "until" in q else None
    if since and until and since >= until:
        raise bad("until", "must be later than since")
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    after = decode_cursor(q["cursor"]) if "cursor" in q else None
    with unavailable_as_503():
        rows = await store.fetch_page(
            rt.pool,
            filters=filters,
            since=since,
            until=until,
            tag=q.get("tag"),
            after=after,
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1]["received_at"], rows[-1]["contact_id"]) if more else None
    return json_response({"contacts": [summary(r) for r in rows], "next_cursor": cursor})


async def get_contact(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    rt.tokens.require(request, "reports:read")
    contact_id = parse_uuid("id", request.match_info["id"])
    explain = parse_bool("explain", request.query.get("explain", "false"))
    if contact_id.version != 7:
        raise NotFound("no such contact")
    with unavailable_as_503():
        row = await store.fetch_one(rt.pool, contact_id)
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    body = summary(row)
    body.update(contact=row["contact"], context=row["context"], trace=row["trace"])
    if explain:
        body.update(await explanation(rt, row))
    return json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/contacts", list_contacts, allow_head=False)
    app.router.add_get("/v1/contacts/{id}", get_contact, allow_head=False)
