"""Bad deliveries get a clear 4xx naming the field, and write nothing."""

from __future__ import annotations

import re
import time

import orjson

from adapters.generic import sign
from tests.support.api import Api
from tests.support.examples import example, unique
from tests.support.settings import SECRETS


async def fields_of(response: object) -> dict[str, str]:
    body = await response.json()  # type: ignore[attr-defined]
    return {f["field"]: f["reason"] for f in body.get("fields", [])}


async def test_wrong_secret_is_401(api: Api) -> None:
    response = await api.deliver("chat", example("chat", id=unique()), secret="nope")
    assert response.status == 401
    assert "X-Omniroute-Signature" in await fields_of(response)


async def test_rotated_previous_secret_is_accepted(api: Api) -> None:
    response = await api.deliver(
        "chat", example("chat", id=unique()), secret="old-" + SECRETS["chat"]
    )
    assert response.status == 200


async def test_stale_and_future_timestamps_are_401(api: Api) -> None:
    for skew in (-301, 301):
        response = await api.deliver(
            "chat", example("chat", id=unique()), timestamp=int(time.time()) + skew
        )
        assert response.status == 401
        assert "window" in (await response.json())["message"]


async def test_missing_signature_is_401(api: Api) -> None:
    response = await api.client.post(
        "/v1/webhooks/chat", data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status == 401
    assert (await response.json())["error"] == "bad_signature"


async def test_invalid_payload_names_every_bad_field(api: Api) -> None:
    payload = example("chat", id="", sent_at="yesterday", colour="blue")
    response = await api.deliver("chat", payload)
    assert response.status == 422
    fields = await fields_of(response)
    assert {"id", "sent_at", "colour"} <= set(fields)


async def test_batch_errors_carry_the_item_index(api: Api) -> None:
    batch = {"contacts": [example("voice", id=unique()), example("voice", id=unique(), caller=5)]}
    response = await api.deliver("voice", batch)
    assert response.status == 422
    assert "contacts.1.caller" in await fields_of(response)


async def test_chat_without_identifier_is_422(api: Api) -> None:
    response = await api.deliver("chat", example("chat", id=unique(), customer={"name": "X"}))
    assert response.status == 422
    assert "customer" in await fields_of(response)


async def test_a_batch_item_without_identifier_is_named_by_its_index(api: Api) -> None:
    batch = {
        "contacts": [
            example("chat", id=unique()),
            example("chat", id=unique(), customer={"name": "X"}),
        ]
    }
    response = await api.deliver("chat", batch)
    assert response.status == 422
    assert set(await fields_of(response)) == {"contacts.1.customer"}


async def test_not_json_is_422(api: Api) -> None:
    response = await api.deliver("email", None, raw=b"{not json")
    assert response.status == 422
    assert "body" in await fields_of(response)


async def test_wrong_content_type_is_415(api: Api) -> None:
    body = orjson.dumps(example("chat", id=unique()))
    response = await api.client.post(
        "/v1/webhooks/chat",
        data=body,
        headers={
            "Content-Type": "text/plain",
            "X-Omniroute-Signature": sign(body, SECRETS["chat"], int(time.time())),
        },
    )
    assert response.status == 415


async def test_oversize_body_is_413(api: Api) -> None:
    payload = example("chat", id=unique(), text="x" * 70_000)
    response = await api.deliver("chat", payload)
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


async def test_unknown_adapter_names_cannot_be_told_from_configured_ones(api: Api) -> None:
    """An unknown name answers as a configured generic adapter answers a caller
    without its secret: same status, same body, for every kind of attempt."""
    body = orjson.dumps(example("chat", id="same"))
    now = int(time.time())
    attempts: list[dict[str, str]] = [
        {},
        {"X-Omniroute-Signature": "garbage"},
        {"X-Omniroute-Signature": f"t={now - 3600},v1=00"},
        {"X-Omniroute-Signature": f"t={now},v1=zz"},
        {"X-Omniroute-Signature": sign(body, "a-guessed-secret", now)},
    ]
    for headers in attempts:
        headers = {"Content-Type": "application/json", **headers}
        answers = []
        for name in ("chat", "email", "fax", "no-such-adapter"):
            response = await api.client.post(f"/v1/webhooks/{name}", data=body, headers=headers)
            # a clock tick between two answers changes the skew they report
            answers.append((response.status, re.sub(r"\d+", "N", await response.text())))
        assert answers[0][0] == 401, answers
        assert all(a == answers[0] for a in answers), answers
    for name in ("chat", "social", "fax"):
        response = await api.client.get(f"/v1/webhooks/{name}?hub.challenge=1")
        assert (response.status, await response.json()) == (
            405,
            {"error": "method_not_allowed", "message": "this adapter has no GET handshake"},
        )


async def test_generic_adapters_have_no_get_handshake(api: Api) -> None:
    response = await api.client.get("/v1/webhooks/chat")
    assert response.status == 405


async def test_configured_adapters_have_paths_of_their_own(api: Api) -> None:
    """Each configured adapter's webhook path is matched by its text (no
    regular expression per delivery), naming the adapter as the template
    does; any other name, and other methods, answer as before."""
    from router.web.routes import WEBHOOKS, AdapterResource

    router = api.client.app.router  # type: ignore[union-attr]
    own = {r.adapter: r for r in router.resources() if isinstance(r, AdapterResource)}
    assert {"chat", "email"} <= set(own)
    assert sorted(route.method for route in own["chat"]) == ["GET", "POST"]
    assert own["chat"].url_for().path == WEBHOOKS.format(adapter="chat")
    response = await api.deliver("chat", example("chat", id=unique()))
    assert response.status == 200
    answers = []
    for path in ("/v1/webhooks/chat", "/v1/webhooks/no-such-adapter"):
        response = await api.client.put(path, data=b"{}")
        answers.append((response.status, await response.json()))
    assert answers[0][0] == 405
    assert answers[0] == answers[1]
