"""The routing path without HTTP and without a database: a ``Pipeline`` built
with plain functions at the batchers' seams (the resolver, the writer, the
nonce claim), and recognition's resolution with a plain function in place of
the store's. A unit tier of pure logic; the tests over real HTTP and a real
PostgreSQL stay where they are."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import orjson
import pytest
import structlog

import adapters
from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.generic import sign
from router.errors import SignatureError, UnstorableValue
from router.logs import configure
from router.metrics import Metrics
from router.models import (
    Contact,
    CustomerContext,
    Identifier,
    Nonce,
    WebhookRequest,
    uuid7,
)
from router.pipeline import Pipeline
from router.recognition import Lookup, Normalizer, Recognized
from router.recognition.resolution import resolve_many
from router.rules import Ruleset, load_ruleset_text
from router.settings import LogSettings
from router.store import EarlierDelivery, NewRecord, Resolution, ResolveKey
from router.store.batching import Batcher

RULES = """\
queues:
  general: {}
  chat-q: {}
  vip: {skills: [vip]}
defaults:
  queue: general
  chat: {queue: chat-q}
rules:
  - name: vip
    when: {customer.tier: vip}
    route: {queue: vip, priority: 90}
"""
SECRET = "pipeline-test-secret"
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


class Store:
    """What the batchers' seams see: customers by email, records by key."""

    def __init__(self, tiers: dict[str, str] | None = None) -> None:
        self.tiers = tiers or {}
        self.customers: dict[str, uuid.UUID] = {}
        self.records: dict[tuple[str, str], NewRecord] = {}
        self.refuse: set[str] = set()  # external ids whose record the database refuses
        self.lookups: list[Lookup] = []
        self.blind = False  # resolution does not see earlier records (concurrent deliveries)

    async def resolve(self, lookups: Sequence[Lookup]) -> list[EarlierDelivery | Recognized]:
        out: list[EarlierDelivery | Recognized] = []
        for x in lookups:
            self.lookups.append(x)
            earlier = self.records.get((x.adapter, x.contact.external_id))
            if earlier is not None and not self.blind:
                out.append(_earlier(earlier))
                continue
            emails = [i.value for i in x.contact.identifiers if i.kind == "email"]
            if not emails:
                out.append(Recognized(CustomerContext(customer_id=uuid7(x.at), known=False), True))
                continue
            known = emails[0] in self.customers
            customer_id = self.customers.setdefault(emails[0], uuid.uuid4())
            context = CustomerContext(
                customer_id=customer_id, known=known, tier=self.tiers.get(emails[0])
            )
            out.append(Recognized(context, False))
        return out

    async def write(self, records: Sequence[NewRecord]) -> list[EarlierDelivery | None]:
        if any(r.contact.external_id in self.refuse for r in records):
            raise UnstorableValue("a value of the request cannot be stored")
        out: list[EarlierDelivery | None] = []
        for r in records:
            key = (r.adapter, r.contact.external_id)
            earlier = self.records.get(key)
            if earlier is None:
                self.records[key] = r
            out.append(None if earlier is None else _earlier(earlier))
        return out


def _earlier(r: NewRecord) -> EarlierDelivery:
    return EarlierDelivery(r.contact_id, r.customer_id, r.decision)


def pipeline(store: Store, ruleset: Ruleset, *, claimed: set[str] | None = None) -> Pipeline:
    held = claimed if claimed is not None else set()

    async def claim(nonce: Nonce) -> bool:
        if nonce.value in held:
            return False
        held.add(nonce.value)
        return True

    return Pipeline(
        ruleset=lambda: ruleset,
        metrics=Metrics(),
        resolver=Batcher("resolve", store.resolve),
        writer=Batcher("record", store.write),
        claim=claim,
        normalizer=Normalizer(),
    )


def chat(**fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "text": "Hello", **fields}


def signed(payload: Any) -> WebhookRequest:
    body = orjson.dumps(payload)
    return WebhookRequest(
        method="POST",
        url="http://omniroute.test/v1/webhooks/chat",
        headers={
            "content-type": "application/json",
            "x-omniroute-signature": sign(body, SECRET, int(time.time())),
        },
        query={},
        body=body,
    )


def reply(body: bytes) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = orjson.loads(body)["contacts"]
    return contacts


@pytest.fixture
def generic_chat() -> Adapter:
    return adapters.build(AdapterSpec(name="chat", kind="chat", secrets=(SECRET,)))


@pytest.fixture
def ruleset() -> Ruleset:
    return load_ruleset_text(RULES)


