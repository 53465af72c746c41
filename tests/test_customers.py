"""One customer across every channel: CRM profiles, conflicts and merges,
journeys, conversations, outcomes and erasure, over real HTTP."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, routed
from tests.support.examples import example, person, phone, unique
from tests.support.settings import READ_TOKEN


async def context_of(api: Api, contact_id: str) -> dict[str, Any]:
    record = await (await api.get(f"/v1/contacts/{contact_id}")).json()
    context: dict[str, Any] = record["context"]
    return context


async def test_crm_profile_is_upserted_by_crm_id(api: Api) -> None:
    crm = unique("CRM")
    who = person()
    created = await api.json(
        "POST",
        "/v1/customers",
        {
            "crm_id": crm,
            "name": "Ann Lee",
            "tier": "gold",
            "identities": [{"kind": "email", "value": who["email"].upper(), "verified": True}],
        },
        status=201,
    )
    updated = await api.json("POST", "/v1/customers", {"crm_id": crm, "tier": "vip"})
    assert updated["customer_id"] == created["customer_id"]
    assert updated["tier"] == "vip" and updated["name"] == "Ann Lee"
    kinds = {(i["kind"], i["value"]) for i in updated["identities"]}
    assert ("email", who["email"]) in kinds and ("crm", crm) in kinds

    contact = await routed(api, "chat", customer={"email": who["email"]})
    assert contact["customer_id"] == created["customer_id"]
    context = await context_of(api, contact["contact_id"])
    assert context["known"] is True  # known from the CRM before any contact
    assert context["tier"] == "vip"


async def test_email_then_chat_then_call_from_crm_number_is_one_customer(api: Api) -> None:
    who, number = person(), phone()
    mail = await routed(api, "email", **{"from": {"address": who["email"]}})
    chat = await routed(api, "chat", customer={"email": who["email"]})
    await api.json(
        "PUT",
        f"/v1/customers/{mail['customer_id']}",
        {"identities": [{"kind": "phone", "value": number}]},
    )
    call = await routed(api, "voice", caller=number)
    assert mail["customer_id"] == chat["customer_id"] == call["customer_id"]
    context = await context_of(api, call["contact_id"])
    assert context["contacts_24h"] == 2
    assert context["per_channel"]["email"]["contacts_24h"] == 1
    assert context["per_channel"]["chat"]["contacts_7d"] == 1
    assert context["channels_7d"] == ["chat", "email"]
    assert context["repeat"] is True and context["channel_switch"] is True
    assert context["last"]["channel"] == "chat"
    timeline = await (await api.get("/v1/contacts", customer_id=call["customer_id"])).json()
    assert [c["channel"] for c in timeline["contacts"]] == ["voice", "chat", "email"]


async def test_conflicting_identifiers_are_recorded_then_merged(api: Api) -> None:
    a, b = person(), phone()
    first = await routed(api, "chat", customer={"email": a["email"]})
    second = await routed(api, "voice", caller=b)
    assert first["customer_id"] != second["customer_id"]
    both = await routed(api, "chat", customer={"email": a["email"], "phone": b})
    assert both["customer_id"] == first["customer_id"]  # email is stronger than phone

    conflicts = (await api.json("GET", "/v1/identity-conflicts?limit=1000"))["conflicts"]
    mine = [c for c in conflicts if c["other_customer_id"] == second["customer_id"]]
    assert mine and mine[0]["kind"] == "phone" and mine[0]["customer_id"] == first["customer_id"]

    merged = await api.json(
        "POST", f"/v1/customers/{first['customer_id']}/merge", {"from": second["customer_id"]}
    )
    assert merged["merged"]["contacts"] == 1
    assert ("phone", b) in {(i["kind"], i["value"]) for i in merged["identities"]}
    gone = await api.send("GET", f"/v1/customers/{second['customer_id']}")
    assert gone.status == 410
    assert first["customer_id"] in (await gone.json())["message"]
    open_now = (await api.json("GET", "/v1/identity-conflicts?limit=1000"))["conflicts"]
    assert not [c for c in open_now if c["conflict_id"] == mine[0]["conflict_id"]]
    history = await (await api.get("/v1/contacts", customer_id=first["customer_id"])).json()
    assert len(history["contacts"]) == 3


async def test_journey_is_seen_by_the_next_contact_until_closed(api: Api) -> None:
    who = person()
    first = await routed(api, "email", **{"from": {"address": who["email"]}})
    path = f"/v1/customers/{first['customer_id']}/journeys/RMA-{unique()}"
    await api.json(
        "PUT", path, {"type": "return", "step": "awaiting-label", "data": {"order": "4411"}}
    )
    second = await routed(api, "chat", customer={"email": who["email"]})
    context = await context_of(api, second["contact_id"])
    assert context["journey"]["type"] == "return"
    assert context["journey"]["step"] == "awaiting-label"
    await api.json("PUT", path, {"type": "return", "status": "closed"})
    third = await routed(api, "chat", customer={"email": who["email"]})
    assert (await context_of(api, third["contact_id"]))["journey"] is None


async def test_email_reply_continues_the_conversation(api: Api) -> None:
    who = person()
    root = unique("<root")
    await api.deliver("email", example("email", id=root, **{"from": {"address": who["email"]}}))
    reply = await routed(
        api, "email", in_reply_to=root, references=[root], **{"from": {"address": who["email"]}}
    )
    conversation = (await context_of(api, reply["contact_id"]))["conversation"]
    assert conversation["id"] == root
    assert conversation["contacts"] == 1 and conversation["open"] is True


async def test_outcome_events_feed_the_record_and_the_next_context(api: Api) -> None:
    who = person()
    chat = await routed(api, "chat", customer={"email": who["email"]})
    path = f"/v1/contacts/{chat['contact_id']}/events"
    assigned = await api.json(
        "POST", path, {"event_id": "e1", "type": "assigned", "agent": "agent-7"}, status=201
    )
    assert assigned["outcome"] == "assigned"
    answered = await api.json("POST", path, {"event_id": "e2", "type": "answered"}, status=201)
    assert answered["outcome"] == "answered"
    assert chat["decision"]["sla_seconds"]  # the sample rules give chats an SLA
    assert answered["sla_met"] is True
    again = await api.json("POST", path, {"event_id": "e2", "type": "answered"})
    assert again["duplicate"] is True
    nxt = await routed(api, "email", **{"from": {"address": who["email"]}})
    assert (await context_of(api, nxt["contact_id"]))["last"]["agent"] == "agent-7"


async def test_event_errors(api: Api) -> None:
    chat = await routed(api, "chat", customer=person())
    bad = await api.send("POST", f"/v1/contacts/{chat['contact_id']}/events", {"type": "won"})
    assert bad.status == 422
    assert (await bad.json())["fields"][0]["field"] == "type"
    missing = await api.send(
        "POST", "/v1/contacts/01a20000-0000-7000-8000-000000000000/events", {"type": "answered"}
    )
    assert missing.status == 404
    assert (
        await api.send(
            "POST",
            f"/v1/contacts/{chat['contact_id']}/events",
            {"type": "answered"},
            token=READ_TOKEN,
        )
    ).status == 403


async def test_erasure_removes_personal_data_and_keeps_anonymous_records(api: Api) -> None:
    who = person()
    chat = await routed(api, "chat", customer={"email": who["email"]})
    erased = await api.json("DELETE", f"/v1/customers/{chat['customer_id']}")
    assert erased["contacts_anonymized"] == 1
    assert (await api.send("GET", f"/v1/customers/{chat['customer_id']}")).status == 410
    record = await (await api.get(f"/v1/contacts/{chat['contact_id']}")).json()
    assert record["customer_id"] not in (None, chat["customer_id"])
    assert "text" not in record["contact"] and "identifiers" not in record["contact"]
    assert record["decision"] == chat["decision"]  # aggregates keep working
    again = await routed(api, "chat", customer={"email": who["email"]})
    assert again["customer_id"] != chat["customer_id"]
    assert (await context_of(api, again["contact_id"]))["known"] is False


async def test_an_erased_or_merged_customer_has_no_timeline(api: Api) -> None:
    # The profile and the timeline answer alike: 410, naming why.
    erased = await routed(api, "chat", customer=person())
    await api.json("DELETE", f"/v1/customers/{erased['customer_id']}")
    survivor, merged = (
        await routed(api, "chat", customer=person()),
        await routed(api, "email", **{"from": {"address": person()["email"]}}),
    )
    await api.json(
        "POST", f"/v1/customers/{survivor['customer_id']}/merge", {"from": merged["customer_id"]}
    )
    for customer_id, reason in (
        (erased["customer_id"], "erased"),
        (merged["customer_id"], f"merged into {survivor['customer_id']}"),
    ):
        profile = await api.send("GET", f"/v1/customers/{customer_id}")
        timeline = await api.get(f"/v1/customers/{customer_id}/timeline")
        assert (profile.status, timeline.status) == (410, 410), await timeline.text()
        assert await timeline.json() == await profile.json()
        assert (await timeline.json())["fields"] == [{"field": "id", "reason": reason}]
    unknown = await api.get("/v1/customers/01a22e19-05af-7843-9711-2eea1e3fd2f2/timeline")
    assert unknown.status == 404


async def test_profile_validation_and_scopes(api: Api) -> None:
    response = await api.send(
        "POST", "/v1/customers", {"identities": [{"kind": "email", "value": "not-an-email"}]}
    )
    assert response.status == 422
    assert (await response.json())["fields"][0]["field"] == "identities.0.value"
    response = await api.send("POST", "/v1/customers", {"name": "nobody"})
    assert response.status == 400
    response = await api.send("POST", "/v1/customers", {"crm_id": "x"}, token=READ_TOKEN)
    assert response.status == 403
    response = await api.send("GET", f"/v1/customers/{unique()}")
    assert response.status == 400


async def test_undeclared_identifier_kind_is_refused(api: Api) -> None:
    response = await api.send(
        "POST", "/v1/customers", {"crm_id": unique(), "identities": [{"kind": "fax", "value": "1"}]}
    )
    assert response.status == 422
    assert "unknown identifier kind" in (await response.json())["fields"][0]["reason"]
