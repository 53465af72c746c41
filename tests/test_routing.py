"""The whole path over real HTTP: signed delivery -> customer -> rules ->
record -> answer, for every channel; idempotency; customer recognition."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import orjson

from tests.support.api import Api
from tests.support.examples import EXAMPLES, example, person, unique
from tests.support.settings import ROOT


async def test_every_example_is_routed_and_listed(api: Api) -> None:
    routed = {}
    for channel in ("chat", "email", "voice", "social"):
        payload = example(channel, id=unique(channel))
        response = await api.deliver(channel, payload)
        assert response.status == 200, await response.text()
        body = await response.json()
        [contact] = body["contacts"]
        assert contact["duplicate"] is False
        assert contact["decision"]["queue"]
        assert contact["decision"]["ruleset"]
        routed[channel] = contact
    listing = await (await api.get("/v1/contacts", limit="100")).json()
    listed = {c["contact_id"]: c for c in listing["contacts"]}
    for channel, contact in routed.items():
        record = listed[contact["contact_id"]]
        assert record["channel"] == channel
        assert record["decision"] == contact["decision"]


async def test_retried_delivery_is_a_duplicate_with_the_original_decision(api: Api) -> None:
    payload = example("chat", id=unique("chat"), customer=person())
    first = await (await api.deliver("chat", payload)).json()
    again = await api.deliver("chat", payload)
    assert again.status == 200
    second = await again.json()
    [a], [b] = first["contacts"], second["contacts"]
    assert b["duplicate"] is True
    assert b["contact_id"] == a["contact_id"]
    assert b["decision"] == a["decision"]
    listing = await (await api.get("/v1/contacts", customer_id=a["customer_id"])).json()
    assert len(listing["contacts"]) == 1


async def test_simultaneous_identical_deliveries_write_one_record(api: Api) -> None:
    payload = example("email", id=unique("<mid"), **{"from": {"address": person()["email"]}})
    responses = await asyncio.gather(*(api.deliver("email", payload) for _ in range(8)))
    bodies = [(await r.json())["contacts"][0] for r in responses]
    assert all(r.status == 200 for r in responses)
    assert sum(not b["duplicate"] for b in bodies) == 1
    assert len({b["contact_id"] for b in bodies}) == 1
    listing = await (await api.get("/v1/contacts", customer_id=bodies[0]["customer_id"])).json()
    assert len(listing["contacts"]) == 1


async def test_simultaneous_first_contacts_of_one_person_make_one_customer(api: Api) -> None:
    who = person()
    payloads = [example("chat", id=unique("c"), customer=who) for _ in range(10)]
    responses = await asyncio.gather(*(api.deliver("chat", p) for p in payloads))
    customers = {(await r.json())["contacts"][0]["customer_id"] for r in responses}
    assert len(customers) == 1


async def test_customer_is_recognized_across_channels(api: Api) -> None:
    who = person()
    chat = await (await api.deliver("chat", example("chat", id=unique(), customer=who))).json()
    email = example("email", id=unique("<m"), **{"from": {"address": who["email"].upper()}})
    mail = await (await api.deliver("email", email)).json()
    assert mail["contacts"][0]["customer_id"] == chat["contacts"][0]["customer_id"]
    record = await (await api.get(f"/v1/contacts/{mail['contacts'][0]['contact_id']}")).json()
    context = record["context"]
    assert context["known"] is True
    assert context["contacts_24h"] == 1
    assert context["contacts_7d"] == 1
    assert context["last"]["channel"] == "chat"
    assert context["last"]["queue"] == chat["contacts"][0]["decision"]["queue"]
    assert record["contact"]["identifiers"][0]["value"] == who["email"]


async def test_phone_numbers_are_normalized_to_e164(api: Api) -> None:
    number = "415555" + unique("")[-4:].translate(str.maketrans("abcdef", "123456"))
    first = example("voice", id=unique("call"), caller=f"({number[:3]}) {number[3:6]}-{number[6:]}")
    second = example("voice", id=unique("call"), caller=f"+1{number}")
    a = await (await api.deliver("voice", first)).json()
    b = await (await api.deliver("voice", second)).json()
    assert a["contacts"][0]["customer_id"] == b["contacts"][0]["customer_id"]


async def test_anonymous_caller_is_routed_without_customer(api: Api) -> None:
    payload = example("voice", id=unique("call"), caller="anonymous")
    response = await api.deliver("voice", payload)
    assert response.status == 200
    [contact] = (await response.json())["contacts"]
    assert contact["customer_id"] is None


async def test_batch_of_contacts(api: Api) -> None:
    batch = {"contacts": [example("social", id=unique("s")) for _ in range(3)]}
    body = await (await api.deliver("social", batch)).json()
    assert [c["duplicate"] for c in body["contacts"]] == [False, False, False]


def test_examples_are_valid_json() -> None:
    paths = sorted(Path(ROOT / "examples").glob("*.json"))
    assert {path.stem for path in paths} == set(EXAMPLES)
    for path in paths:
        orjson.loads(path.read_bytes())


async def test_record_carries_repeat_and_channel_switch(api: Api, database_url: str) -> None:
    who = person()
    await api.deliver("chat", example("chat", id=unique(), customer=who))
    email = example("email", id=unique("<m"), **{"from": {"address": who["email"]}})
    body = await (await api.deliver("email", email)).json()
    con = await asyncpg.connect(database_url)
    try:
        row = await con.fetchrow(
            "SELECT repeat_24h, repeat_7d, previous_channel, channel_switch, routing_ms"
            " FROM omniroute.contacts WHERE contact_id = $1",
            uuid.UUID(body["contacts"][0]["contact_id"]),
        )
    finally:
        await con.close()
    assert row["repeat_24h"] and row["repeat_7d"] and row["channel_switch"]
    assert row["previous_channel"] == "chat"
    assert row["routing_ms"] > 0