async def test_a_delivery_is_routed_by_the_rules(generic_chat: Adapter, ruleset: Ruleset) -> None:
    store = Store(tiers={"ann@example.com": "vip"})
    route = pipeline(store, ruleset)
    vip = await route.deliver(generic_chat, signed(chat(customer={"email": " Ann@Example.com"})))
    other = await route.deliver(generic_chat, signed(chat(customer={"email": "bo@example.com"})))
    [a], [b] = reply(vip.body), reply(other.body)
    assert (a["decision"]["queue"], a["decision"]["rule"], a["duplicate"]) == ("vip", "vip", False)
    assert (b["decision"]["queue"], b["decision"]["rule"]) == ("chat-q", None)
    assert a["decision"]["ruleset"] == ruleset.version
    # the identifiers were normalized before the customer was looked up
    assert store.lookups[0].contact.identifiers[0].value == "ann@example.com"
    [record] = [r for r in store.records.values() if str(r.contact_id) == a["contact_id"]]
    assert str(record.customer_id) == a["customer_id"]
    assert record.decision.queue == "vip" and record.context.tier == "vip"
    # the timings in milliseconds, to the microsecond
    assert list(record.timings) == ["parse_ms", "context_ms", "rules_ms", "total_ms"]
    assert all(v >= 0 and v == round(v, 3) for v in record.timings.values())
    assert record.timings["total_ms"] >= record.timings["rules_ms"]


async def test_a_retried_delivery_gets_the_original_decision(
    generic_chat: Adapter, ruleset: Ruleset
) -> None:
    store = Store()
    route = pipeline(store, ruleset)
    payload = chat(customer={"email": "cy@example.com"})
    first = reply((await route.deliver(generic_chat, signed(payload))).body)
    again = reply((await route.deliver(generic_chat, signed(payload))).body)
    assert again[0]["duplicate"] is True
    assert (again[0]["contact_id"], again[0]["decision"]) == (
        first[0]["contact_id"],
        first[0]["decision"],
    )
    assert len(store.records) == 1


async def test_a_duplicate_found_only_at_the_write_gets_the_first_decision(
    generic_chat: Adapter, ruleset: Ruleset
) -> None:
    # Two deliveries of one contact resolved at the same time: neither finds
    # the other; the second loses at the write and answers with the first's.
    store = Store()
    store.blind = True
    route = pipeline(store, ruleset)
    payload = chat(customer={"email": "di@example.com"})
    first = reply((await route.deliver(generic_chat, signed(payload))).body)
    second = reply((await route.deliver(generic_chat, signed(payload))).body)
    assert second[0]["duplicate"] is True
    assert (second[0]["contact_id"], second[0]["decision"]) == (
        first[0]["contact_id"],
        first[0]["decision"],
    )
    assert len(store.records) == 1


class Given(Adapter):
    """An adapter that hands over the contacts it was given, unchecked."""

    kind: ClassVar[str] = "given"
    unstorable: ClassVar[Literal["refuse", "replace"]] = "replace"

    def __init__(self, contacts: Sequence[Contact], nonce: Nonce | None = None) -> None:
        super().__init__(AdapterSpec(name="given", kind="given", secrets=("x",)))
        self.contacts = contacts
        self.nonce = nonce

    def verify(self, request: WebhookRequest) -> None:
        pass

    def parse(self, request: WebhookRequest) -> Parsed:
        return Parsed(contacts=self.contacts, nonce=self.nonce)


class Refusing(Given):
    unstorable: ClassVar[Literal["refuse", "replace"]] = "refuse"


def contact(text: str = "hi", external_id: str | None = None) -> Contact:
    return Contact(
        channel="chat",
        provider="given",
        external_id=external_id or uuid.uuid4().hex,
        identifiers=(Identifier(kind="email", value=f"{uuid.uuid4().hex}@example.com"),),
        text=text,
    )


REQUEST = WebhookRequest(method="POST", url="http://x/", headers={}, query={}, body=b"")


async def test_unstorable_text_is_refused_whole_before_anything_is_routed(
    ruleset: Ruleset,
) -> None:
    store = Store()
    bad = Refusing([contact("fine"), contact("nul \x00 here")])
    with pytest.raises(UnstorableValue) as refused:
        await pipeline(store, ruleset).deliver(bad, REQUEST)
    assert [f.field for f in refused.value.fields] == ["contacts.1.text"]
    assert store.records == {} and store.lookups == []


