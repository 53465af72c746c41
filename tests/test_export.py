"""History filters on outcome and tag, CSV / NDJSON export of the same
selection as the JSON API, and the BI view returning the same rows."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientPayloadError, ClientResponse

from router.store.export import EXPORT_COLUMNS, MARK
from tests.support.api import Api
from tests.support.examples import unique
from tests.support.seed import Row, pool, seed
from tests.support.settings import TOKEN

START = datetime(2001, 6, 1, 12, tzinfo=UTC)
N = 1203  # more than one JSON page at the largest limit


@pytest.fixture(scope="module")
async def adapter(api: Api, database_url: str) -> AsyncIterator[str]:
    name = unique("exp")
    rows = [
        Row(
            START + timedelta(seconds=i),
            name,
            channel=("chat", "email", "voice")[i % 3],
            queue=f"q{i % 4}",
            rule=f"r{i % 5}",
            tags=("vip", "refund") if i % 10 == 0 else ("refund",) if i % 2 else (),
            skills=("en", "billing"),
            outcome=("answered", "abandoned", None)[i % 3],
            answered_at=START + timedelta(seconds=i + 30) if i % 3 == 0 else None,
            sla_met=True if i % 3 == 0 else None,
        )
        for i in range(N)
    ]
    rows[7].tags = ('comma, "quoted"',)  # CSV quoting
    async with pool(database_url) as p:
        await seed(p, rows)
    yield name


async def all_pages(api: Api, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = await (await api.get("/v1/contacts", limit="1000", **params, **extra)).json()
        out += body["contacts"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


async def export(api: Api, fmt: str, *, accept: str | None = None, **params: str) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if accept:
        headers["Accept"] = accept
    else:
        params["format"] = fmt
    response = await api.client.get("/v1/contacts", params=params, headers=headers)
    assert response.status == 200, await response.text()
    expected = "text/csv" if fmt == "csv" else "application/x-ndjson"
    assert response.headers["Content-Type"].startswith(expected)
    return await response.text()


async def test_outcome_and_tag_filters(api: Api, adapter: str) -> None:
    answered = await all_pages(api, adapter=adapter, outcome="answered")
    assert len(answered) == len(range(0, N, 3))
    assert {c["outcome"] for c in answered} == {"answered"}
    assert all(c["sla_met"] is True and c["answered_at"] for c in answered)
    vip = await all_pages(api, adapter=adapter, tag="vip")
    assert len(vip) == len(range(0, N, 10))
    assert all("vip" in c["decision"]["tags"] for c in vip)
    both = await all_pages(api, adapter=adapter, tag="refund", channel="email", queue="q1")
    assert both and all(c["channel"] == "email" and c["decision"]["queue"] == "q1" for c in both)
    for name in ("outcome", "tag"):
        response = await api.get("/v1/contacts", **{name: ""})
        assert response.status == 400
        assert (await response.json())["fields"][0]["field"] == name


async def test_csv_and_ndjson_have_the_rows_of_the_json_api(api: Api, adapter: str) -> None:
    for params in ({"adapter": adapter}, {"adapter": adapter, "outcome": "abandoned"}):
        listed = [c["contact_id"] for c in await all_pages(api, **params)]  # newest first
        text = await export(api, "csv", **params)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["contact_id"] for r in rows] == listed[::-1]  # a file: oldest first
        assert tuple(rows[0]) == EXPORT_COLUMNS
        lines = (await export(api, "ndjson", **params)).splitlines()
        records = [orjson.loads(line) for line in lines]
        assert [r["contact_id"] for r in records] == listed[::-1]
        assert tuple(records[0]) == EXPORT_COLUMNS
        newest = (await export(api, "ndjson", order="desc", **params)).splitlines()
        assert [orjson.loads(line)["contact_id"] for line in newest] == listed


async def test_pages_and_files_in_either_order(api: Api, adapter: str) -> None:
    newest = [c["contact_id"] for c in await all_pages(api, adapter=adapter)]
    oldest = [c["contact_id"] for c in await all_pages(api, adapter=adapter, order="asc")]
    assert len(oldest) == N and oldest == newest[::-1]
    # A cursor continues in its page's order, in a file too.
    body = await (await api.get("/v1/contacts", adapter=adapter, order="asc", limit="10")).json()
    rest = await export(api, "csv", adapter=adapter, cursor=body["next_cursor"], limit="3")
    assert [r["contact_id"] for r in csv.DictReader(io.StringIO(rest))] == oldest[10:13]
    response = await api.get("/v1/contacts", adapter=adapter, order="newest")
    assert response.status == 400
    assert (await response.json())["fields"][0]["field"] == "order"


async def test_export_flattens_decision_and_outcome(api: Api, adapter: str) -> None:
    rows = list(csv.DictReader(io.StringIO(await export(api, "csv", adapter=adapter))))
    by_id = {r["contact_id"]: r for r in rows}
    first = by_id[rows[0]["contact_id"]]  # the oldest: i == 0
    assert first["skills"] == "en|billing"
    assert first["tags"] == "vip|refund"
    assert first["outcome"] == "answered" and first["sla_met"] == "true"
    assert datetime.fromisoformat(first["received_at"]) == START
    assert datetime.fromisoformat(first["answered_at"]) == START + timedelta(seconds=30)
    assert first["known_customer"] == "false" and first["customer_id"] == ""
    quoted = [r for r in rows if r["tags"] == 'comma, "quoted"']
    assert len(quoted) == 1
    line = (await export(api, "ndjson", adapter=adapter, tag='comma, "quoted"')).strip()
    record = orjson.loads(line)
    assert record["tags"] == ['comma, "quoted"'] and record["skills"] == ["en", "billing"]
    assert record["received_at"] == (START + timedelta(seconds=7)).isoformat()


TRICKY = [
    'quote " backslash \\ tab \t newline \n return \r',
    "controls \x01\x02\x1f\x7f",
    "unicode é 漢字 😀 \u2028",
    "%s %d %% {}",
    "\\N",
    "",
    "null",
]


@pytest.fixture(scope="module")
async def tricky(api: Api, database_url: str) -> AsyncIterator[str]:
    """Records whose text needs every kind of quoting and escaping."""
    name = unique("tricky")
    rows = [
        Row(
            START + timedelta(hours=1, seconds=i, microseconds=i * 12_345),
            name,
            external_id=f"{i}:{text}",
            queue=text or "q",
            rule=text,
            tier=text,
            customer=uuid.uuid4() if i % 2 else None,
            tags=(text, "a,b", "c|d", '"q"'),
            skills=("NULL", "{}", text),
            routing_ms=(0.1, 1234.567, 3.0, 1e-05, 7.25, 99999.9, 0.001)[i],
            outcome="answered" if i % 2 else None,
            answered_at=START + timedelta(hours=1, seconds=i + 9.5) if i % 2 else None,
            sla_met=bool(i % 4 == 1) if i % 2 else None,
        )
        for i, text in enumerate(TRICKY)
    ]
    async with pool(database_url) as p:
        await seed(p, rows)
    yield name


async def test_ndjson_and_csv_carry_every_value_exactly(
    api: Api, tricky: str, database_url: str
) -> None:
    con = await asyncpg.connect(database_url)
    try:
        view = await con.fetch(
            """SELECT * FROM reporting.routed_contacts_v1 WHERE adapter = $1
                ORDER BY received_at, contact_id""",
            tricky,
        )
    finally:
        await con.close()
    assert len(view) == len(TRICKY)
    # Lines end at "\n" only: the text holds U+2028, which splitlines() splits at.
    text = await export(api, "ndjson", adapter=tricky)
    records = [orjson.loads(line) for line in text.split("\n")[:-1]]
    rows = list(csv.DictReader(io.StringIO(await export(api, "csv", adapter=tricky), newline="")))
    assert len(records) == len(rows) == len(view)
    for want, record, row in zip(view, records, rows, strict=True):
        assert tuple(record) == tuple(row) == EXPORT_COLUMNS
        for name, value in want.items():
            got = record[name]
            if isinstance(value, datetime):
                assert datetime.fromisoformat(got) == value, name
            elif isinstance(value, uuid.UUID):
                assert got == str(value), name
            else:
                assert got == value, name
        for name in ("external_id", "queue", "rule", "tier"):
            assert row[name] == (want[name] or ""), name
        assert row["tags"] == "|".join(want["tags"])
    seeded = {
        f"{i}:{t}": ms
        for i, (t, ms) in enumerate(
            zip(TRICKY, (0.1, 1234.567, 3.0, 1e-05, 7.25, 99999.9, 0.001), strict=True)
        )
    }
    # The figure reads as it was recorded, not as its nearest 32-bit float.
    assert {r["external_id"]: r["routing_ms"] for r in records} == seeded


async def test_accept_header_limit_and_empty_export(api: Api, adapter: str) -> None:
    text = await export(api, "csv", accept="text/csv", adapter=adapter, limit="5")
    assert len(text.strip().splitlines()) == 6  # header + 5
    text = await export(api, "ndjson", accept="application/x-ndjson", adapter=adapter, limit="3")
    assert len(text.splitlines()) == 3
    assert await export(api, "ndjson", adapter=unique("none")) == ""
    assert (await export(api, "csv", adapter=unique("none"))).strip() == ",".join(EXPORT_COLUMNS)
    response = await api.get("/v1/contacts", format="xml")
    assert response.status == 400
    assert (await response.json())["fields"][0]["field"] == "format"


async def test_the_view_has_the_rows_of_the_api(api: Api, adapter: str, database_url: str) -> None:
    listed = await all_pages(api, adapter=adapter, channel="voice")
    con = await asyncpg.connect(database_url)
    try:
        rows = await con.fetch(
            """SELECT * FROM reporting.routed_contacts_v1
                WHERE adapter = $1 AND channel = 'voice'
                ORDER BY received_at DESC, contact_id DESC""",
            adapter,
        )
        assert [str(r["contact_id"]) for r in rows] == [c["contact_id"] for c in listed]
        assert tuple(rows[0].keys()) == EXPORT_COLUMNS
        assert [r["outcome"] for r in rows] == [c["outcome"] for c in listed]
        grants = await con.fetchrow(
            """SELECT has_table_privilege('omniroute_reporting',
                                          'reporting.routed_contacts_v1', 'SELECT') AS view,
                      has_table_privilege('omniroute_reporting', 'omniroute.contacts',
                                          'SELECT') AS base"""
        )
        assert (grants["view"], grants["base"]) == (True, False)
    finally:
        await con.close()


@pytest.fixture(scope="module")
async def big(api: Api, database_url: str) -> str:
    """An adapter with far more export bytes than socket buffers hold (60 MB)."""
    name = unique("big")
    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        await con.execute(
            """INSERT INTO contacts (contact_id, received_at, adapter, provider, channel,
                                     external_id, known_customer, queue, priority, ruleset,
                                     contact, context, decision, timings)
               SELECT gen_random_uuid(), $2::timestamptz + i * interval '1 second', $1, $1,
                      'chat', i || repeat('x', 2000), false, 'q', 50, 'seed', '{}', '{}',
                      '{}', '{}'
                 FROM generate_series(1, 30000) AS i""",
            name,
            datetime(2002, 1, 1, tzinfo=UTC),
        )
    finally:
        await con.close()
    return name


async def open_export(api: Api, adapter: str) -> ClientResponse:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return await api.client.get(
        "/v1/contacts", params={"format": "ndjson", "adapter": adapter}, headers=headers
    )


async def test_a_database_failure_mid_export_cuts_the_transfer(
    api: Api, big: str, database_url: str
) -> None:
    # The export's backend is terminated once the first bytes are out: the
    # client must see a truncated transfer, never a complete-looking file.
    con = await asyncpg.connect(database_url)
    try:
        response = await open_export(api, big)
        assert response.status == 200
        assert await response.content.readany()
        killed = await con.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE query LIKE $1 AND pid <> pg_backend_pid()""",
            f"COPY ({MARK}%",
        )
        assert killed == 1
        with pytest.raises(ClientPayloadError):
            while await response.content.read(65536):
                pass
    finally:
        await con.close()


