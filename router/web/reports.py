"""Cross-channel reporting endpoints: ``GET /v1/reports/summary`` and
``GET /v1/customers/{id}/timeline`` (scope ``reports:read``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from router.aggregates import estimate_distinct, merge_sketches, percentiles, rate
from router.models import CHANNELS
from router.store.rollups import COUNTERS, DIMENSIONS
from router.store.summary import INTERVALS, Group, SummaryQuery
from router.web.body import json_response
from router.web.history import page, selection
from router.web.query import bad, check_known, parse_time, parse_uuid, parse_zone
from router.web.state import RUNTIME

SUMMARY_PARAMS = ("since", "until", "interval", "tz", "group_by", *DIMENSIONS)
TIMELINE_PARAMS = ("channel", "since", "until", "cursor", "order", "limit")
DEFAULT_RANGE = timedelta(days=7)
MAX_BUCKETS = 10_000
MAX_RANGE = timedelta(days=3660)
_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def summary_query(q: Any, now: datetime) -> SummaryQuery:
    check_known(q, SUMMARY_PARAMS)
    until = parse_time("until", q["until"]) if "until" in q else now
    since = parse_time("since", q["since"]) if "since" in q else until - DEFAULT_RANGE
    if since >= until:
        raise bad("until" if "until" in q else "since", "must be later than since")
    if until - since > MAX_RANGE:
        raise bad("since", f"the range may span at most {MAX_RANGE.days} days")
    interval = q.get("interval") or None
    if interval is not None:
        if interval not in INTERVALS:
            raise bad("interval", f"must be one of {', '.join(INTERVALS)}")
        if (until - since) / _SPAN[interval] > MAX_BUCKETS:
            raise bad("interval", f"more than {MAX_BUCKETS} buckets; narrow the range")
    tz = q.get("tz", "UTC")
    parse_zone("tz", tz)
    group_by: list[str] = []
    for name in q.get("group_by", "").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in DIMENSIONS:
            raise bad("group_by", f"{name!r} is not one of {', '.join(DIMENSIONS)}")
        if name not in group_by:
            group_by.append(name)
    filters = {}
    for name in DIMENSIONS:
        if name in q:
            if not q[name]:
                raise bad(name, "must not be empty")
            filters[name] = q[name]
    if "channel" in filters and filters["channel"] not in CHANNELS:
        raise bad("channel", f"must be one of {', '.join(CHANNELS)}")
    return SummaryQuery(
        since=since,
        until=until,
        interval=interval,
        tz=tz,
        group_by=tuple(group_by),
        filters=filters,
    )


def metrics(
    counters: dict[str, int], routing_ms_sum: float, latency: list[int], sketch: bytes | None
) -> dict[str, Any]:
    """The figures of one row; definitions in docs/reporting.md."""
    identified = counters["identified"]
    with_outcome = counters["with_outcome"]
    n = counters["routing_n"]
    routing: dict[str, float | None] = {"mean": round(routing_ms_sum / n, 3) if n else None}
    values = percentiles(latency, [q for _, q in PERCENTILES])
    routing.update({name: value for (name, _), value in zip(PERCENTILES, values, strict=True)})
    return {
        "contacts": counters["contacts"],
        "identified": identified,
        "unique_customers": estimate_distinct(sketch),
        "repeat_24h": counters["repeat_24h"],
        "repeat_24h_rate": rate(counters["repeat_24h"], identified),
        "repeat_7d": counters["repeat_7d"],
        "repeat_7d_rate": rate(counters["repeat_7d"], identified),
        "channel_switch": counters["channel_switch"],
        "channel_switch_rate": rate(counters["channel_switch"], identified),
        "with_outcome": with_outcome,
        "answered": counters["answered"],
        "answered_within_sla": counters["answered_within_sla"],
        "sla_share": rate(counters["answered_within_sla"], with_outcome),
        "abandoned": counters["abandoned"],
        "abandoned_share": rate(counters["abandoned"], with_outcome),
        "routing_ms": routing,
    }


def _totals(groups: list[Group]) -> dict[str, Any]:
    counters = {c: sum(g.counters[c] for g in groups) for c in COUNTERS}
    latency = [sum(column) for column in zip(*(g.latency for g in groups), strict=True)]
    return metrics(
        counters,
        sum(g.routing_ms_sum for g in groups),
        latency or [0],
        merge_sketches(g.sketch for g in groups),
    )


async def report_summary(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    query = summary_query(request.query, datetime.now(UTC))
    result = await rt.store.reporting.summarize(query)
    zone = parse_zone("tz", query.tz)
    rows = []
    for g in result.groups:
        row: dict[str, Any] = {}
        if query.interval is not None:
            row["bucket"] = g.bucket.astimezone(zone).isoformat() if g.bucket else None
        row.update(g.keys)
        row.update(metrics(g.counters, g.routing_ms_sum, g.latency, g.sketch))
        rows.append(row)
    return json_response(
        {
            "since": query.since.isoformat(),
            "until": query.until.isoformat(),
            "interval": query.interval,
            "tz": query.tz,
            "group_by": list(query.group_by),
            "filters": query.filters,
            "rows": rows,
            "totals": _totals(result.groups),
            "rolled_up_until": result.rolled_until.isoformat() if result.rolled_until else None,
        }
    )


async def customer_timeline(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    customer_id = parse_uuid("id", request.match_info["id"])
    q = request.query
    check_known(q, TIMELINE_PARAMS)
    body = await page(request, selection(q, customer_id=customer_id))
    if not body["contacts"]:
        # Answered as GET /v1/customers/{id} answers: 404 unknown, 410 merged
        # or erased (their contacts moved to the survivor or an anonymous id).
        await rt.recognition.profiles.require_live(customer_id)
    return json_response({"customer_id": str(customer_id), **body})
