"""``GET /v1/contacts`` and ``GET /v1/contacts/{id}``: auth, filters, keyset pages."""

from __future__ import annotations

import uuid

from tests.support.api import Api, routed_for
from tests.support.settings import READ_TOKEN


async def test_requires_a_token(api: Api) -> None:
    response = await api.get("/v1/contacts", token=None)
    assert response.status == 401
    assert (await response.json())["fields"][0]["field"] == "Authorization"
    response = await api.get("/v1/contacts", token="wrong")
    assert response.status == 401


async def test_requires_the_scope(api: Api) -> None:
    response = await api.get("/v1/rules", token=READ_TOKEN)
    assert response.status == 403
    assert "rules:read" in (await response.json())["message"]
    assert (await api.get("/v1/contacts", token=READ_TOKEN)).status == 200


async def test_keyset_pages_cover_everything_once_newest_first(api: Api) -> None:
    customer, ids = await routed_for(api, 7)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"customer_id": customer, "limit": "3"}
        if cursor:
            params["cursor"] = cursor
        page = await (await api.get("/v1/contacts", **params)).json()
        seen += [c["contact_id"] for c in page["contacts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_filters(api: Api) -> None:
    customer, ids = await routed_for(api, 4)
    page = await (await api.get("/v1/contacts", customer_id=customer, channel="email")).json()
    assert len(page["contacts"]) == 2
    assert {c["channel"] for c in page["contacts"]} == {"email"}
    queue = page["contacts"][0]["decision"]["queue"]
    page = await (await api.get("/v1/contacts", customer_id=customer, queue=queue)).json()
    assert all(c["decision"]["queue"] == queue for c in page["contacts"])
    page = await (
        await api.get("/v1/contacts", customer_id=customer, since="2999-01-01T00:00:00Z")
    ).json()
    assert page["contacts"] == []


async def test_bad_queries_are_400_naming_the_parameter(api: Api) -> None:
    cases = {
        "channel": {"channel": "fax"},
        "since": {"since": "last tuesday"},
        "limit": {"limit": "5000"},
        "cursor": {"cursor": "!!"},
        "customer_id": {"customer_id": "42"},
        "colour": {"colour": "red"},
        "until": {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    }
    for field, params in cases.items():
        response = await api.get("/v1/contacts", **params)
        assert response.status == 400, field
        body = await response.json()
        assert body["fields"][0]["field"] == field


async def test_one_record_with_context_and_trace(api: Api) -> None:
    _, ids = await routed_for(api, 1)
    record = await (await api.get(f"/v1/contacts/{ids[0]}")).json()
    assert record["contact"]["channel"] == "chat"
    assert "customer_id" in record["context"]
    assert isinstance(record["trace"], list)
    assert set(record["timings"]) >= {"context_ms", "rules_ms", "total_ms"}


async def test_unknown_contact_is_404(api: Api) -> None:
    assert (await api.get(f"/v1/contacts/{uuid.uuid4()}")).status == 404
    response = await api.get("/v1/contacts/not-a-uuid")
    assert response.status == 400