async def test_exports_at_once_are_limited_and_slots_come_back(api: Api, big: str) -> None:
    # The test app has pool_max 5: two exports at once, the third waits its turn.
    running = [await open_export(api, big) for _ in range(2)]
    try:
        assert [r.status for r in running] == [200, 200]
        refused = await open_export(api, big)
        assert refused.status == 503
        assert refused.headers["Retry-After"]
        assert "exports" in (await refused.json())["message"]
    finally:
        for r in running:
            r.close()  # the client goes away mid-stream
    for _ in range(100):
        response = await open_export(api, big)
        if response.status == 200:
            response.close()
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("export slots were not released")


# -- spreadsheet formulas ------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(1)", "\tx", "\rx"]
#: the CSV columns whose text a customer, platform, CRM or rules author controls
NEUTRALISED = (
    "external_id",
    "thread_id",
    "queue",
    "skills",
    "tags",
    "preferred_agent",
    "rule",
    "tier",
    "agent",
)
HARMLESS = ["plain", "a=b", " =x", "'quoted", "x-1", ""]


@pytest.fixture(scope="module")
async def formulas(api: Api, database_url: str) -> str:
    name = unique("formula")
    values = FORMULAS + HARMLESS
    rows = [
        Row(
            START + timedelta(hours=2, seconds=i),
            name,
            external_id=f"{v}#{i}",
            thread_id=v,
            queue=v or "q",
            rule=v,
            tier=v,
            tags=(v, "ok"),
            skills=(v,),
            agent=v,
            preferred_agent=v,
        )
        for i, v in enumerate(values)
    ]
    async with pool(database_url) as p:
        await seed(p, rows)
    return name


