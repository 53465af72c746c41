"""The console's pages: sign-in, Live, Contacts (list and one contact),
Deliveries and Summary. Each reads through the same store calls and the same
parsing as the JSON API (``router.web.history``, ``live``, ``deliveries``,
``reports``, ``explain``); the Rules page is ``router.web.console.rules``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiDict

from router.errors import BadQuery, FieldError, Forbidden, NotFound, TooManyRequests, Unauthorized
from router.models import CHANNELS
from router.store.deliveries import STATUSES
from router.store.lifecycle import TERMINAL
from router.store.live import QueueFigures
from router.store.records import FILTERS
from router.web import reports
from router.web.console import charts, sessions
from router.web.console.views import STATIC, render
from router.web.explain import explanation
from router.web.history import STATES, lifecycle, page, selection
from router.web.live import staffing
from router.web.query import parse_contact_id, parse_uuid
from router.web.state import RUNTIME, TOKENS

#: The waiting contacts shown on Live, the longest waiting first.
LIVE_CONTACTS = 100
#: Figures the agents' work adds to the live figures, shown when they carry them.
#: The lifecycle changes the Live page listens for (docs/api.md, the live stream).
LIVE_KINDS = (
    "routed",
    "step",
    "assigned",
    "answered",
    "abandoned",
    "resolved",
    "closed",
    "expired",
    "offered",
    "erased",
    "dropped",
)
#: Static files served, and their types.
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}
SUMMARY_RANGES = {"24h": ("hour", 1), "7d": ("day", 7), "30d": ("day", 30)}


def _filled(query: Any) -> MultiDict[str]:
    """The query without the empty fields a submitted filter form leaves."""
    return MultiDict((k, v) for k, v in query.items() if v.strip())


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# -- signing in and out -----------------------------------------------------------


async def sign_in_form(request: web.Request) -> web.Response:
    target = sessions.safe_next(request.query.get("next"))
    return render(request, "sign_in.html", next=target, error=None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    sessions.check_origin(request)
    form = await request.post()
    token = form.get("token")
    target = sessions.safe_next(str(form.get("next") or ""))
    try:
        principal = request.app[TOKENS].sign_in(
            request, token if isinstance(token, str) else "", "console"
        )
    except (Unauthorized, Forbidden, TooManyRequests) as exc:
        status = 429 if isinstance(exc, TooManyRequests) else 403
        status = 401 if isinstance(exc, Unauthorized) else status
        response = render(request, "sign_in.html", status=status, next=target, error=exc.message)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = _see_other(target)
    await sessions.open_session(request, response, principal.name)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    response = _see_other(sessions.SIGN_IN)
    await sessions.close_session(request, response)
    return response


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    kind = STATIC_FILES.get(name)
    if kind is None:
        raise NotFound(f"no file {name!r}", fields=[FieldError("name", "not a console file")])
    return web.Response(body=(STATIC / name).read_bytes(), content_type=kind, charset="utf-8")


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/console/live")


# -- Live ---------------------------------------------------------------------------


def _by_channel(queues: list[QueueFigures]) -> list[tuple[str, list[QueueFigures]]]:
    out: dict[str, list[QueueFigures]] = {}
    for q in sorted(queues, key=lambda q: (q.channel, q.queue)):
        out.setdefault(q.channel, []).append(q)
    return list(out.items())


async def _live_figures(request: web.Request) -> dict[str, Any]:
    store = request.app[RUNTIME].store
    queues = await store.live.queues()
    waiting = await store.live.contacts(
        state="waiting", queue=None, channel=None, after=None, limit=LIVE_CONTACTS
    )
    return {
        "channels": _by_channel(queues),
        "staffed": await staffing(request.app[RUNTIME], queues),
        "waiting": waiting,
        "waiting_total": sum(q.waiting for q in queues),
        "now": datetime.now(UTC),
    }


async def live(request: web.Request) -> web.Response:
    return render(request, "live.html", kinds=LIVE_KINDS, **await _live_figures(request))


async def live_panel(request: web.Request) -> web.Response:
    """The Live page's figures alone, for the page to swap in when the stream
    reports a change."""
    return render(request, "live_panel.html", **await _live_figures(request))


# -- Contacts -------------------------------------------------------------------------


async def contacts(request: web.Request) -> web.Response:
    query = _filled(request.query)
    error = None
    body: dict[str, Any] = {"contacts": [], "next_cursor": None}
    try:
        body = await page(request, selection(query))
    except BadQuery as exc:
        error = "; ".join(f"{f.field}: {f.reason}" for f in exc.fields) or exc.message
    more = None
    if body["next_cursor"]:
        # the link's query as pairs: the template's urlencode takes a dict or
        # pairs, and a MultiDict is neither (it would iterate its keys)
        more = [(k, v) for k, v in query.items() if k != "cursor"]
        more.append(("cursor", body["next_cursor"]))
    return render(
        request,
        "contacts.html",
        status=400 if error else 200,
        query=query,
        filters=[name for name in FILTERS if name != "channel"],
        channels=CHANNELS,
        states=STATES,
        rows=body["contacts"],
        more=more,
        error=error,
    )


async def contact(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    contact_id = parse_contact_id("id", request.match_info["id"])
    record = await rt.store.records.one(contact_id)
    if record is None:
        raise NotFound(f"no contact {contact_id}", fields=[FieldError("id", "unknown contact")])
    opened = await rt.store.lifecycle.open(contact_id)
    explained = await explanation(rt, record.snapshot)
    delivered = await rt.store.outbox.page(
        status=None, destination=None, after=None, limit=100, contact_id=contact_id
    )
    timeline: list[dict[str, Any]] = []
    if record.customer_id is not None:
        chosen = selection(MultiDict(), customer_id=record.customer_id)
        timeline = (await page(request, chosen))["contacts"]
    return render(
        request,
        "contact.html",
        record=record,
        state=lifecycle(record, opened),
        explanation=explained.get("explanation"),
        explanation_error=explained.get("explanation_error"),
        deliveries=delivered,
        timeline=timeline,
        terminal=TERMINAL,
    )


# -- Deliveries -----------------------------------------------------------------------


async def deliveries(request: web.Request) -> web.Response:
    status = request.query.get("status") or "failed"
    if status not in STATUSES:
        status = "failed"
    rows = await request.app[RUNTIME].store.outbox.page(
        status=status, destination=None, after=None, limit=200
    )
    return render(
        request,
        "deliveries.html",
        rows=rows,
        chosen_status=status,
        statuses=STATUSES,
        retried=request.query.get("retried"),
    )


async def retry(request: web.Request) -> web.StreamResponse:
    delivery_id = parse_uuid("id", request.match_info["id"])
    row = await request.app[RUNTIME].store.outbox.retry(delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}", fields=[FieldError("id", "unknown delivery")])
    raise web.HTTPSeeOther(f"/console/deliveries?retried={delivery_id}")


# -- Summary --------------------------------------------------------------------------


async def summary(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    chosen = request.query.get("range", "7d")
    if chosen not in SUMMARY_RANGES:
        chosen = "7d"
    interval, days = SUMMARY_RANGES[chosen]
    now = datetime.now(UTC)
    query = reports.summary_query(
        MultiDict(
            interval=interval,
            group_by="channel",
            since=(now - timedelta(days=days)).isoformat(),
            until=now.isoformat(),
        ),
        now,
    )
    result = await rt.store.reporting.summarize(query)
    rows = [
        {
            "bucket": g.bucket,
            "channel": g.keys.get("channel"),
            **reports.metrics(g.counters, g.routing_ms_sum, g.latency, g.sketch),
        }
        for g in result.groups
    ]
    figures = charts.series(rows, since=query.since, until=query.until, interval=interval)
    return render(
        request,
        "summary.html",
        range=chosen,
        ranges=list(SUMMARY_RANGES),
        figures=figures,
        charts=[charts.chart(f) for f in figures],
        since=query.since,
        until=query.until,
    )
