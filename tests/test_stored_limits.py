"""What a delivery or an API body may store is bounded (router/models.py,
docs/adapters.md): a value over a limit is a 422 naming the field -- never a
500 that every retry of the platform meets again -- and a value at the limit
is stored and read back as it was sent."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.models import (
    ID_MAX,
    IDENTIFIER_VALUE_MAX,
    JSON_BYTES_MAX,
    JSON_DEPTH_MAX,
    JSON_KEY_MAX,
    JSON_VALUES_MAX,
)
from router.web import create_app
from tests.support.api import Api
from tests.support.examples import example, unique
from tests.support.settings import TOKEN, make_settings


def nested(levels: int) -> dict[str, Any]:
    """An attributes object whose containers nest ``levels`` deep (itself included)."""
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


def nested_raw(levels: int) -> bytes:
    """``nested(levels)`` as JSON, for depths the JSON encoder refuses."""
    return b'{"d":' * (levels - 1) + b'{"leaf":"x"}' + b"}" * (levels - 1)


def chat(attributes: Any = None, **changes: Any) -> dict[str, Any]:
    payload = example("chat", **{"id": unique("c"), **changes})
    del payload["page_url"]  # the adapter would add it to the attributes
    if attributes is not None:
        payload["attributes"] = attributes
    return payload


async def deliver_raw(
    api: Api, adapter: str, payload: dict[str, Any], **raw: bytes
) -> ClientResponse:
    """Deliver ``payload`` with the JSON of some values given as bytes."""
    body = orjson.dumps(payload)
    for marker, value in raw.items():
        body = body.replace(orjson.dumps(marker), value)
    return await api.deliver(adapter, None, raw=body)


async def refused(response: ClientResponse, field: str, code: str = "invalid_payload") -> str:
    text = await response.text()
    assert response.status == 422, text
    body = await response.json()
    assert body["error"] == code
    assert field in [f["field"] for f in body["fields"]], text
    return text


# -- the reported deliveries ------------------------------------------------------


async def test_an_email_reference_too_long_to_index_is_refused(api: Api) -> None:
    reference = "<" + secrets.token_hex(1500) + "@mail.example.com>"  # 3,020 characters
    payload = example("email", id=unique("<m"), references=[reference])
    for _ in range(2):  # a retry gets the same answer, not a 500
        await refused(await api.deliver("email", payload), "references.0")


@pytest.mark.parametrize("levels", [500, 1000])
async def test_attributes_nested_hundreds_of_levels_are_refused(api: Api, levels: int) -> None:
    response = await deliver_raw(api, "chat", chat("@deep"), **{"@deep": nested_raw(levels)})
    await refused(response, "attributes")
    batch = {"contacts": [chat(), chat("@deep")]}
    response = await deliver_raw(api, "chat", batch, **{"@deep": nested_raw(levels)})
    await refused(response, "contacts.1.attributes")


async def test_attributes_the_adapter_adds_to_count_against_the_limit(api: Api) -> None:
    # 1,000 attributes are allowed in the payload; the email adapter adds
    # "attachments" and "to", and the contact itself is over the limit.
    attributes = {f"a{i}": i for i in range(JSON_VALUES_MAX)}
    payload = example("email", id=unique("<m"), attributes=attributes)
    await refused(await api.deliver("email", payload), "attributes")


async def send_raw(api: Api, method: str, path: str, body: bytes) -> ClientResponse:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return await api.client.request(method, path, data=body, headers=headers)


async def test_api_bodies_are_held_to_the_same_limits(api: Api) -> None:
    crm = unique("crm")
    customer = (await api.json("POST", "/v1/customers", {"crm_id": crm}, status=201))["customer_id"]
    contact = (await (await api.deliver("chat", chat())).json())["contacts"][0]["contact_id"]
    for levels in (JSON_DEPTH_MAX + 1, 1000):  # once encodable, once not
        for method, path, body, field in (
            ("POST", "/v1/customers", {"crm_id": crm, "attributes": "@"}, "attributes"),
            ("PUT", f"/v1/customers/{customer}", {"attributes": "@"}, "attributes"),
            ("PUT", f"/v1/customers/{customer}/journeys/j1", {"type": "t", "data": "@"}, "data"),
            ("POST", f"/v1/contacts/{contact}/events", {"type": "answered", "data": "@"}, "data"),
        ):
            raw = orjson.dumps(body).replace(b'"@"', nested_raw(levels))
            await refused(await send_raw(api, method, path, raw), field, "invalid_body")


# -- at the limits: stored and read back --------------------------------------


@pytest.fixture(scope="module")
async def roomy(database_url: str) -> AsyncIterator[Api]:
    """The app with a 1 MB body limit, so attributes of 64 kB fit in a delivery."""
    settings = make_settings(
        database_url, http={"host": "127.0.0.1", "port": 0, "max_body_bytes": 1024 * 1024}
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield Api(client)


def big_string(size: int) -> dict[str, Any]:
    """``{"s": "aaa…"}`` that is ``size`` bytes as JSON."""
    return {"s": "a" * (size - len('{"s":""}'))}


#: (at the limit, just over it) for each bound of the attributes.
ATTRIBUTES = {
    "depth": (nested(JSON_DEPTH_MAX), nested(JSON_DEPTH_MAX + 1)),
    "values": (
        {f"k{i}": None for i in range(JSON_VALUES_MAX)},
        {f"k{i}": None for i in range(JSON_VALUES_MAX + 1)},
    ),
    "values-in-lists": (
        {"l": list(range(JSON_VALUES_MAX - 1))},
        {"l": list(range(JSON_VALUES_MAX))},
    ),
    "key": ({"k" * JSON_KEY_MAX: 1}, {"k" * (JSON_KEY_MAX + 1): 1}),
    "bytes": (big_string(JSON_BYTES_MAX - 1), big_string(JSON_BYTES_MAX + 16)),
}


@pytest.mark.parametrize("bound", sorted(ATTRIBUTES))
async def test_attributes_at_the_limit_are_stored_and_over_it_refused(
    roomy: Api, bound: str
) -> None:
    at, over = ATTRIBUTES[bound]
    response = await roomy.deliver("chat", chat(at))
    assert response.status == 200, await response.text()
    contact_id = (await response.json())["contacts"][0]["contact_id"]
    record = await (await roomy.get(f"/v1/contacts/{contact_id}")).json()
    assert record["contact"]["attributes"] == at
    await refused(await roomy.deliver("chat", chat(over)), "attributes")
    crm = unique("crm")
    profile = await roomy.json(
        "POST", "/v1/customers", {"crm_id": crm, "attributes": at}, status=201
    )
    assert profile["attributes"] == at
    response = await roomy.send("POST", "/v1/customers", {"crm_id": crm, "attributes": over})
    await refused(response, "attributes", "invalid_body")


#: Any character PostgreSQL stores (no NUL, no lone surrogate), no white space
#: (the payloads strip it): ASCII, accents, CJK, emoji -- up to 4 bytes each.
CHARACTERS = st.characters(
    min_codepoint=0x21, blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Co", "Cn")
)
EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF, blacklist_categories=("Cn",))


def fresh(text: str) -> str:
    """``text`` made unique (a repeated example must not be a duplicate), same length."""
    tag = secrets.token_hex(8)
    return tag + text[len(tag) :]


def worst(n: int) -> str:
    """``n`` random 4-byte characters: the most bytes, and nothing to compress."""
    return "".join(chr(0x1F300 + secrets.randbelow(0x300)) for _ in range(n))


async def store_at_limits(api: Api, text: Any) -> None:
    """Deliver contacts and a profile whose indexed values are as long as
    allowed (``text(n)``: a string of ``n`` characters); all are stored."""
    external_id, thread = fresh(text(ID_MAX)), fresh(text(ID_MAX))
    payload = chat(
        {text(JSON_KEY_MAX): text(100)},
        id=external_id,
        conversation_id=thread,
        customer={"visitor_id": fresh(text(256)), "crm_id": fresh(text(256))},
    )
    for duplicate in (False, True):  # the retry finds the first through the key index
        response = await api.deliver("chat", payload)
        assert response.status == 200, await response.text()
        [routed] = (await response.json())["contacts"]
        assert routed["duplicate"] is duplicate
    record = await (await api.get(f"/v1/contacts/{routed['contact_id']}")).json()
    assert (record["external_id"], record["thread_id"]) == (external_id, thread)
    assert record["contact"]["attributes"] == payload["attributes"]

    reference = fresh(text(ID_MAX))
    email = example("email", id=fresh(text(ID_MAX)), references=[reference])
    response = await api.deliver("email", email)
    assert response.status == 200, await response.text()
    contact_id = (await response.json())["contacts"][0]["contact_id"]
    assert (await (await api.get(f"/v1/contacts/{contact_id}")).json())["thread_id"] == reference

    value = fresh(text(IDENTIFIER_VALUE_MAX))
    body = {"crm_id": fresh(text(256)), "identities": [{"kind": "visitor", "value": value}]}
    profile = await api.json("POST", "/v1/customers", body, status=201)
    assert ("visitor", value) in {(i["kind"], i["value"]) for i in profile["identities"]}


async def test_the_longest_values_in_the_widest_characters_are_stored(roomy: Api) -> None:
    await store_at_limits(roomy, worst)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_any_text_at_the_limits_is_stored(roomy: Api, data: st.DataObject) -> None:
    def text(n: int) -> str:
        drawn: str = data.draw(st.text(CHARACTERS | EMOJI, min_size=n, max_size=n))
        return drawn

    await store_at_limits(roomy, text)