def cell(value: str, column: str) -> str:
    """What the CSV cell of a value written in ``column`` reads as."""
    text = {"external_id": f"{value}#{{i}}", "tags": f"{value}|ok"}.get(column, value)
    if column == "queue" and not value:
        text = "q"
    return text


async def test_csv_neutralises_formulas_and_ndjson_keeps_them(api: Api, formulas: str) -> None:
    raw = await export(api, "csv", adapter=formulas)
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    records = [
        orjson.loads(line)
        for line in (await export(api, "ndjson", adapter=formulas)).split("\n")[:-1]
    ]
    values = FORMULAS + HARMLESS
    assert len(rows) == len(records) == len(values)
    for i, (value, row, record) in enumerate(zip(values, rows, records, strict=True)):
        for column in NEUTRALISED:
            text = cell(value, column).replace("{i}", str(i))
            want = "'" + text if value in FORMULAS else text
            assert row[column] == want, (column, value, row[column])
        # NDJSON is data, not a spreadsheet: every value exactly as stored
        assert record["external_id"] == f"{value}#{i}" and record["thread_id"] == value
        assert record["tags"] == [value, "ok"] and record["skills"] == [value]
        assert record["agent"] == record["preferred_agent"] == record["rule"] == value
        assert row["priority"] == "50" and row["adapter"] == formulas  # ours: as they are
    # each neutralised cell is quoted, so no reader takes it for anything else
    assert '"\'=HYPERLINK(""http://x"")"' in raw
    for value in ("+1", "-2", "@SUM(1)", "\tx", "\rx"):
        assert f'"\'{value}"' in raw, value
    # the JSON pages are data too
    listed = await all_pages(api, adapter=formulas, order="asc")
    assert [c["thread_id"] for c in listed] == values


