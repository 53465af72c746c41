"""Times, ids and time zones out of range are refused where they are parsed,
in the project's own words: a 400 ``bad_query`` naming the parameter (a
contact id that cannot be one: 404), never a 500 and never the database
driver's text."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from aiohttp import ClientResponse

from tests.support.api import Api
from tests.support.examples import example, unique

#: A UUIDv7 whose 48 time bits say the year 10889.
FAR_ID = "ffffffff-ffff-7fff-bfff-ffffffffffff"
#: Words of the driver and of PostgreSQL that no answer may carry.
DRIVER_WORDS = (
    "asyncpg",
    "query argument",
    "DETAIL",
    "HINT",
    "SQLSTATE",
    "datetime.datetime(",
    "postgres",
    "OverflowError",
    "ValueError",
    "out of range for type",
    "cannot be converted",
)


async def answer(response: ClientResponse) -> tuple[int, str]:
    """Status and body; an error's body in the project's words only."""
    text = await response.text()
    if response.status >= 400:  # (a page of data may hold any words)
        for word in DRIVER_WORDS:
            assert word.lower() not in text.lower(), (response.status, text)
    return response.status, text


async def bad_query(response: ClientResponse, field: str) -> None:
    status, text = await answer(response)
    assert status == 400, text
    body = await response.json()
    assert body["error"] == "bad_query"
    assert [f["field"] for f in body["fields"]] == [field]


def cursor(at: str, contact_id: str = "01a22e19-05af-7843-9711-2eea1e3fd2f2") -> str:
    return base64.urlsafe_b64encode(f"{at}|{contact_id}".encode()).decode().rstrip("=")


async def routed(api: Api) -> dict[str, Any]:
    body = await (await api.deliver("chat", example("chat", id=unique()))).json()
    contact: dict[str, Any] = body["contacts"][0]
    return contact


# -- the reported cases ---------------------------------------------------------


async def test_a_contact_id_whose_time_is_out_of_range_is_unknown(api: Api) -> None:
    for response in (
        await api.get(f"/v1/contacts/{FAR_ID}"),
        await api.send("POST", f"/v1/contacts/{FAR_ID}/events", {"type": "answered"}),
    ):
        status, text = await answer(response)
        assert status == 404, text
        body = await response.json()
        assert body["error"] == "not_found"
        assert body["fields"] == [{"field": "id", "reason": "unknown contact"}]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("until", "0001-01-01T00:00:00"),
        ("until", "9999-12-31T23:59:59-14:00"),
        ("since", "0001-01-01T00:00:00+14:00"),
        ("since", "1969-12-31T23:59:59Z"),
        ("tz", "UTC+5"),  # POSIX style: PostgreSQL would read it as UTC-5
        ("tz", "Etc/GMT+14"),  # not in the zone database (Etc/GMT-14 is)
        ("tz", "localtime"),
        ("tz", "../../etc/passwd"),
    ],
)
async def test_summary_refuses_times_and_zones_out_of_range(
    api: Api, name: str, value: str
) -> None:
    await bad_query(await api.get("/v1/reports/summary", **{name: value}), name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "9999-12-31T23:59:59-14:00"),
        ("until", "0001-01-01T00:00:00+14:00"),
        ("cursor", cursor("9999-12-31T23:59:59-14:00")),
        ("cursor", cursor("0001-01-01T00:00:00+14:00")),
        ("cursor", cursor("2026-01-01T00:00:00")),  # no offset: not one of ours
    ],
)
async def test_history_refuses_times_out_of_range(api: Api, name: str, value: str) -> None:
    # formerly 422 unstorable_value, with the driver's message as the reason
    await bad_query(await api.get("/v1/contacts", queue="q1", rule="r1", **{name: value}), name)
    await bad_query(await api.get("/v1/contacts", format="csv", **{name: value}), name)


async def test_the_ends_of_the_range_and_real_zones_are_accepted(api: Api) -> None:
    for params in (
        {"since": "1970-01-01T00:00:00Z", "until": "1970-01-02T00:00:00Z"},
        {"since": "9998-12-31T00:00:00Z", "until": "9999-01-01T00:00:00Z", "tz": "Etc/GMT-14"},
        {"interval": "day", "tz": "Europe/Berlin"},
        {"interval": "hour", "tz": "Asia/Kathmandu"},
    ):
        response = await api.get("/v1/reports/summary", **params)
        assert response.status == 200, (params, await response.text())
    response = await api.get("/v1/contacts", since="1970-01-01T00:00:00Z", until="9999-01-01")
    assert response.status == 200, await response.text()


async def test_an_event_time_out_of_range_names_the_field(api: Api) -> None:
    contact = await routed(api)
    for at in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00"):
        response = await api.send(
            "POST", f"/v1/contacts/{contact['contact_id']}/events", {"type": "answered", "at": at}
        )
        status, text = await answer(response)
        assert status == 422, text
        assert [f["field"] for f in (await response.json())["fields"]] == ["at"]


async def test_a_value_the_database_refuses_is_not_explained_in_its_words(api: Api) -> None:
    response = await api.deliver("chat", example("chat", id=unique(), text="a\u0000b"))
    status, text = await answer(response)
    assert status == 422, text
    body = await response.json()
    assert body["error"] == "unstorable_value"
    assert body["fields"][0]["field"] == "text"
    assert "0x00" not in text and "invalid byte sequence" not in text


# -- every time, id and zone parameter of every endpoint, at the extremes ---------

TIMES = [
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "9999-01-01T00:00:00Z",
    "9999-01-01T00:00:00.001Z",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+23:59",
    "2026-02-30T00:00:00Z",
    "+10000-01-01T00:00:00Z",
]
IDS = [
    FAR_ID,
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "00000000-0000-7000-8000-000000000000",
    "00000000-0000-0000-0000-000000000000",
    str(uuid.UUID(int=(1 << 127) | (7 << 76))),  # year ~5400, version 7
    "not-a-uuid",
]
ZONES = ["UTC+5", "Etc/GMT+14", "Etc/GMT-14", "posixrules", "localtime", "right/UTC",
         "Factory", "EST5EDT", "utc", "Europe/Berlin", "Europe//Berlin", "a" * 300]  # fmt: skip
CURSORS = [
    cursor("9999-12-31T23:59:59-14:00"),
    cursor("0001-01-01T00:00:00+14:00"),
    cursor("2026-01-01T00:00:00"),
    cursor("2026-01-01T00:00:00+00:00", FAR_ID),
    cursor("2026-01-01T00:00:00+00:00", "x"),
    "%%%",
]
CUSTOMER = "01a22e19-05af-7843-9711-2eea1e3fd2f2"

QUERY_CASES = [
    (path, name, value)
    for path in (
        "/v1/contacts",
        "/v1/contacts?format=csv",
        "/v1/contacts?format=ndjson",
        f"/v1/customers/{CUSTOMER}/timeline",
    )  # fmt: skip
    for name, values in (("since", TIMES), ("until", TIMES), ("cursor", CURSORS))
    for value in values
]
QUERY_CASES += [
    ("/v1/reports/summary", name, value) for name in ("since", "until") for value in TIMES
]
QUERY_CASES += [("/v1/reports/summary", "tz", value) for value in ZONES]
QUERY_CASES += [("/v1/contacts", "customer_id", value) for value in IDS]
QUERY_CASES += [("/v1/identity-conflicts", "cursor", value) for value in ("-1", "9" * 30)]


@pytest.mark.parametrize(("path", "name", "value"), QUERY_CASES)
async def test_no_extreme_query_value_is_a_5xx(api: Api, path: str, name: str, value: str) -> None:
    path, _, fmt = path.partition("?format=")
    params = {name: value, **({"format": fmt} if fmt else {})}
    response = await api.get(path, **params)
    status, text = await answer(response)
    assert status < 500, text
    if status >= 400:
        body = await response.json()
        assert name in [f["field"] for f in body.get("fields", [])] or status == 404, text


PATH_CASES = [
    ("GET", "/v1/contacts/{id}", None),
    ("GET", "/v1/contacts/{id}?explain=true", None),
    ("POST", "/v1/contacts/{id}/events", {"type": "answered"}),
    ("GET", "/v1/customers/{id}", None),
    ("GET", "/v1/customers/{id}/timeline", None),
    ("PUT", "/v1/customers/{id}", {"tier": "gold"}),
    ("DELETE", "/v1/customers/{id}", None),
    ("POST", "/v1/customers/{id}/merge", {"from": CUSTOMER}),
    ("PUT", "/v1/customers/{id}/journeys/j1", {"type": "order"}),
]


@pytest.mark.parametrize("value", IDS)
@pytest.mark.parametrize(("method", "path", "body"), PATH_CASES)
async def test_no_extreme_id_is_a_5xx(
    api: Api, method: str, path: str, body: Any, value: str
) -> None:
    response = await api.send(method, path.replace("{id}", value), body)
    status, text = await answer(response)
    assert status in (400, 404), text


@pytest.mark.parametrize("at", TIMES)
async def test_no_extreme_event_time_is_a_5xx(api: Api, at: str) -> None:
    contact = await routed(api)
    response = await api.send(
        "POST", f"/v1/contacts/{contact['contact_id']}/events", {"type": "closed", "at": at}
    )
    status, text = await answer(response)
    assert status in (200, 201, 422), text
