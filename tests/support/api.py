"""A client of the running app that signs webhooks as a platform does and
sends the API token, and the deliveries tests build on it."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from adapters.generic import sign
from tests.support.examples import example, person, unique
from tests.support.settings import SECRETS, TOKEN


class Api:
    """A client of the running app that signs webhooks like a platform would."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def deliver(
        self,
        adapter: str,
        payload: Any,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        raw: bytes | None = None,
    ) -> ClientResponse:
        body = raw if raw is not None else orjson.dumps(payload)
        signature = sign(body, secret or SECRETS[adapter], timestamp or int(time.time()))
        return await self.client.post(
            f"/v1/webhooks/{adapter}",
            data=body,
            headers={"Content-Type": "application/json", "X-Omniroute-Signature": signature},
        )

    async def get(self, path: str, *, token: str | None = TOKEN, **params: Any) -> ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.get(path, params=params, headers=headers)

    async def send(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
    ) -> ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = orjson.dumps(body) if body is not None else None
        return await self.client.request(method, path, data=data, headers=headers)

    async def json(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        """Send and return the JSON answer, asserting the status."""
        response = await self.send(method, path, body)
        assert response.status == status, (response.status, await response.text())
        return await response.json()


async def routed(api: Api, channel: str, **changes: Any) -> dict[str, Any]:
    """Deliver the channel's example with ``changes`` and a fresh id; the
    answer's contact, with the delivered ``payload`` added."""
    payload = example(channel, id=unique(channel), **changes)
    response = await api.deliver(channel, payload)
    assert response.status == 200, await response.text()
    contact: dict[str, Any] = (await response.json())["contacts"][0]
    contact["payload"] = payload
    return contact


async def routed_for(api: Api, n: int, *, tier: str | None = None) -> tuple[str, list[str]]:
    """``n`` contacts of one new customer, chat and email in turn; with
    ``tier``, the customer has a CRM profile of that tier first."""
    who = person()
    if tier is not None:
        profile = {"crm_id": unique("crm"), "tier": tier, "identities": [
            {"kind": "email", "value": who["email"], "verified": True}]}  # fmt: skip
        await api.json("POST", "/v1/customers", profile, status=201)
    ids = []
    for i in range(n):
        channel = ("chat", "email")[i % 2]
        if channel == "chat":
            payload = example("chat", id=unique(), customer=who)
        else:
            payload = example("email", id=unique("<m"), **{"from": {"address": who["email"]}})
        body = await (await api.deliver(channel, payload)).json()
        ids.append(body["contacts"][0]["contact_id"])
    return body["contacts"][0]["customer_id"], ids