async def test_csv_of_routed_contacts_neutralises_what_the_platform_sent(api: Api) -> None:
    tag = unique("f")
    email = f"{tag}@example.com"
    customer = await api.json(
        "POST",
        "/v1/customers",
        {"crm_id": tag, "tier": "+1", "identities": [{"kind": "email", "value": email}]},
        status=201,
    )
    root = f'=HYPERLINK("http://x?{tag}")'
    payload = {
        "id": f"@SUM(1)-{tag}",
        "from": {"address": email, "name": "-2"},
        "subject": '=HYPERLINK("http://x")',
        "references": [root],
        "in_reply_to": root,
        "text": "hello",
    }
    response = await api.deliver("email", payload)
    assert response.status == 200, await response.text()
    contact_id = (await response.json())["contacts"][0]["contact_id"]
    await api.json(
        "POST",
        f"/v1/contacts/{contact_id}/events",
        {"type": "answered", "agent": "\tx"},
        status=201,
    )
    [row] = list(
        csv.DictReader(
            io.StringIO(await export(api, "csv", customer_id=customer["customer_id"]), newline="")
        )
    )
    assert row["external_id"] == f"'@SUM(1)-{tag}"
    assert row["thread_id"] == "'" + root
    assert row["tier"] == "'+1" and row["agent"] == "'\tx"
    [line] = (await export(api, "ndjson", customer_id=customer["customer_id"])).splitlines()
    record = orjson.loads(line)
    assert (record["external_id"], record["thread_id"]) == (f"@SUM(1)-{tag}", root)
    assert (record["tier"], record["agent"]) == ("+1", "\tx")
