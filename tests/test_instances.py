"""Several instances on one database: each lists itself and the others with
the ruleset it serves, a rules change reaches every instance, idempotency and
customer recognition hold across instances — in one process (two apps) and
across ``omniroute serve`` processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bench.faults import RULESET_HEADER, Omniroute, copy_rules, edit_rules, verify
from tests.support.api import Api
from tests.support.apps import app_on, eventually, needs_rules_engine, platform, served_version
from tests.support.examples import example, person, unique
from tests.support.settings import TOKEN

Pair = tuple[Api, Api, Path, Path]


@pytest.fixture
async def pair(database_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two apps on the test database, each watching its own copy of the rules."""
    rules_a, rules_b = copy_rules(tmp_path / "a"), copy_rules(tmp_path / "b")
    async with (
        app_on(database_url, rules={"paths": [str(rules_a)], "watch": True}) as a,
        app_on(database_url, rules={"paths": [str(rules_b)], "watch": True}) as b,
    ):
        yield a, b, rules_a, rules_b


async def instances(api: Api) -> dict[str, dict[str, Any]]:
    """The live instances an app lists in ``GET /v1/rules``, by instance id."""
    body = await (await api.get("/v1/rules")).json()
    return {i["instance_id"]: i for i in body["instances"]}


async def instance_id(api: Api) -> str:
    return str((await (await api.client.get("/readyz")).json())["instance_id"])


async def test_each_instance_lists_every_live_instance_and_its_ruleset(pair: Pair) -> None:
    a, b, _, _ = pair
    id_a, id_b = await instance_id(a), await instance_id(b)
    version = await served_version(a)
    assert version == await served_version(b)
    for api, me in ((a, id_a), (b, id_b)):
        listed = await instances(api)
        assert {id_a, id_b} <= set(listed)
        assert listed[me]["self"] is True
        assert listed[id_a]["ruleset"] == listed[id_b]["ruleset"] == version
        assert listed[id_a]["port"] == a.client.port
        assert listed[id_b]["port"] == b.client.port
    response = await a.deliver("chat", example("chat", id=unique()))
    assert response.headers[RULESET_HEADER] == version


async def test_a_stopped_instance_leaves_the_list(database_url: str, pair: Pair) -> None:
    a = pair[0]
    async with app_on(database_url) as c:
        id_c = await instance_id(c)
        assert id_c in await instances(a)
    assert id_c not in await instances(a)


@needs_rules_engine
async def test_a_rules_change_reaches_each_instance(pair: Pair) -> None:
    a, b, rules_a, rules_b = pair
    id_a, id_b = await instance_id(a), await instance_id(b)
    before = await served_version(a)

    marker = unique("change")
    edit_rules(rules_a, marker)  # deployed to A first …
    after = await eventually(lambda: served_version(a), lambda v: v != before)
    assert await served_version(b) == before
    listed = await eventually(lambda: instances(b), lambda i: i[id_a]["ruleset"] == after)
    assert listed[id_b]["ruleset"] == before

    edit_rules(rules_b, marker)  # … then to B: the same files, the same version
    await eventually(lambda: served_version(b), lambda v: v == after)
    listed = await eventually(lambda: instances(a), lambda i: i[id_b]["ruleset"] == after)
    assert listed[id_a]["ruleset"] == after
    response = await b.deliver("chat", example("chat", id=unique()))
    assert response.headers[RULESET_HEADER] == after
    assert (await response.json())["contacts"][0]["decision"]["ruleset"] == after


async def test_a_retry_to_the_other_instance_is_a_duplicate(pair: Pair) -> None:
    a, b, _, _ = pair
    payload = example("chat", id=unique(), customer=person())
    first = (await (await a.deliver("chat", payload)).json())["contacts"][0]
    response = await b.deliver("chat", payload)
    assert response.status == 200
    again = (await response.json())["contacts"][0]
    assert again["duplicate"] is True
    assert again["contact_id"] == first["contact_id"]
    assert again["customer_id"] == first["customer_id"]
    assert again["decision"] == first["decision"]


