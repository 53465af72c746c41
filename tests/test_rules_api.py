"""The rules as the API shows them: match counts in ``GET /v1/rules`` and
``GET /v1/contacts/{id}?explain=true``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from router.live_rules import LiveRules
from router.metrics import Metrics
from router.rules import load_ruleset
from router.store.db import SCHEMA
from tests.support.api import Api, routed
from tests.support.examples import invoice_mail, order_chat
from tests.support.rules import shipped_queues
from tests.support.settings import ROOT

SHIPPED = load_ruleset([ROOT / "rules"])


async def matches(api: Api) -> dict[str, int]:
    body = await (await api.get("/v1/rules")).json()
    assert body["matches_since"]
    return {rule["name"]: rule["matches"] for rule in body["rules"]}


async def test_rules_count_their_matches(api: Api) -> None:
    before = await matches(api)
    chat = await routed(api, "chat", **order_chat())
    assert chat["decision"]["rule"] == "chat-order-page"
    mail = await routed(api, "email", **invoice_mail())
    assert mail["decision"]["rule"] == "email-invoice"
    again = await api.deliver("chat", chat["payload"])  # a duplicate counts nothing
    assert (await again.json())["contacts"][0]["duplicate"] is True
    after = await matches(api)
    changed = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    assert changed == {"chat-order-page": 1, "has-attachment": 1, "email-invoice": 1}
    assert after["spanish-speakers"] == 0  # switched off


def test_counts_restart_with_a_new_version(tmp_path: Path) -> None:
    # without its tests: the rule added below sends chats elsewhere than they expect
    queues = shipped_queues()
    (tmp_path / "rules.yaml").write_text(queues)
    live = LiveRules([tmp_path], Metrics())
    first = live.load()
    since = live.counting_since
    c, cu, now = SHIPPED.cases[0].contact, SHIPPED.cases[0].customer, SHIPPED.cases[0].now
    live.count(first.decide(c, cu, now))  # decided by the defaults: nothing to count
    rule = "rules:\n  - {name: all-chats, when: {contact.channel: chat}, route: {queue: general}}\n"
    (tmp_path / "more.yaml").write_text(rule)
    second = live.load()
    assert live.counting_since != since
    live.count(second.decide(c, cu, now))
    live.count(second.decide(c, cu, now, explain=False))  # without a trace: the deciding rule
    live.count(first.decide(c, cu, now))  # another version's decision is not counted
    assert live.matches == {"all-chats": 2}
    live.load()  # the same version again: the counts stay
    assert live.matches == {"all-chats": 2}
    (tmp_path / "more.yaml").unlink()
    live.load()
    assert live.matches == {}


async def explained(api: Api, contact_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/contacts/{contact_id}", explain="true")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_explain_shows_each_rule_tried_up_to_the_one_that_matched(api: Api) -> None:
    chat = await routed(api, "chat", **order_chat())
    plain = await (await api.get(f"/v1/contacts/{chat['contact_id']}")).json()
    assert "explanation" not in plain and "explanation_error" not in plain
    body = await explained(api, chat["contact_id"])
    explanation = body["explanation"]
    enabled = [r for r in SHIPPED.rules if r.enabled]
    names = [r.name for r in enabled]
    assert [e["rule"] for e in explanation] == names[: names.index("chat-order-page") + 1]
    first, last = explanation[0], explanation[-1]
    assert first == {
        "rule": "repeat-contact",
        "file": "10-routing.yaml",
        "line": enabled[0].line,
        "matched": False,
        "why": "customer.contacts_24h >= 2",
        "rollout": None,
        "continue": False,
    }
    assert (last["rule"], last["matched"]) == ("chat-order-page", True)
    assert not any(e["matched"] for e in explanation[:-1])
    # the record itself keeps only the rules that matched
    assert body["trace"] == [
        {"rule": e["rule"], "matched": True} for e in explanation if e["matched"]
    ]


async def test_explain_uses_the_version_that_decided(api: Api, database_url: str) -> None:
    chat = await routed(api, "chat", **order_chat())
    old = "0ld0ld0ld0ld"
    sources = {
        "old.yaml": "queues: {general: {}}\ndefaults: {queue: general}\n"
        "rules:\n  - {name: old-chat, when: {contact.channel: chat}, route: {queue: general}}\n"
    }
    con = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        await con.execute(
            "INSERT INTO rulesets (version, sources) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
            old,
            orjson.dumps(sources).decode(),
        )
        for version in (old, "gone12345678"):
            await con.execute(
                """UPDATE contacts
                      SET decision = jsonb_set(decision, '{ruleset}', to_jsonb($2::text))
                    WHERE contact_id = $1""",
                uuid.UUID(chat["contact_id"]),
                version,
            )
            body = await explained(api, chat["contact_id"])
            if version == old:
                assert body["explanation"] == [
                    {
                        "rule": "old-chat",
                        "file": "old.yaml",
                        "line": 4,
                        "matched": True,
                        "why": "contact.channel = chat",
                        "rollout": None,
                        "continue": False,
                    }
                ]
                again = await explained(api, chat["contact_id"])  # now from memory
                assert again["explanation"] == body["explanation"]
            else:
                assert "explanation" not in body
                assert body["explanation_error"] == "ruleset version gone12345678 is not stored"
    finally:
        await con.close()


async def test_explain_of_an_erased_contact_and_bad_parameter(api: Api) -> None:
    chat = await routed(api, "chat", **order_chat())
    await api.json("DELETE", f"/v1/customers/{chat['customer_id']}")
    body = await explained(api, chat["contact_id"])
    assert body["explanation_error"] == "the contact's personal data was erased"
    response = await api.get(f"/v1/contacts/{chat['contact_id']}", explain="yes")
    assert response.status == 400
    assert "explain" in await response.text()