async def test_unstorable_text_is_replaced_when_the_adapter_says_so(ruleset: Ruleset) -> None:
    store = Store()
    routed = await pipeline(store, ruleset).deliver(Given([contact("nul \x00 here")]), REQUEST)
    [answer] = reply(routed.body)
    [record] = store.records.values()
    assert answer["duplicate"] is False
    assert record.contact.text == "nul \ufffd here"


@pytest.mark.parametrize("adapter", [Given, Refusing])
async def test_a_contact_the_database_refuses_does_not_stop_the_others(
    ruleset: Ruleset, adapter: type[Given]
) -> None:
    store = Store()
    contacts = [contact(), contact(external_id="refused"), contact()]
    store.refuse.add("refused")
    route = pipeline(store, ruleset)
    if adapter is Refusing:
        with pytest.raises(UnstorableValue) as refused:
            await route.deliver(adapter(contacts), REQUEST)
        assert [f.field for f in refused.value.fields] == ["contacts.1"]
    else:
        routed = reply((await route.deliver(adapter(contacts), REQUEST)).body)
        assert len(routed) == 2
    # the contacts before and after it were routed and recorded
    assert {k[1] for k in store.records} == {contacts[0].external_id, contacts[2].external_id}


async def test_a_signature_value_is_good_for_one_delivery(ruleset: Ruleset) -> None:
    nonce = Nonce("given", "once", b"f", NOW + timedelta(minutes=5))
    route = pipeline(Store(), ruleset)
    await route.deliver(Given([contact()], nonce), REQUEST)
    with pytest.raises(SignatureError):
        await route.deliver(Given([contact()], nonce), REQUEST)


async def test_resolution_asks_the_store_once_per_batch_strongest_identifier_first() -> None:
    calls: list[list[ResolveKey]] = []
    customer = uuid.uuid4()

    async def resolve(keys: Sequence[ResolveKey]) -> list[EarlierDelivery | Resolution | None]:
        calls.append(list(keys))
        last = {"at": (NOW - timedelta(hours=2)).isoformat(), "channel": "email", "queue": "q"}
        return [Resolution(customer, True, {"tier": "gold", "last": last}), None]

    known = Contact(
        channel="chat",
        provider="p",
        external_id="1",
        identifiers=(
            Identifier(kind="visitor", value="v-1"),
            Identifier(kind="email", value="a@example.com"),
            Identifier(kind="crm", value="C-1"),
        ),
    )
    anonymous = Contact(channel="chat", provider="p", external_id="2")
    found = await resolve_many(
        resolve,
        [Lookup("a", known, uuid7(NOW), NOW), Lookup("a", anonymous, uuid7(NOW), NOW)],
    )
    assert len(calls) == 1
    assert [i.kind for i in calls[0][0].identifiers] == ["crm", "email", "visitor"]
    first, second = found
    assert isinstance(first, Recognized) and isinstance(second, Recognized)
    assert (first.context.customer_id, first.context.tier, first.anonymous) == (
        customer,
        "gold",
        False,
    )
    # built from the raw row for this contact: the last contact was 2 h ago on email
    assert first.context.repeat and first.context.channel_switch
    assert second.anonymous and not second.context.known


async def test_the_contact_routed_line_names_the_contact_and_its_decision(
    generic_chat: Adapter,
    ruleset: Ruleset,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the service's JSON lines, and a logger made under them (the module's
    # may have been made under another configuration earlier in the session)
    configure(LogSettings(level="info", format="json"))
    monkeypatch.setattr("router.pipeline.log", structlog.get_logger("omniroute.route"))
    try:
        store = Store(tiers={"eve@example.com": "vip"})
        route = pipeline(store, ruleset)
        payload = chat(id="ext-42", customer={"email": "eve@example.com"})
        [answer] = reply((await route.deliver(generic_chat, signed(payload))).body)
    finally:
        structlog.reset_defaults()
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert list(line) == [
        "contact_id",
        "customer_id",
        "known",
        "degraded",
        "adapter",
        "channel",
        "external_id",
        "queue",
        "priority",
        "rule",
        "ruleset",
        "duration_ms",
        "event",
        "level",
        "timestamp",
    ]
    duration = line.pop("duration_ms")
    assert isinstance(duration, float) and duration >= 0
    assert duration == round(duration, 2)  # to the hundredth of a millisecond
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", line.pop("timestamp"))
    assert line == {
        "contact_id": answer["contact_id"],
        "customer_id": answer["customer_id"],
        "known": False,
        "degraded": False,
        "adapter": "chat",
        "channel": "chat",
        "external_id": "ext-42",
        "queue": "vip",
        "priority": 90,
        "rule": "vip",
        "ruleset": ruleset.version,
        "event": "contact_routed",
        "level": "info",
    }
