"""Every route of the service, in one table: method, path, handler and the
token scope it needs. ``register`` adds them to the app, each handler behind
its scope check (the caller's token is then ``request[PRINCIPAL]``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from router.settings import Settings
from router.web import (
    agents,
    console,
    customers,
    deliveries,
    events,
    history,
    live,
    offers,
    ops,
    reports,
    versions,
    webhooks,
)
from router.web.auth import Tokens
from router.web.console.sessions import guarded as session_guarded
from router.web.state import PRINCIPAL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    #: the token scope the route needs; ``None``: no token (health, the API
    #: description, and the webhooks, which adapters verify by signature)
    scope: str | None
    #: how the scope is proven: a bearer token, or a console session cookie
    #: (``router.web.console.sessions``: live session, then CSRF and Origin on changes)
    by: Literal["token", "session"] = "token"


#: The webhooks' route, whose ``{adapter}`` each configured adapter also has
#: a path of its own for (``AdapterResource``).
WEBHOOKS = "/v1/webhooks/{adapter}"


def routes(settings: Settings) -> list[Route]:
    """The routes; ``GET`` routes answer no ``HEAD``."""
    return [
        Route("POST", WEBHOOKS, webhooks.deliver, None),
        Route("GET", WEBHOOKS, webhooks.handshake, None),
        Route("GET", "/v1/contacts", history.list_contacts, "reports:read"),
        Route("GET", "/v1/contacts/{id}", history.get_contact, "reports:read"),
        Route("POST", "/v1/contacts/{id}/events", events.post_event, "events:write"),
        Route("POST", "/v1/customers", customers.upsert_customer, "customers:write"),
        Route("GET", "/v1/customers/{id}", customers.get_customer, "customers:read"),
        Route("PUT", "/v1/customers/{id}", customers.put_customer, "customers:write"),
        Route("DELETE", "/v1/customers/{id}", customers.erase_customer, "customers:write"),
        Route("POST", "/v1/customers/{id}/merge", customers.merge_customers, "customers:write"),
        Route("PUT", "/v1/customers/{id}/journeys/{ref}", customers.put_journey, "customers:write"),
        Route("GET", "/v1/customers/{id}/timeline", reports.customer_timeline, "reports:read"),
        Route("GET", "/v1/identity-conflicts", customers.list_conflicts, "customers:read"),
        Route("GET", "/v1/reports/summary", reports.report_summary, "reports:read"),
        Route("GET", "/v1/rules", ops.rules, "rules:read"),
        Route("GET", "/v1/deliveries", deliveries.list_deliveries, "deliveries:read"),
        Route("POST", "/v1/deliveries/{id}/retry", deliveries.retry_delivery, "deliveries:write"),
        Route("GET", "/v1/live/queues", live.live_queues, "live:read"),
        Route("GET", "/v1/live/contacts", live.live_contacts, "live:read"),
        Route("GET", "/v1/live/stream", live.live_stream, "live:read"),
        Route("GET", "/v1/agents", agents.list_agents, "agents:read"),
        Route("GET", "/v1/agents/{id}", agents.get_agent, "agents:read"),
        Route("PUT", "/v1/agents/{id}", agents.put_agent, "agents:write"),
        Route("DELETE", "/v1/agents/{id}", agents.delete_agent, "agents:write"),
        Route("PUT", "/v1/agents/{id}/presence", agents.put_presence, "agents:write"),
        Route("GET", "/v1/offers", offers.list_offers, "agents:read"),
        Route("POST", "/v1/offers/{id}/accept", offers.accept_offer, "agents:write"),
        Route("POST", "/v1/offers/{id}/reject", offers.reject_offer, "agents:write"),
        Route("GET", "/healthz", ops.healthz, None),
        Route("GET", "/readyz", ops.readyz, None),
        Route("GET", "/metrics", ops.metrics, None if settings.metrics.public else "metrics:read"),
        Route("GET", "/openapi.json", ops.openapi, None),
        Route("GET", "/v1/rules/versions", versions.list_versions, "rules:read"),
        Route("POST", "/v1/rules/versions", versions.publish_version, "rules:write"),
        Route("GET", "/v1/rules/versions/{version}", versions.get_version, "rules:read"),
        Route(
            "GET",
            "/v1/rules/versions/{version}/diff/{other}",
            versions.diff_versions,
            "rules:read",
        ),
        Route(
            "POST",
            "/v1/rules/versions/{version}/publish",
            versions.republish_version,
            "rules:write",
        ),
        Route("POST", "/v1/rules/check", versions.check_files, "rules:write"),
        *(Route(m, p, h, s, "session") for m, p, h, s in console.ROUTES),
    ]


class AdapterResource(web.PlainResource):
    """``/v1/webhooks/<name>`` of one configured adapter: matched by the
    path's text, as the router finds it by the whole path first, where
    ``/v1/webhooks/{adapter}`` costs the router a regular expression and
    the lookups of the path's shorter prefixes on every delivery. Its
    ``match_info`` names the adapter as the template's does; any other
    name is still the template's (``webhooks._adapter`` answers it)."""

    def __init__(self, adapter: str) -> None:
        super().__init__(WEBHOOKS.replace("{adapter}", adapter))
        self.adapter = adapter
        self._matched = {"adapter": adapter}

    def _match(self, path: str) -> dict[str, str] | None:
        # the router copies it into the request's match_info
        return self._matched if path == self._path else None


def register(
    app: web.Application, table: list[Route], tokens: Tokens, adapters: Sequence[str] = ()
) -> None:
    """The routes of ``table``; the webhooks' also at a path of each of ``adapters``."""
    own = [AdapterResource(name) for name in adapters]
    for resource in own:
        app.router.register_resource(resource)
    for route in table:
        handler = _guarded(route, tokens)
        app.router.add_route(route.method, route.path, handler)
        if route.path == WEBHOOKS:
            for resource in own:
                resource.add_route(route.method, handler)


def _guarded(route: Route, tokens: Tokens) -> Handler:
    if route.scope is None:
        return route.handler
    handler, scope = route.handler, route.scope
    if route.by == "session":
        return session_guarded(handler, scope)

    async def guarded(request: web.Request) -> web.StreamResponse:
        request[PRINCIPAL] = tokens.require(request, scope)
        return await handler(request)

    return guarded
