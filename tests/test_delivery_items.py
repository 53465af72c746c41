"""One bad item in a multi-contact delivery: nothing acknowledged or sendable
is lost. Generic adapters refuse the whole delivery before anything is
recorded (the platform reads the answer, fixes the item and resends);
provider adapters replace what PostgreSQL cannot store and route every
message (the provider cannot fix its payload and would redeliver forever).
A failure in the middle of a delivery never stops the items after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.web import create_app
from tests.support import providers
from tests.support.api import Api
from tests.support.examples import example, person, unique
from tests.support.settings import SECRETS, TOKEN, make_settings

META_SECRET = "meta-secret"


@pytest.fixture(scope="module")
async def client(database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    adapters = [
        *({"name": n, "kind": n, "secrets": [s]} for n, s in SECRETS.items()),
        {"name": "meta", "kind": "meta", "secrets": [META_SECRET], "verify_token": "v"},
    ]
    settings = make_settings(database_url, adapters=adapters)
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def recorded(db: asyncpg.Connection, adapter: str, ids: list[str]) -> dict[str, Any]:
    """external id -> the stored contact snapshot, for the ids that have a record."""
    rows = await db.fetch(
        """SELECT k.external_id, c.contact::text AS contact FROM contact_keys k
             JOIN contacts c ON c.contact_id = k.contact_id AND c.received_at = k.received_at
            WHERE k.adapter = $1 AND k.external_id = ANY($2::text[])""",
        adapter,
        ids,
    )
    return {r["external_id"]: orjson.loads(r["contact"]) for r in rows}


def chats(n: int) -> list[dict[str, Any]]:
    return [example("chat", id=unique("chat"), customer=person()) for _ in range(n)]


def whatsapp(ids: list[str], texts: list[str], name: str = "Ana Souza") -> bytes:
    messages = [
        {"from": "5511988887777", "id": i, "timestamp": "1741082399", "type": "text",
         "text": {"body": t}}
        for i, t in zip(ids, texts, strict=True)
    ]  # fmt: skip
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "112233"},
        "contacts": [{"profile": {"name": name}, "wa_id": "5511988887777"}],
        "messages": messages,
    }
    entry = {"id": "2198765", "changes": [{"field": "messages", "value": value}]}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})


async def deliver_meta(client: TestClient[Any, Any], body: bytes) -> Any:
    headers = {**providers.meta(body, META_SECRET), "Content-Type": "application/json"}
    return await client.post("/v1/webhooks/meta", data=body, headers=headers)


async def test_generic_batch_with_a_nul_in_the_middle_records_nothing(
    client: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    api = Api(client)
    batch = chats(3)
    batch[1]["text"] = "before\u0000after"
    batch[1]["customer"]["name"] = "Ann\u0000"
    ids = [c["id"] for c in batch]
    response = await api.deliver("chat", {"contacts": batch})
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "unstorable_value"
    assert {f["field"] for f in body["fields"]} == {"contacts.1.text", "contacts.1.customer.name"}
    assert await recorded(db, "chat", ids) == {}  # all or nothing: the platform can resend
    batch[1]["text"] = "before after"
    batch[1]["customer"]["name"] = "Ann"
    fixed = await api.deliver("chat", {"contacts": batch})
    assert fixed.status == 200, await fixed.text()
    assert [c["duplicate"] for c in (await fixed.json())["contacts"]] == [False] * 3
    assert set(await recorded(db, "chat", ids)) == set(ids)


async def test_meta_messages_with_a_nul_in_the_middle_are_all_routed(
    client: TestClient[Any, Any], db: asyncpg.Connection
) -> None:
    ids = [unique("wamid") for _ in range(3)]
    body = whatsapp(ids, ["first", "sec\u0000ond", "third"], name="Ana\u0000")
    response = await deliver_meta(client, body)
    assert response.status == 200, await response.text()  # Meta must not redeliver
    assert len((await response.json())["contacts"]) == 3
    stored = await recorded(db, "meta", ids)
    assert set(stored) == set(ids)
    assert stored[ids[1]]["text"] == "sec\ufffdond"
    assert stored[ids[1]]["attributes"]["characters_replaced"] is True
    assert stored[ids[0]]["text"] == "first" and stored[ids[2]]["text"] == "third"
    assert all(s["sender_name"] == "Ana\ufffd" for s in stored.values())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    metrics = await (await client.get("/metrics", headers=auth)).text()
    assert 'omniroute_unstorable_values_total{action="replaced",adapter="meta"} 3.0' in metrics
    again = await deliver_meta(client, body)  # a redelivery is answered from the records
    assert [c["duplicate"] for c in (await again.json())["contacts"]] == [True] * 3


@pytest.fixture
async def refusing(db: asyncpg.Connection) -> AsyncIterator[str]:
    """An external id whose record the database refuses with a data error (as a
    value PostgreSQL cannot store would be), whatever the validation let through."""
    refused = unique("refused")
    await db.execute(
        f"""CREATE FUNCTION test_refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.external_id = '{refused}' THEN
                    RAISE EXCEPTION 'refused for the test' USING ERRCODE = '22023';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_key BEFORE INSERT ON contact_keys
                FOR EACH ROW EXECUTE FUNCTION test_refuse_key();"""
    )
    try:
        yield refused
    finally:
        await db.execute(
            "DROP TRIGGER test_refuse_key ON contact_keys; DROP FUNCTION test_refuse_key()"
        )


async def test_a_failure_mid_delivery_does_not_lose_the_items_after_it(
    client: TestClient[Any, Any], db: asyncpg.Connection, refusing: str
) -> None:
    api = Api(client)
    batch = chats(3)
    batch[1]["id"] = refusing
    ids = [c["id"] for c in batch]
    response = await api.deliver("chat", {"contacts": batch})
    assert response.status == 422
    body = await response.json()
    assert [f["field"] for f in body["fields"]] == ["contacts.1"]
    assert set(await recorded(db, "chat", ids)) == {ids[0], ids[2]}

    meta_ids = [unique("wamid"), refusing, unique("wamid")]
    answer = await deliver_meta(client, whatsapp(meta_ids, ["a", "b", "c"]))
    assert answer.status == 200  # Meta discards the answer and would redeliver forever
    assert set(await recorded(db, "meta", meta_ids)) == {meta_ids[0], meta_ids[2]}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    metrics = await (await client.get("/metrics", headers=auth)).text()
    assert 'omniroute_unstorable_values_total{action="rejected",adapter="meta"} 1.0' in metrics
