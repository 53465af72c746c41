"""The provider destinations against local stand-ins of the providers' APIs:
``twilio-taskrouter`` creates a Task, ``zendesk`` updates the contact's
ticket; each request's path, auth and body as documented, retries on 429
and 5xx, a dead letter at once on another 4xx."""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from router.outbound import zendesk
from router.settings import load_settings
from tests.support.adapters_config import zendesk_adapters
from tests.support.api import routed
from tests.support.apps import app_on, eventually
from tests.support.examples import unique
from tests.support.provider_apis import ProviderApi, provider_api
from tests.support.settings import ROOT

FAST = {"retry_base": 0.05, "retry_max_delay": 0.2, "poll_interval": 0.2}
ACCOUNT = "AC" + "a1" * 16
WORKSPACE = "WS" + "b2" * 16
WORKFLOW = "WW" + "c3" * 16
ZENDESK_SECRET = "sunco-webhook-secret-for-tests"


async def rows_of(db: asyncpg.Connection, contact_id: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM deliveries WHERE contact_id = $1", contact_id)


def name() -> str:
    return unique("dest").lower()


def taskrouter(api: ProviderApi, **options: Any) -> dict[str, Any]:
    return {
        "name": name(),
        "kind": "twilio-taskrouter",
        "account_sid": ACCOUNT,
        "auth_token": "taskrouter-auth-token",
        "workspace_sid": WORKSPACE,
        "workflow_sid": WORKFLOW,
        "base_url": api.url,
        **options,
    }


def zendesk_destination(api: ProviderApi, groups: dict[str, int]) -> dict[str, Any]:
    return {
        "name": name(),
        "kind": "zendesk",
        "base_url": api.url,
        "email": "router@example.com",
        "api_token": "zendesk-api-token",
        "groups": groups,
        "adapters": ["zendesk"],
    }


def all_queues() -> dict[str, int]:
    """A group id for every queue the test rules name."""
    names = set()
    for path in (ROOT / "rules").rglob("*.y*ml"):
        names |= set(re.findall(r"queue: ?([a-z0-9-]+)", path.read_text()))
    return {queue: 360000 + i for i, queue in enumerate(sorted(names))}


async def settled(db: asyncpg.Connection, contact_id: str) -> asyncpg.Record:
    [row] = await eventually(
        lambda: rows_of(db, contact_id),
        lambda rows: len(rows) == 1 and rows[0]["status"] != "pending",
    )
    return row


async def test_a_routed_contact_becomes_a_taskrouter_task(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with provider_api(201) as twilio:
        dest = taskrouter(twilio, task_timeout=3600, task_channels={"chat": "messaging"})
        async with app_on(database_url, destinations=[dest], delivery=FAST) as api:
            contact = await routed(api, "chat")
            row = await settled(db, contact["contact_id"])
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    [call] = twilio.calls
    assert (call.method, call.path) == ("POST", f"/v1/Workspaces/{WORKSPACE}/Tasks")
    assert call.basic == (ACCOUNT, "taskrouter-auth-token")
    form = call.form()
    decision = contact["decision"]
    assert set(form) == {"WorkflowSid", "Attributes", "Priority", "Timeout", "TaskChannel"}
    assert form["WorkflowSid"] == WORKFLOW
    assert form["Priority"] == str(decision["priority"])
    assert form["Timeout"] == "3600"
    assert form["TaskChannel"] == "messaging"
    assert orjson.loads(form["Attributes"]) == {
        "queue": decision["queue"],
        "skills": decision["skills"],
        "priority": decision["priority"],
        "sla_seconds": decision["sla_seconds"],
        "contact_id": contact["contact_id"],
        "customer_id": contact["customer_id"],
        "channel": "chat",
        "external_id": contact["payload"]["id"],
        "tags": decision["tags"],
    }


async def test_taskrouter_retries_429_and_5xx_and_gives_up_on_other_4xx(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with provider_api(201, 429, 503) as busy, provider_api(400) as refusing:
        dests = [taskrouter(busy), taskrouter(refusing)]
        async with app_on(database_url, destinations=dests, delivery=FAST) as api:
            contact = await routed(api, "chat")
            rows = await eventually(
                lambda: rows_of(db, contact["contact_id"]),
                lambda rows: len(rows) == 2 and all(r["status"] != "pending" for r in rows),
            )
            await asyncio.sleep(0.4)  # a dead one gets no more attempts
    by_name = {r["destination"]: r for r in rows}
    ok, dead = by_name[dests[0]["name"]], by_name[dests[1]["name"]]
    assert (ok["status"], ok["attempts"]) == ("delivered", 3)
    assert len(busy.calls) == 3
    assert len({c.body for c in busy.calls}) == 1  # the same task each time
    assert (dead["status"], dead["attempts"], dead["last_error"]) == ("failed", 1, "HTTP 400")
    assert len(refusing.calls) == 1


def zendesk_delivery(ticket: int | None) -> dict[str, Any]:
    doc = orjson.loads((ROOT / "tests/adapters/payloads/zendesk_messages.json").read_bytes())
    event = copy.deepcopy(doc["events"][0])
    event["id"] = uuid.uuid4().hex[:24]
    event["payload"]["message"]["author"]["user"]["externalId"] = unique("crm")
    if ticket is not None:
        event["payload"]["conversation"]["metadata"] = {"ticket_id": ticket}
    return {**doc, "events": [event]}


async def deliver_zendesk(api: Any, ticket: int | None) -> dict[str, Any]:
    answer = await api.client.post(
        "/v1/webhooks/zendesk",
        data=orjson.dumps(zendesk_delivery(ticket)),
        headers={"Content-Type": "application/json", "X-API-Key": ZENDESK_SECRET},
    )
    assert answer.status == 200, await answer.text()
    [contact] = (await answer.json())["contacts"]
    return dict(contact)


async def test_a_zendesk_contact_updates_its_ticket(
    database_url: str, db: asyncpg.Connection
) -> None:
    groups = all_queues()
    async with provider_api(200) as zd:
        dest = zendesk_destination(zd, groups)
        settings = {
            "destinations": [dest],
            "delivery": FAST,
            "adapters": zendesk_adapters(ZENDESK_SECRET),
        }
        async with app_on(database_url, **settings) as api:
            contact = await deliver_zendesk(api, 4242)
            row = await settled(db, contact["contact_id"])
            # a conversation that names no ticket has nothing to update
            without = await deliver_zendesk(api, None)
            skipped = await settled(db, without["contact_id"])
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert orjson.loads(row["payload"])["data"]["ticket_id"] == "4242"
    assert skipped["status"] == "delivered"
    assert "ticket_id" not in orjson.loads(skipped["payload"])["data"]
    [call] = zd.calls
    assert (call.method, call.path) == ("PUT", "/api/v2/tickets/4242.json")
    assert call.basic == ("router@example.com/token", "zendesk-api-token")
    decision = contact["decision"]
    expected: dict[str, Any] = {
        "group_id": groups[decision["queue"]],
        "priority": zendesk.priority(decision["priority"]),
    }
    if decision["tags"]:
        expected["additional_tags"] = decision["tags"]
    assert call.json() == {"ticket": expected}


async def test_zendesk_retries_5xx_and_gives_up_on_an_unknown_ticket(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with provider_api(200, 500) as flaky, provider_api(404) as missing:
        dests = [zendesk_destination(flaky, {}), zendesk_destination(missing, {})]
        settings = {
            "destinations": dests,
            "delivery": FAST,
            "adapters": zendesk_adapters(ZENDESK_SECRET),
        }
        async with app_on(database_url, **settings) as api:
            contact = await deliver_zendesk(api, 77)
            rows = await eventually(
                lambda: rows_of(db, contact["contact_id"]),
                lambda rows: len(rows) == 2 and all(r["status"] != "pending" for r in rows),
            )
    by_name = {r["destination"]: r for r in rows}
    ok, dead = by_name[dests[0]["name"]], by_name[dests[1]["name"]]
    assert (ok["status"], ok["attempts"]) == ("delivered", 2)
    assert [c.path for c in flaky.calls] == ["/api/v2/tickets/77.json"] * 2
    # no group for the queue: the ticket keeps its own
    assert "group_id" not in flaky.calls[0].json()["ticket"]
    assert (dead["status"], dead["attempts"], dead["last_error"]) == ("failed", 1, "HTTP 404")


def test_zendesk_priorities_from_0_to_100() -> None:
    assert [zendesk.priority(p) for p in (0, 24, 25, 49, 50, 74, 75, 100)] == [
        "low", "low", "normal", "normal", "high", "high", "urgent", "urgent",
    ]  # fmt: skip


def test_provider_destinations_are_validated() -> None:
    def load(**dest: Any) -> Any:
        return load_settings(ROOT / "tests" / "empty.yaml", overrides={"destinations": [dest]})

    good = {
        "name": "tr",
        "kind": "twilio-taskrouter",
        "account_sid": ACCOUNT,
        "auth_token": "t",
        "workspace_sid": WORKSPACE,
        "workflow_sid": WORKFLOW,
    }
    dest = load(**good).destinations[0]
    assert dest.base_url == "https://taskrouter.twilio.com"
    assert dest.task_channel("voice") == "voice" and dest.task_channel("social") == "chat"
    with pytest.raises(Exception, match="workflow_sid"):
        load(**{**good, "workflow_sid": "WX123"})
    with pytest.raises(Exception, match="must not be empty"):
        load(**{**good, "auth_token": ""})
    with pytest.raises(Exception, match="not a channel"):
        load(**{**good, "task_channels": {"fax": "fax"}})
    zd = {"name": "zd", "kind": "zendesk", "email": "a@example.com", "api_token": "t"}
    assert load(**zd, subdomain="acme").destinations[0].api_url == "https://acme.zendesk.com"
    with pytest.raises(Exception, match="exactly one of subdomain or base_url"):
        load(**zd)
    with pytest.raises(Exception, match="destinations"):
        load(**{**zd, "kind": "carrier-pigeon", "subdomain": "acme"})
    # a destination without a kind is a webhook, as before
    hook = {"name": "h", "url": "https://example.test/h", "secrets": ["whsec_" + "A" * 40]}
    assert load(**hook).destinations[0].kind == "webhook"
