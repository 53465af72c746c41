"""Customer profiles, identity conflicts, merges, erasure and journeys."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from router.errors import FieldError, NotFound, RequestError
from router.identity import normalize_given
from router.models import Identifier, now_ms
from router.schemas import JourneyIn, MergeIn, ProfileIn
from router.store import profiles
from router.store.db import unavailable_as_503
from router.web.body import InvalidBody, json_response, read_json
from router.web.query import check_known, parse_int, parse_uuid
from router.web.runtime import RUNTIME, Runtime


class Gone(RequestError):
    """The customer was merged into another one or erased."""

    status = 410
    code = "gone"


def _identities(rt: Runtime, body: ProfileIn) -> tuple[Identifier, ...]:
    """The body's identities normalized, strongest first; 422 naming any invalid one."""
    normalizer = rt.settings.identity.normalizer()
    given = body.given_identifiers()
    out, bad = normalize_given(given, normalizer)
    if bad:
        raise InvalidBody("an identity is not valid", fields=[FieldError(**b) for b in bad])
    return out


def _customer_id(request: web.Request, name: str = "id") -> uuid.UUID:
    return parse_uuid(name, request.match_info[name])


def gone(exc: profiles.CustomerGone, customer_id: uuid.UUID) -> Gone:
    if exc.merged_into:
        return Gone(
            f"customer {customer_id} was merged into {exc.merged_into}",
            fields=[FieldError("id", f"merged into {exc.merged_into}")],
        )
    return Gone(f"customer {customer_id} was erased", fields=[FieldError("id", "erased")])


def not_found(customer_id: uuid.UUID) -> NotFound:
    return NotFound(f"no customer {customer_id}", fields=[FieldError("id", "unknown customer")])


async def _show(
    rt: Runtime, customer_id: uuid.UUID, status: int = 200, extra: dict[str, Any] | None = None
) -> web.Response:
    try:
        with unavailable_as_503():
            customer = await profiles.fetch(rt.pool, customer_id)
    except profiles.CustomerGone as exc:
        raise gone(exc, customer_id) from None
    if customer is None:
        raise not_found(customer_id)
    return json_response({**customer, **(extra or {})}, status=status)


async def get_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    rt.tokens.require(request, "customers:read")
    return await _show(rt, _customer_id(request))


async def upsert_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = rt.tokens.require(request, "customers:write").name
    body = await read_json(request, ProfileIn)
    identities = _identities(rt, body)
    if not identities:
        raise RequestError(
            "a customer needs a crm_id or at least one identity",
            fields=[FieldError("crm_id", "give crm_id or identities")],
        )
    with unavailable_as_503():
        customer_id, created, conflicts = await profiles.upsert(
            rt.pool, actor=actor, identities=identities, profile=body.profile()
        )
    return await _show(rt, customer_id, 201 if created else 200, {"conflicts": conflicts})


async def put_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = rt.tokens.require(request, "customers:write").name
    customer_id = _customer_id(request)
    body = await read_json(request, ProfileIn)
    try:
        with unavailable_as_503():
            _, _, conflicts = await profiles.upsert(
                rt.pool,
                actor=actor,
                identities=_identities(rt, body),
                profile=body.profile(),
                customer_id=customer_id,
            )
    except profiles.CustomerGone as exc:
        raise gone(exc, customer_id) from None
    except LookupError:
        raise not_found(customer_id) from None
    return await _show(rt, customer_id, extra={"conflicts": conflicts})


async def merge_customers(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = rt.tokens.require(request, "customers:write").name
    into = _customer_id(request)
    body = await read_json(request, MergeIn)
    if body.from_ == into:
        raise RequestError(
            "cannot merge a customer into itself",
            fields=[FieldError("from", "same as the target customer")],
        )
    try:
        with unavailable_as_503():
            moved = await profiles.merge(rt.pool, actor=actor, into=into, source=body.from_)
    except profiles.CustomerGone as exc:
        raise Gone(
            f"a customer of the merge is gone: {exc}",
            fields=[FieldError("from", "merged or erased")],
        ) from None
    except LookupError as exc:
        raise NotFound(
            f"no customer {exc.args[0]}",
            fields=[FieldError("from" if exc.args[0] == body.from_ else "id", "unknown customer")],
        ) from None
    return await _show(rt, into, extra={"merged": {"from": str(body.from_), **moved}})


async def erase_customer(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = rt.tokens.require(request, "customers:write").name
    customer_id = _customer_id(request)
    try:
        with unavailable_as_503():
            details = await profiles.erase(rt.pool, actor=actor, customer_id=customer_id)
    except profiles.CustomerGone as exc:
        raise gone(exc, customer_id) from None
    except LookupError:
        raise not_found(customer_id) from None
    return json_response({"customer_id": str(customer_id), "erased": True, **details})


async def put_journey(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    actor = rt.tokens.require(request, "customers:write").name
    customer_id = _customer_id(request)
    ref = request.match_info["ref"]
    if not 1 <= len(ref) <= 128:
        raise RequestError("bad journey ref", fields=[FieldError("ref", "1 to 128 characters")])
    body = await read_json(request, JourneyIn)
    try:
        with unavailable_as_503():
            journey = await profiles.put_journey(
                rt.pool,
                actor=actor,
                customer_id=customer_id,
                ref=ref,
                type_=body.type,
                step=body.step,
                status=body.status,
                data=body.data,
                at=now_ms(),
            )
    except profiles.CustomerGone as exc:
        raise gone(exc, customer_id) from None
    except LookupError:
        raise not_found(customer_id) from None
    return json_response(journey)


async def list_conflicts(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    rt.tokens.require(request, "customers:read")
    q = request.query
    check_known(q, ("status", "cursor", "limit"))
    status = q.get("status", "open")
    if status not in ("open", "merged", "dismissed"):
        raise RequestError("bad status", fields=[FieldError("status", "open, merged or dismissed")])
    limit = parse_int("limit", q["limit"], low=1, high=1000) if "limit" in q else 100
    after = parse_int("cursor", q["cursor"], low=0, high=2**62) if "cursor" in q else None
    with unavailable_as_503():
        rows = await profiles.conflicts(rt.pool, status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "conflicts": [dict(r) for r in rows],
            "next_cursor": str(rows[-1]["conflict_id"]) if more else None,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/customers", upsert_customer)
    app.router.add_get("/v1/customers/{id}", get_customer, allow_head=False)
    app.router.add_put("/v1/customers/{id}", put_customer)
    app.router.add_delete("/v1/customers/{id}", erase_customer)
    app.router.add_post("/v1/customers/{id}/merge", merge_customers)
    app.router.add_put("/v1/customers/{id}/journeys/{ref}", put_journey)
    app.router.add_get("/v1/identity-conflicts", list_conflicts, allow_head=False)
