"""``omniroute customers import``: bulk onboarding, rejected lines, resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson

from router.commands.importer import parse_line
from router.recognition.identity import Normalizer
from tests.support.api import Api
from tests.support.examples import example, unique
from tests.support.settings import ROOT


def run_import(path: Path, database_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        "OMNIROUTE_LOG__LEVEL": "warning",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "router.commands.cli",
            "customers",
            "import",
            str(path),
            "--config",
            str(ROOT / "tests" / "empty.yaml"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_import_links_profiles_reports_rejects_and_resumes(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    tag = unique("imp")
    # a person who chatted before the import must be found, not duplicated
    chat = await api.deliver(
        "chat", example("chat", id=unique(), customer={"email": f"0.{tag}@example.com"})
    )
    chatted = (await chat.json())["contacts"][0]["customer_id"]
    lines = [
        {
            "crm_id": f"{tag}-{i}",
            "tier": "gold" if i % 2 else "silver",
            "name": f"N{i}",
            "identities": [{"kind": "email", "value": f"{i}.{tag}@Example.com", "verified": True}],
        }
        for i in range(50)
    ]
    lines[7] = {"crm_id": f"{tag}-7", "identities": [{"kind": "phone", "value": "12"}]}
    lines[9] = {"name": "no identity"}
    path = tmp_path / "crm.ndjson"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"not json\n")

    done = run_import(path, database_url, "--batch", "20")
    assert done.returncode == 1, done.stderr  # some lines were rejected
    assert "48 imported, 3 rejected" in done.stdout
    rejected = [
        orjson.loads(x) for x in (tmp_path / "crm.ndjson.rejected.ndjson").read_bytes().splitlines()
    ]
    assert [r["line"] for r in rejected] == [8, 10, 51]
    assert rejected[0]["errors"][0]["field"] == "identities.0.value"

    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        owner = await con.fetchval(
            "SELECT customer_id FROM identities WHERE kind = 'crm' AND value = $1", f"{tag}-0"
        )
        assert str(owner) == chatted
        tier = await con.fetchval("SELECT tier FROM customers WHERE customer_id = $1", owner)
        assert tier == "silver"
        count = await con.fetchval(
            "SELECT count(*) FROM identities WHERE kind = 'email' AND value LIKE $1", f"%.{tag}@%"
        )
        assert count == 48

        again = run_import(path, database_url)
        assert "0 imported" in again.stdout and "51 lines done" in again.stdout

        # an interrupted run: pretend only the first 20 lines were committed
        await con.execute(
            "UPDATE import_runs SET lines_done = 20, finished_at = NULL "
            "WHERE file_name = 'crm.ndjson'"
        )
        resumed = run_import(path, database_url)
        assert "30 imported, 1 rejected" in resumed.stdout, resumed.stdout
        assert (
            await con.fetchval(
                "SELECT count(*) FROM identities WHERE kind = 'email' AND value LIKE $1",
                f"%.{tag}@%",
            )
            == 48
        )  # nothing written twice
    finally:
        await con.close()


def test_a_line_over_the_attribute_limits_is_rejected_naming_it() -> None:
    # The lines of an import are held to the limits of the API's bodies.
    for levels in (40, 150):
        raw = (
            b'{"crm_id": "c1", "attributes": '
            + b'{"d":' * (levels - 1)
            + b'{"leaf":1}'
            + b"}" * (levels - 1)
            + b"}\n"
        )
        errors = parse_line(1, raw, Normalizer())
        assert isinstance(errors, list) and errors[0]["field"] == "attributes", errors


async def test_a_value_postgresql_cannot_store_rejects_its_line_only(
    database_url: str, tmp_path: Path
) -> None:
    tag = unique("nul")
    lines = [
        {"crm_id": f"{tag}-1", "name": "Ann"},
        {"crm_id": f"{tag}-2", "name": "Bo\u0000b", "attributes": {"k\u0000": 1}},
        {"crm_id": f"{tag}-3\u0000"},
        {"crm_id": f"{tag}-4", "name": "Cy \\u0000 (an escaped backslash)"},
    ]
    path = tmp_path / "nul.ndjson"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    done = run_import(path, database_url)
    assert done.returncode == 1, done.stderr
    assert "2 imported, 2 rejected" in done.stdout, (done.stdout, done.stderr)
    rejected = [
        orjson.loads(x) for x in (tmp_path / "nul.ndjson.rejected.ndjson").read_bytes().splitlines()
    ]
    assert [(r["line"], {e["field"] for e in r["errors"]}) for r in rejected] == [
        (2, {"name", "attributes.k\ufffd"}),
        (3, {"crm_id"}),
    ]
    con = await asyncpg.connect(database_url, server_settings={"search_path": "omniroute"})
    try:
        names = await con.fetch(
            """SELECT c.name FROM identities i JOIN customers c USING (customer_id)
                WHERE i.kind = 'crm' AND i.value LIKE $1 ORDER BY i.value""",
            f"{tag}-%",
        )
        assert [r["name"] for r in names] == ["Ann", "Cy \\u0000 (an escaped backslash)"]
    finally:
        await con.close()
