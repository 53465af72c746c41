"""Provider status callbacks as outcome events, over real HTTP: a Twilio
voice call's status callback (signed as Twilio signs) moves the lifecycle
of every contact of the call through the same code as ``POST
/v1/contacts/{id}/events`` (recorded once, its event delivered to a
destination), a retried callback changes nothing more, and a callback for
a call nobody routed is acknowledged without effect and logged."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from router.web import create_app
from tests.support import providers
from tests.support.apps import eventually
from tests.support.receivers import Receiver, destination, receiver
from tests.support.settings import TOKEN, make_settings
from tests.support.webhooks import form_body

PUBLIC = "https://omniroute.example.com"
PATH = "/v1/webhooks/phone"
ADAPTERS = [{"name": "phone", "kind": "twilio-voice", "secrets": ["twilio-token"]}]


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r


@pytest.fixture
async def client(database_url: str, hooks: Receiver) -> AsyncIterator[TestClient[Any, Any]]:
    settings = make_settings(
        database_url,
        adapters=ADAPTERS,
        http={"public_url": PUBLIC, "host": "127.0.0.1", "port": 0, "max_body_bytes": 1 << 20},
        destinations=[destination(hooks, adapters=["phone"])],
        delivery={"poll_interval": 0.2},
    )
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def call_sid() -> str:
    return "CA" + secrets.token_hex(16)


async def post(
    client: TestClient[Any, Any], fields: dict[str, str], *, token: str = "twilio-token"
) -> Any:
    body = form_body(fields)
    headers = {
        **providers.twilio(PUBLIC + PATH, body, token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return await client.post(PATH, data=body, headers=headers)


def incoming(sid: str, **more: str) -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": "+12025550147",
        "To": "+15005550006",
        "CallStatus": "ringing",
        "Direction": "inbound",
        **more,
    }


def ended() -> datetime:
    """When a test's call ends: after the events the test posts through the
    API (an outcome's latest event wins), in whole seconds as Twilio's ``Timestamp``."""
    return (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)


def status(sid: str, value: str, *, at: datetime | None = None, **more: str) -> dict[str, str]:
    return {
        "CallSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "CallStatus": value,
        "Direction": "inbound",
        "From": "+12025550147",
        "To": "+15005550006",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
        "Timestamp": format_datetime(at or ended()),
        **more,
    }


async def contact(client: TestClient[Any, Any], contact_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/contacts/{contact_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def routed_call(client: TestClient[Any, Any], db: asyncpg.Connection, sid: str) -> list[str]:
    """Route the call, then its IVR answer (a second contact of the call): their ids."""
    assert (await post(client, incoming(sid))).status == 200
    ivr = await post(client, incoming(sid, Digits="2", CallStatus="in-progress"))
    assert ivr.status == 200, await ivr.text()
    rows = await db.fetch(
        "SELECT contact_id FROM contacts WHERE thread_id = $1 ORDER BY received_at", sid
    )
    assert len(rows) == 2
    return [str(r["contact_id"]) for r in rows]


async def test_a_call_that_ended_unanswered_abandons_every_contact_of_the_call(
    client: TestClient[Any, Any], db: asyncpg.Connection, hooks: Receiver
) -> None:
    sid = call_sid()
    ids = await routed_call(client, db, sid)
    for contact_id in ids:
        assert (await contact(client, contact_id))["lifecycle"]["state"] == "waiting"
    at = ended()
    answer = await post(client, status(sid, "no-answer", at=at))
    assert answer.status == 200, await answer.text()
    assert answer.content_type == "text/xml"  # what Twilio expects, with nothing in it
    assert "<Enqueue" not in await answer.text()
    for contact_id in ids:
        shown = await contact(client, contact_id)
        assert shown["lifecycle"]["state"] == "abandoned", shown["lifecycle"]
        assert shown["outcome"] == "abandoned"
    events = await db.fetch(
        "SELECT contact_id, event_id, type, at, data->>'call_status' AS call_status "
        "FROM contact_events WHERE contact_id = ANY($1::uuid[])",
        ids,
    )
    assert sorted(str(e["contact_id"]) for e in events) == sorted(ids)
    assert {(e["event_id"], e["type"]) for e in events} == {(f"{sid}:no-answer", "abandoned")}
    assert {e["at"] for e in events} == {at}
    assert {e["call_status"] for e in events} == {"no-answer"}
    # delivered like any outcome event: contact.abandoned for each contact
    await eventually(lambda: _types(hooks), lambda types: types.count("contact.abandoned") == 2)
    # Twilio retries a callback it got no 2xx for: the same one changes nothing more
    again = await post(client, status(sid, "no-answer", at=at))
    assert again.status == 200
    n = await db.fetchval(
        "SELECT count(*) FROM contact_events WHERE contact_id = ANY($1::uuid[])", ids
    )
    assert n == 2
    outbox = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE contact_id = ANY($1::uuid[]) "
        "AND event_type = 'contact.abandoned'",
        ids,
    )
    assert outbox == 2


async def _types(r: Receiver) -> list[str]:
    return [x.json()["type"] for x in r.received]


async def test_a_completed_call_closes_its_contacts_and_no_event_moves_them_back(
    client: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    sid = call_sid()
    ids = await routed_call(client, db, sid)
    # the platform reported the answer through the API before the call ended
    r = await client.post(
        f"/v1/contacts/{ids[1]}/events",
        json={"type": "answered", "agent": "a-7"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status == 201, await r.text()
    answer = await post(client, status(sid, "completed", CallDuration="184"))
    assert answer.status == 200
    for contact_id in ids:
        shown = await contact(client, contact_id)
        assert shown["lifecycle"]["state"] == "closed", shown["lifecycle"]
    second = await contact(client, ids[1])
    assert second["agent"] == "a-7" and second["answered_at"] is not None
    row = await db.fetchrow(
        "SELECT type, (data->>'call_duration')::int AS duration FROM contact_events "
        "WHERE contact_id = $1 AND event_id = $2",
        ids[0],
        f"{sid}:completed",
    )
    assert (row["type"], row["duration"]) == ("closed", 184)


async def test_callbacks_that_are_no_outcome_or_name_no_contact_change_nothing(
    client: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    sid = call_sid()
    ids = await routed_call(client, db, sid)
    # a <Dial> action callback: its CallStatus is the parent call's, not an end
    dial = await post(client, status(sid, "completed", DialCallStatus="no-answer"))
    assert dial.status == 200
    # a progress callback: the call is still going
    ringing = await post(client, status(sid, "in-progress"))
    assert ringing.status == 200
    for contact_id in ids:
        assert (await contact(client, contact_id))["lifecycle"]["state"] == "waiting"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM contact_events WHERE contact_id = ANY($1::uuid[])", ids
        )
        == 0
    )
    # a call nobody routed: acknowledged, logged, nothing written
    stranger = call_sid()
    with capture_logs() as logs:
        unknown = await post(client, status(stranger, "busy"))
    assert unknown.status == 200, await unknown.text()
    [line] = [x for x in logs if x["event"] == "provider_outcome_unmatched"]
    assert (line["thread_id"], line["type"], line["contacts"]) == (stranger, "abandoned", 0)
    # and a callback that is not Twilio's is refused before anything
    forged = await post(client, status(sid, "canceled"), token="not-the-token")
    assert forged.status == 401
    for contact_id in ids:
        assert (await contact(client, contact_id))["lifecycle"]["state"] == "waiting"
