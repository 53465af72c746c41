"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from router.bodies import (
    AGENT_ID_MAX,
    AGENT_ID_PATTERN,
    AgentIn,
    CandidateIn,
    EventIn,
    JourneyIn,
    MergeIn,
    PresenceIn,
    ProfileIn,
    PublishIn,
    RepublishIn,
)
from router.models import CHANNELS, TIME_MAX, TIME_MIN

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_JSON_OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}}
_SCHEMAS: dict[str, Any] = {"Error": _ERROR}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON request body described by ``model`` (its schema, and those it
    uses, kept under ``components/schemas``)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _SCHEMAS.update(schema.pop("$defs", {}))
    _SCHEMAS[model.__name__] = schema
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_UUID = {"type": "string", "format": "uuid"}
_CUSTOMER_ID = _path_param("id", _UUID)
_SECURE: dict[str, Any] = {"security": [{"bearer": []}]}
_AGENT_ID = _path_param(
    "id", {"type": "string", "maxLength": AGENT_ID_MAX, "pattern": AGENT_ID_PATTERN}
)
_HISTORY_OK = {
    "200": {
        "description": "a page (JSON), or every matching contact streamed as CSV or NDJSON",
        "content": {
            "application/json": {"schema": {}},
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}
_DIMENSION = {"type": "string"}
#: A time parameter; outside TIME_MIN .. TIME_MAX it is a 400.
_TIME = {"type": "string", "format": "date-time"}
_RANGE = f"; {TIME_MIN:%Y-%m-%dT%H:%M:%SZ} to {TIME_MAX:%Y-%m-%dT%H:%M:%SZ}"
_PAGE = [
    _query("since", _TIME, "from (incl.)" + _RANGE),
    _query("until", _TIME, "to (excl.)" + _RANGE),
    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    _query(
        "order",
        {"type": "string", "enum": ["asc", "desc"]},
        "asc: oldest first; desc: newest first (the default of JSON pages; "
        "CSV and NDJSON exports are oldest first by default)",
    ),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
]

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "omniroute", "version": "1"},
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "paths": {
        "/v1/webhooks/{adapter}": {
            "parameters": [
                {"name": "adapter", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "post": {
                "summary": "Deliver contacts from a platform (signed by the adapter's scheme); "
                "a name that is not configured answers 401 like a wrong signature",
                "requestBody": {"content": {"application/json": {"schema": {}}}},
                "responses": {**_JSON_OK, **_errors(401, 408, 413, 415, 422, 503)},
            },
            "get": {
                "summary": "Provider verification handshake (405 for adapters without one, "
                "and for names that are not configured)",
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 405)},
            },
        },
        "/v1/contacts": {
            "get": {
                "summary": "Routed-contact history, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    _query("channel", {"type": "string", "enum": list(CHANNELS)}, "channel"),
                    _query("queue", {"type": "string"}, "queue"),
                    _query("adapter", {"type": "string"}, "adapter name"),
                    _query("rule", {"type": "string"}, "rule name"),
                    _query("ruleset", {"type": "string"}, "ruleset version"),
                    _query("tag", {"type": "string"}, "decision tag"),
                    _query(
                        "outcome",
                        {"type": "string"},
                        "last reported outcome (or expired); pending: the contacts still waiting",
                    ),
                    _query(
                        "state",
                        {"type": "string", "enum": ["waiting", "assigned", "answered"]},
                        "open contacts in this lifecycle state (docs/lifecycle.md)",
                    ),
                    _query("customer_id", {"type": "string", "format": "uuid"}, "customer"),
                    _query("agent", {"type": "string"}, "the agent it was assigned to"),
                    *_PAGE,
                    _query(
                        "format",
                        {"type": "string", "enum": ["json", "csv", "ndjson"]},
                        "json (default), or a streamed CSV / NDJSON export of every match "
                        "(also chosen by Accept: text/csv, application/x-ndjson); with an "
                        "export, limit is optional and unbounded",
                    ),
                ],
                "responses": {**_HISTORY_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/customers/{id}/timeline": {
            "get": {
                "summary": "A customer's contacts across channels, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    _query("channel", {"type": "string", "enum": list(CHANNELS)}, "channel"),
                    *_PAGE,
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 503)},
            }
        },
        "/v1/reports/summary": {
            "get": {
                "summary": "Contacts, unique customers, repeat and channel-switch rates, SLA "
                "and abandon shares, overflow steps applied and contacts expired, "
                "routing-time percentiles, by time bucket and group",
                "security": [{"bearer": []}],
                "parameters": [
                    _query("since", _TIME, "default until-7d" + _RANGE),
                    _query("until", _TIME, "default now" + _RANGE),
                    _query(
                        "interval",
                        {"type": "string", "enum": ["hour", "day", "week"]},
                        "bucket size; none: one bucket for the range",
                    ),
                    _query(
                        "tz",
                        {"type": "string"},
                        "IANA time zone of the buckets, e.g. Europe/Berlin (default UTC)",
                    ),
                    _query(
                        "group_by",
                        {"type": "string"},
                        "comma-separated: channel, adapter, queue, rule, tier, agent",
                    ),
                    _query("channel", {"type": "string", "enum": list(CHANNELS)}, "filter"),
                    _query("adapter", _DIMENSION, "filter"),
                    _query("queue", _DIMENSION, "filter"),
                    _query("rule", _DIMENSION, "filter"),
                    _query("tier", _DIMENSION, "filter"),
                    _query("agent", _DIMENSION, "filter: the agent the contact was assigned to"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/contacts/{id}": {
            "get": {
                "summary": "One record with its context snapshot and rule trace",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    _query(
                        "explain",
                        {"type": "boolean"},
                        "re-evaluate with the deciding ruleset: each rule tried and why",
                    ),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/v1/contacts/{id}/events": {
            "post": {
                "summary": "Record an outcome event of a routed contact (idempotent on event_id)",
                **_SECURE,
                "parameters": [_path_param("id", _UUID)],
                "requestBody": _body(EventIn),
                "responses": {
                    **_JSON_OK,
                    "201": {"description": "recorded"},
                    **_errors(400, 401, 403, 404, 422, 503),
                },
            }
        },
        "/v1/customers": {
            "post": {
                "summary": "Create or update a customer from a CRM (matched by its identities)",
                **_SECURE,
                "requestBody": _body(ProfileIn),
                "responses": {
                    **_JSON_OK,
                    "201": {"description": "created"},
                    **_errors(400, 401, 403, 422, 503),
                },
            }
        },
        "/v1/customers/{id}": {
            "parameters": [_CUSTOMER_ID],
            "get": {
                "summary": "The unified profile with identities, journeys and recent contacts",
                **_SECURE,
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 503)},
            },
            "put": {
                "summary": "Update a customer's profile and identities",
                **_SECURE,
                "requestBody": _body(ProfileIn),
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 422, 503)},
            },
            "delete": {
                "summary": "Erase a customer's personal data (anonymous aggregates are kept)",
                **_SECURE,
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 503)},
            },
        },
        "/v1/customers/{id}/merge": {
            "post": {
                "summary": "Merge another customer into this one (audited)",
                **_SECURE,
                "parameters": [_CUSTOMER_ID],
                "requestBody": _body(MergeIn),
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 422, 503)},
            }
        },
        "/v1/customers/{id}/journeys/{ref}": {
            "put": {
                "summary": "Open, advance or close one of the customer's journeys",
                **_SECURE,
                "parameters": [
                    _CUSTOMER_ID,
                    _path_param("ref", {"type": "string", "minLength": 1, "maxLength": 128}),
                ],
                "requestBody": _body(JourneyIn),
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 410, 422, 503)},
            }
        },
        "/v1/identity-conflicts": {
            "get": {
                "summary": "Identities claimed by two customers, for review",
                **_SECURE,
                "parameters": [
                    _query(
                        "status",
                        {"type": "string", "enum": ["open", "merged", "dismissed"]},
                        "default open",
                    ),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/rules": {
            "get": {
                "summary": "The active ruleset, how often each rule matched, and the version "
                "every live instance serves",
                "security": [{"bearer": []}],
                "responses": {**_JSON_OK, **_errors(401, 403)},
            }
        },
        "/v1/rules/versions": {
            "get": {
                "summary": "The audit trail of rules publications, newest first: version, "
                "parent, author (the token's name), comment, time; which version is published "
                "and which this instance serves",
                **_SECURE,
                "parameters": [
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            },
            "post": {
                "summary": "Publish rules files (rules.source: database): checked and their "
                "tests run first (422 naming each problem or failing test at its file); 409 "
                "when parent is not the published version, or with rules.source: files",
                **_SECURE,
                "requestBody": _body(PublishIn),
                "responses": {
                    "201": {"description": "published", "content": {"application/json": {}}},
                    **_errors(400, 401, 403, 409, 413, 422, 503),
                },
            },
        },
        "/v1/rules/versions/{version}": {
            "get": {
                "summary": "A stored ruleset version: its files, origin and publications",
                **_SECURE,
                "parameters": [_path_param("version", {"type": "string"})],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/v1/rules/versions/{version}/diff/{other}": {
            "get": {
                "summary": "The unified diff, file by file, from one version to another "
                "(format=text: the diff itself as text)",
                **_SECURE,
                "parameters": [
                    _path_param("version", {"type": "string"}),
                    _path_param("other", {"type": "string"}),
                    _query("format", {"type": "string", "enum": ["json", "text"]}, "default json"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/v1/rules/versions/{version}/publish": {
            "post": {
                "summary": "Publish a stored version again (a rollback), recorded as a new "
                "entry of the audit trail; its tests run again first",
                **_SECURE,
                "parameters": [_path_param("version", {"type": "string"})],
                "requestBody": _body(RepublishIn),
                "responses": {
                    "201": {"description": "published", "content": {"application/json": {}}},
                    **_errors(400, 401, 403, 404, 409, 422, 503),
                },
            }
        },
        "/v1/rules/check": {
            "post": {
                "summary": "Check candidate rules files and run their tests, storing nothing: "
                "ok, the version they would have, errors, warnings and failing tests, each at "
                "its file, line and column",
                **_SECURE,
                "requestBody": _body(CandidateIn),
                "responses": {**_JSON_OK, **_errors(401, 403, 413, 422)},
            }
        },
        "/v1/deliveries": {
            "get": {
                "summary": "Events sent, waiting or given up (dead) for the destinations, "
                "newest first; id is the webhook-id the receiver saw; destinations: each "
                "destination's circuit in the answering instance (closed, open: paused "
                "after failing, half-open: one probe)",
                **_SECURE,
                "parameters": [
                    _query(
                        "status",
                        {"type": "string", "enum": ["pending", "delivered", "failed"]},
                        "failed: given up after the retry horizon",
                    ),
                    _query("destination", {"type": "string"}, "destination name"),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/deliveries/{id}/retry": {
            "post": {
                "summary": "Send an event again now (any status), with the same webhook-id "
                "and a new retry horizon",
                **_SECURE,
                "parameters": [_path_param("id", _UUID)],
                "responses": {
                    "202": {"description": "due now", "content": {"application/json": {}}},
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/v1/live/queues": {
            "get": {
                "summary": "Per queue and channel: waiting, oldest wait, past and near their "
                "SLA, assigned and answered now; assigned, answered and abandoned in the "
                "last 15 minutes; agents available and busy (holding the queue's skills); "
                "and how many agents have each presence",
                **_SECURE,
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/live/contacts": {
            "get": {
                "summary": "The open contacts in a state, the longest waiting first: "
                "decision, current placement, wait so far, next step time",
                **_SECURE,
                "parameters": [
                    _query(
                        "state",
                        {"type": "string", "enum": ["waiting", "assigned", "answered"]},
                        "default waiting",
                    ),
                    _query("queue", {"type": "string"}, "current queue"),
                    _query("channel", _DIMENSION, "channel"),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/live/stream": {
            "get": {
                "summary": "Server-sent events of every lifecycle change of every instance "
                "(routed, step, assigned, answered, abandoned, resolved, closed, expired) and "
                "agents' presence changes (agent.presence); "
                "resumable with the Last-Event-ID header",
                **_SECURE,
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        "description": "the id of the last event received: the missed ones "
                        "are sent first",
                    },
                    _query(
                        "last_event_id",
                        {"type": "string", "pattern": "^[0-9]+$"},
                        "the same as the header, for clients that cannot set it",
                    ),
                ],
                "responses": {
                    "200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                    **_errors(400, 401, 403),
                },
            }
        },
        "/v1/agents": {
            "get": {
                "summary": "Agents in id order, each with its presence, load (units, contacts "
                "per channel), free capacity and idle time (scope agents:read)",
                **_SECURE,
                "parameters": [
                    _query(
                        "presence",
                        {"type": "string", "enum": ["available", "busy", "away", "offline"]},
                        "only agents with this presence",
                    ),
                    _query("skill", {"type": "string", "maxLength": 64}, "only agents with it"),
                    _query(
                        "level",
                        {"type": "integer", "minimum": 1, "maximum": 5},
                        "with skill: at this level or above",
                    ),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/agents/{id}": {
            "parameters": [_AGENT_ID],
            "get": {
                "summary": "One agent, its load and the contacts it holds (offered or assigned)",
                **_SECURE,
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 503)},
            },
            "put": {
                "summary": "Create an agent (offline) or replace its profile: name, skills with "
                "levels 1-5, capacity in units (default 100), per-channel maximums; presence "
                "and load are kept. A capacity under the current load is allowed: no new work "
                "until the load is below it (scope agents:write)",
                **_SECURE,
                "requestBody": _body(AgentIn),
                "responses": {
                    **_JSON_OK,
                    "201": {"description": "created", "content": {"application/json": {}}},
                    **_errors(400, 401, 403, 413, 422, 503),
                },
            },
            "delete": {
                "summary": "Remove an agent; 409 while it holds offered or assigned contacts",
                **_SECURE,
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 409, 503)},
            },
        },
        "/v1/agents/{id}/presence": {
            "parameters": [_AGENT_ID],
            "put": {
                "summary": "Set an agent's presence: available, busy, away, offline or a "
                "platform's name mapped in agents.presence_names, with the optional time of "
                "the change on the platform (a change older than the newest reported is stale "
                "and ignored). Offline agents keep what they hold and get nothing new; the "
                "change goes on the live stream",
                **_SECURE,
                "requestBody": _body(PresenceIn),
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 413, 422, 503)},
            },
        },
        "/v1/offers": {
            "get": {
                "summary": "Offers made to agents, newest first (an agent desktop polls its "
                "open offers with agent and status=offered)",
                **_SECURE,
                "parameters": [
                    _query("agent", {"type": "string", "maxLength": 200}, "agent id"),
                    _query(
                        "status",
                        {
                            "type": "string",
                            "enum": ["offered", "accepted", "rejected", "expired", "cancelled"],
                        },
                        "offered: open, waiting for accept or reject",
                    ),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows"),
                ],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 503)},
            }
        },
        "/v1/offers/{id}/accept": {
            "post": {
                "summary": "Accept an open offer: the contact becomes assigned to the agent "
                "(contact.assigned with the agent); 409 when the offer is no longer open",
                **_SECURE,
                "parameters": [_path_param("id", _UUID)],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 409, 503)},
            }
        },
        "/v1/offers/{id}/reject": {
            "post": {
                "summary": "Reject an open offer: the agent's units are freed, the contact is "
                "offered to the next agent and never to this one again; 409 when the offer "
                "is no longer open",
                **_SECURE,
                "parameters": [_path_param("id", _UUID)],
                "responses": {**_JSON_OK, **_errors(400, 401, 403, 404, 409, 503)},
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": _JSON_OK}},
        "/readyz": {
            "get": {
                "summary": "Readiness",
                "description": "200 when the database answers and a ruleset is loaded. With "
                "database.replica_url, a replica field (state, reads, lag_seconds, lag_bytes, "
                "reason): a replica away or lagging never makes the instance unready",
                "responses": {**_JSON_OK, **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (scope metrics:read, unless metrics.public)",
                "security": [{"bearer": []}, {}],
                "responses": {"200": {"description": "text exposition"}, **_errors(401, 403)},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": _JSON_OK}},
    },
}


def _common_errors() -> None:
    """Answers every operation may give: 429 where a token is checked (too many
    failed attempts from the address), 408 where a body is read (too slow)."""
    for item in SPEC["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if "security" in operation:
                operation["responses"].update(_errors(429))
            if "requestBody" in operation:
                operation["responses"].update(_errors(408))


_common_errors()


def _console_paths() -> dict[str, Any]:
    """The supervisors' console (docs/console.md): HTML pages behind a session
    cookie opened by a sign-in with a token holding scope ``console``; every
    change needs the session's CSRF token and the console's own Origin."""
    html = {"200": {"description": "an HTML page", "content": {"text/html": {}}}}
    moved = {"303": {"description": "done; the page to show next"}}
    cookie: dict[str, Any] = {"security": [{"console_session": []}]}
    page = {**cookie, "responses": {**html, **_errors(400, 401, 403, 404, 503)}}
    form = {"required": True, "content": {"application/x-www-form-urlencoded": {}}}
    change = {
        **cookie,
        "requestBody": form,
        "responses": {**moved, **_errors(401, 403, 404, 408, 503)},
    }
    return {
        "/console/sign-in": {
            "get": {"summary": "The sign-in form", "responses": html},
            "post": {
                "summary": "Sign in with a token holding scope console (form field token; "
                "Origin must be this host); 303 with the session cookie, or the form again "
                "with 401/403/429 (failed attempts are braked per address)",
                "requestBody": form,
                "responses": {**moved, **html, **_errors(401, 403, 408, 429, 503)},
            },
        },
        "/console/sign-out": {"post": {"summary": "End the session", **change}},
        "/console/static/{name}": {
            "parameters": [_path_param("name", {"type": "string"})],
            "get": {
                "summary": "The console's script and stylesheet",
                "responses": {"200": {"description": "a file"}, **_errors(404)},
            },
        },
        "/console": {
            "get": {
                "summary": "Redirects to the Live page",
                **cookie,
                "responses": {**moved, **_errors(401, 403)},
            }
        },  # fmt: skip
        "/console/live": {"get": {"summary": "Live: queues by channel, waiting contacts", **page}},
        "/console/live/panel": {"get": {"summary": "Live's figures alone (HTML)", **page}},
        "/console/live/stream": {
            "get": {
                "summary": "The live stream (as GET /v1/live/stream) for the console's session",
                **cookie,
                "parameters": [
                    _query(
                        "last_event_id",
                        {"type": "string", "pattern": "^[0-9]+$"},
                        "the id of the last event received",
                    )
                ],
                "responses": {
                    "200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                    **_errors(400, 401, 403),
                },
            }
        },
        "/console/contacts": {
            "get": {
                "summary": "Contacts: the history with the filters of GET /v1/contacts",
                **page,
            }
        },
        "/console/contacts/{id}": {
            "parameters": [_path_param("id", _UUID)],
            "get": {
                "summary": "One contact: decision, explanation, overflow steps, deliveries, "
                "the customer's timeline",
                **page,
            },
        },
        "/console/rules": {
            "get": {
                "summary": "Rules: active version, instances, editor, the published versions "
                "(cursor), the diff between two (from, to)",
                **page,
            }
        },
        "/console/rules/candidate": {
            "post": {
                "summary": "Check an edited rules file, run its tests, preview a replay of "
                "the last N days (form fields file, text, days)",
                **cookie,
                "requestBody": form,
                "responses": {**html, **_errors(400, 401, 403, 408, 422, 503)},
            }
        },
        "/console/rules/publish": {
            "post": {
                "summary": "Publish an edited rules file over the files of the version the "
                "editor started from (form fields file, text, parent, comment; the session's "
                "token needs rules:write too; rules.source: database): 303, or the page again "
                "with 400 (no comment), 409 (a newer version was published) or 422 (the "
                "candidate does not load or its tests fail, named)",
                **cookie,
                "requestBody": form,
                "responses": {**moved, **html, **_errors(400, 401, 403, 408, 409, 422, 503)},
            }
        },
        "/console/rules/rollback": {
            "post": {
                "summary": "Publish an earlier version again (form fields version, parent, "
                "comment; rules:write; rules.source: database)",
                **cookie,
                "requestBody": form,
                "responses": {**moved, **html, **_errors(400, 401, 403, 404, 408, 409, 422, 503)},
            }
        },
        "/console/deliveries": {"get": {"summary": "Deliveries by status (failed first)", **page}},
        "/console/deliveries/{id}/retry": {
            "parameters": [_path_param("id", _UUID)],
            "post": {"summary": "Send a delivery again", **change},
        },
        "/console/summary": {"get": {"summary": "Summary charts by channel over time", **page}},
    }


SPEC["paths"].update(_console_paths())
SPEC["components"]["securitySchemes"]["console_session"] = {
    "type": "apiKey",
    "in": "cookie",
    "name": "omniroute_console",
    "description": "the console's session (named __Host-omniroute_console over HTTPS)",
}
