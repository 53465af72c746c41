"""Agents (docs/agents.md): ``PUT /v1/agents/{id}`` (profile),
``PUT /v1/agents/{id}/presence``, ``GET /v1/agents`` (with presence and
load), ``GET /v1/agents/{id}`` (and the work held), ``DELETE
/v1/agents/{id}``. Scopes ``agents:read`` and ``agents:write``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from router.bodies import AGENT_ID_MAX, AGENT_ID_PATTERN, AGENT_ID_RULE, AgentIn, PresenceIn
from router.errors import FieldError, InvalidBody, NotFound
from router.store.agents import PRESENCES, Agent, AgentFilter, AgentProfile, Work
from router.web.body import json_response, read_json
from router.web.query import bad, check_known, parse_int
from router.web.state import PRINCIPAL, RUNTIME

#: One line per change, with who made it (the token's name); never the
#: agent's name, which is personal data.
log = structlog.get_logger("omniroute.agents")

LIST_PARAMS = ("presence", "skill", "level", "cursor", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_AGENT_ID = re.compile(AGENT_ID_PATTERN)


def valid_agent_id(value: str) -> bool:
    return len(value) <= AGENT_ID_MAX and _AGENT_ID.match(value) is not None


def _agent_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not valid_agent_id(value):
        raise bad("id", AGENT_ID_RULE)
    return value


def map_presence(value: str, names: Mapping[str, str]) -> str | None:
    """Our presence for ``value``: one of ours, or a platform's name mapped
    in ``agents.presence_names``; ``None`` when it is neither."""
    if value in PRESENCES:
        return value
    return names.get(value)


def _time(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def agent_json(a: Agent) -> dict[str, Any]:
    return {
        "agent_id": a.agent_id,
        "name": a.name,
        "skills": a.skills,
        "capacity": a.capacity,
        "channel_max": a.channel_max,
        "presence": a.presence,
        "presence_at": _time(a.presence_at),
        "load": {"units": a.load_units, "by_channel": a.load_by_channel},
        "free_capacity": a.free_capacity,
        # idle: holding nothing, since then
        "idle_since": _time(a.idle_since) if a.load_units == 0 else None,
        "last_offer_at": _time(a.last_offer_at),
        "created_at": _time(a.created_at),
        "updated_at": _time(a.updated_at),
    }


def _work(w: Work) -> dict[str, Any]:
    return {
        "contact_id": str(w.contact_id),
        "offer_id": str(w.offer_id),
        "channel": w.channel,
        "units": w.units,
        "state": w.state,
        "since": _time(w.since),
    }


def _unknown(agent_id: str) -> NotFound:
    return NotFound(f"no agent {agent_id}", fields=[FieldError("id", "unknown agent")])


async def put_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    body = await read_json(request, AgentIn)
    profile = AgentProfile(
        agent_id=agent_id,
        name=body.name,
        skills=dict(body.skills),
        capacity=body.capacity,
        channel_max={str(k): v for k, v in body.channel_max.items()},
    )
    done = await request.app[RUNTIME].store.agents.upsert(profile)
    if done.changed:
        log.info(
            "agent_saved",
            agent=agent_id,
            created=done.created,
            actor=request[PRINCIPAL].name,
            woke_assignment=done.notified,
        )
    return json_response(agent_json(done.agent), status=201 if done.created else 200)


async def get_agent(request: web.Request) -> web.Response:
    check_known(request.query, ())
    agent_id = _agent_id(request)
    found = await request.app[RUNTIME].store.agents.one(agent_id)
    if found is None:
        raise _unknown(agent_id)
    return json_response({**agent_json(found.agent), "work": [_work(w) for w in found.work]})


async def list_agents(request: web.Request) -> web.Response:
    q = request.query
    check_known(q, LIST_PARAMS)
    presence = q.get("presence")
    if presence is not None and presence not in PRESENCES:
        raise bad("presence", f"must be one of {', '.join(PRESENCES)}")
    skill = q.get("skill")
    if skill is not None and not 1 <= len(skill) <= 64:
        raise bad("skill", "1 to 64 characters")
    level = parse_int("level", q["level"], low=1, high=5) if "level" in q else 1
    if "level" in q and skill is None:
        raise bad("level", "needs skill")
    after = q.get("cursor")
    if after is not None and not valid_agent_id(after):
        raise bad("cursor", "not a cursor returned by this API")
    limit = parse_int("limit", q["limit"], low=1, high=MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    rows = await request.app[RUNTIME].store.agents.page(
        AgentFilter(presence=presence, skill=skill, level=level, after=after), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "agents": [agent_json(a) for a in rows],
            "next_cursor": rows[-1].agent_id if more else None,
        }
    )


async def put_presence(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    agent_id = _agent_id(request)
    body = await read_json(request, PresenceIn)
    names = rt.settings.agents.presence_names
    presence = map_presence(body.presence, names)
    if presence is None:
        known = [*PRESENCES, *sorted(names)]
        raise InvalidBody(
            f"unknown presence {body.presence!r}",
            fields=[FieldError("presence", f"{body.presence!r} is not one of {', '.join(known)}")],
        )
    done = await rt.store.agents.set_presence(agent_id, presence, at=body.when())
    if done is None:
        raise _unknown(agent_id)
    if done.changed:
        log.info(
            "agent_presence",
            agent=agent_id,
            before=done.previous,
            after=presence,
            actor=request[PRINCIPAL].name,
        )
    return json_response(
        {
            **agent_json(done.agent),
            "previous_presence": done.previous,
            "changed": done.changed,
            "stale": done.stale,
        }
    )


async def delete_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    removed = await request.app[RUNTIME].store.agents.remove(agent_id)
    if removed is None:
        raise _unknown(agent_id)
    log.info("agent_removed", agent=agent_id, actor=request[PRINCIPAL].name)
    return json_response({"agent_id": agent_id, "removed": True})