async def test_simultaneous_delivery_to_both_writes_one_record(
    pair: Pair, database_url: str
) -> None:
    a, b, _, _ = pair
    payload = example("email", id=unique("<m"), **{"from": {"address": person()["email"]}})
    responses = await asyncio.gather(
        *(api.deliver("email", payload) for api in (a, b) * 6)  # interleaved A, B, A, …
    )
    assert all(r.status == 200 for r in responses)
    bodies = [(await r.json())["contacts"][0] for r in responses]
    assert sum(not body["duplicate"] for body in bodies) == 1
    assert len({body["contact_id"] for body in bodies}) == 1
    assert len({str(body["decision"]) for body in bodies}) == 1
    assert await count_records(database_url, "email", payload["id"]) == 1


async def test_first_contacts_split_across_instances_make_one_customer(pair: Pair) -> None:
    a, b, _, _ = pair
    who = person()
    payloads = [example("chat", id=unique(), customer=who) for _ in range(12)]
    responses = await asyncio.gather(
        *((a if n % 2 else b).deliver("chat", p) for n, p in enumerate(payloads))
    )
    assert all(r.status == 200 for r in responses)
    customers = {(await r.json())["contacts"][0]["customer_id"] for r in responses}
    assert len(customers) == 1


async def count_records(database_url: str, adapter: str, external_id: str) -> int:
    con = await asyncpg.connect(database_url)
    try:
        count: int = await con.fetchval(
            "SELECT count(*) FROM omniroute.contacts WHERE adapter = $1 AND external_id = $2",
            adapter,
            external_id,
        )
        return count
    finally:
        await con.close()


async def test_two_serve_processes_share_one_database(
    processes: Callable[..., Omniroute], database_url: str
) -> None:
    servers = [processes(), processes()]
    await asyncio.gather(*(s.ready() for s in servers))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def get(server: Omniroute, path: str) -> Any:
            async with session.get(server.url + path) as r:
                assert r.status == 200, await r.text()
                return await r.json()

        ids = [(await get(s, "/readyz"))["instance_id"] for s in servers]
        versions = {(await get(s, "/readyz"))["ruleset"] for s in servers}
        assert len(versions) == 1
        listed = {i["instance_id"]: i for i in (await get(servers[0], "/v1/rules"))["instances"]}
        assert set(ids) <= set(listed)
        assert {listed[i]["pid"] for i in ids} == {s.proc.pid for s in servers if s.proc}

    # Load spread over both, each retry to the other one.
    load = platform(*(s.url for s in servers))
    await load.run_for(1.5, concurrency=6, give_up_after=20)
    verdict = await verify(database_url, load)
    assert verdict.ok, verdict.line()
    assert verdict.acknowledged == verdict.deliveries > 0
    assert verdict.records == verdict.deliveries

    # One delivery sent to both at once, and first contacts of one new person
    # split across both (give_up=0: one attempt each, the n-th to server n % 2).
    burst = platform(*(s.url for s in servers))
    payload = example("chat", id=f"{burst.run}-once", customer=person())
    copies = [burst.add("chat", payload) for _ in range(6)]
    who = person()
    firsts = [
        burst.add("chat", example("chat", id=f"{burst.run}-{n}", customer=who)) for n in range(8)
    ]
    async with aiohttp.ClientSession() as session:
        sent = enumerate(copies + firsts)
        await asyncio.gather(*(burst.send(session, d, n, give_up=0) for n, d in sent))
    answers = [d.answer for d in copies if d.answer is not None]
    assert len(answers) == len(copies)
    assert sum(not answer["duplicate"] for answer in answers) == 1
    assert len({answer["contact_id"] for answer in answers}) == 1
    assert await count_records(database_url, "chat", payload["id"]) == 1
    assert len({d.answer["customer_id"] for d in firsts if d.answer}) == 1
    assert all(d.answer for d in firsts)
