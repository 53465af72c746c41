"""``omniroute agents import FILE`` with real files: NDJSON and CSV, every bad
line reported with its line number and field and nothing of it applied,
the good lines applied, and a second run changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.support.api import Api
from tests.support.examples import unique
from tests.support.settings import ROOT


def run_import(path: Path, database_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        "OMNIROUTE_LOG__LEVEL": "warning",
    }
    return subprocess.run(
        [sys.executable, "-m", "router.commands.cli", "agents", "import", str(path),
         "--config", str(ROOT / "tests" / "empty.yaml"), *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def line(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


async def agent(api: Api, agent_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/v1/agents/{agent_id}")
    if response.status == 404:
        return None
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_ndjson_import(api: Api, database_url: str, tmp_path: Path) -> None:
    tag = unique("nd")
    lines = [
        line({"agent_id": f"{tag}-1", "name": "Ann", "skills": {"chat": 3}}),
        line({"agent_id": f"{tag}-2", "capacity": 200, "channel_max": {"chat": 4}}),
        "",
        line({"agent_id": f"{tag}-3", "skills": {"chat": 9}}),
        line({"agent_id": "bad/id", "name": "x"}),
        "{not json",
        line({"agent_id": f"{tag}-4", "presence": "available"}),
        line({"name": "no id"}),
        line({"agent_id": f"{tag}-5", "name": "nul\x00"}),
    ]  # fmt: skip
    path = tmp_path / "agents.ndjson"
    path.write_text("\n".join(lines) + "\n")
    done = run_import(path, database_url)
    assert done.returncode == 1, done.stderr
    assert "2 created, 0 updated, 0 unchanged, 6 rejected" in done.stdout
    errors = done.stderr.splitlines()
    assert any(e.startswith("agents.ndjson:4: skills.chat: ") for e in errors), errors
    assert any(e.startswith("agents.ndjson:5: agent_id: ") for e in errors), errors
    assert any(e.startswith("agents.ndjson:6: line: invalid JSON") for e in errors), errors
    assert any(e.startswith("agents.ndjson:7: presence: ") for e in errors), errors
    assert any(e.startswith("agents.ndjson:8: agent_id: ") for e in errors), errors
    assert any(e.startswith("agents.ndjson:9: name: ") for e in errors), errors
    first = await agent(api, f"{tag}-1")
    assert first is not None and first["skills"] == {"chat": 3} and first["name"] == "Ann"
    second = await agent(api, f"{tag}-2")
    assert second is not None and second["capacity"] == 200
    assert second["channel_max"] == {"chat": 4} and second["presence"] == "offline"
    for n in (3, 4, 5):  # nothing of a bad line is applied
        assert await agent(api, f"{tag}-{n}") is None
    again = run_import(path, database_url)  # idempotent
    assert "0 created, 0 updated, 2 unchanged, 6 rejected" in again.stdout


async def test_csv_import(api: Api, database_url: str, tmp_path: Path) -> None:
    tag = unique("csv")
    path = tmp_path / "agents.CSV"
    path.write_text(
        "agent_id,name,capacity,skills,channel_max\n"
        f'{tag}-1,"Lee, Ann",,billing:3|spanish:2,chat:3|email:5\n'
        f"{tag}-2,Bob,150,chat:1,\n"
        f"{tag}-3,Cy,lots,chat:1,\n"
        f"{tag}-4,Di,100,chat,\n"
        f"{tag}-5,Ed,100,chat:1,fax:2\n"
        "\n"
        f"{tag}-6,Fay,100,chat:1,,extra\n"
    )
    done = run_import(path, database_url)
    assert done.returncode == 1, done.stderr
    assert "2 created, 0 updated, 0 unchanged, 4 rejected" in done.stdout
    errors = done.stderr.splitlines()
    assert any(e.startswith("agents.CSV:4: capacity: ") for e in errors), errors
    assert any(e.startswith("agents.CSV:5: skills: 'chat' is not key:value") for e in errors)
    assert any(e.startswith("agents.CSV:6: channel_max") for e in errors), errors
    assert any(e.startswith("agents.CSV:8: line: more cells") for e in errors), errors
    first = await agent(api, f"{tag}-1")
    assert first is not None and first["name"] == "Lee, Ann" and first["capacity"] == 100
    assert first["skills"] == {"billing": 3, "spanish": 2}
    assert first["channel_max"] == {"chat": 3, "email": 5}
    second = await agent(api, f"{tag}-2")
    assert second is not None and second["capacity"] == 150
    # a changed file: the changed line is updated, the rest unchanged
    path.write_text(
        f'agent_id,skills,name\n{tag}-1,billing:4|spanish:2,"Lee, Ann"\n{tag}-2,chat:1,Bob\n'
    )
    again = run_import(path, database_url)
    assert again.returncode == 0, again.stderr
    # (capacity was 150 for Bob, the default now: updated too)
    assert "0 created, 2 updated, 0 unchanged, 0 rejected" in again.stdout
    first = await agent(api, f"{tag}-1")
    assert first is not None and first["skills"] == {"billing": 4, "spanish": 2}
    assert first["channel_max"] == {}  # a whole profile: left out is the default


async def test_format_by_option_and_bad_files(database_url: str, tmp_path: Path) -> None:
    tag = unique("fmt")
    path = tmp_path / "agents.txt"
    path.write_text(f"agent_id\n{tag}-1\n")
    unknown = run_import(path, database_url)
    assert unknown.returncode == 2 and "--format" in unknown.stderr
    done = run_import(path, database_url, "--format", "csv")
    assert done.returncode == 0 and "1 created" in done.stdout, done.stderr
    header = tmp_path / "header.csv"
    header.write_text("id,name\nx,y\n")
    bad = run_import(header, database_url)
    assert bad.returncode == 1
    assert "header.csv:1: header: unknown columns id" in bad.stderr
    missing = run_import(tmp_path / "none.csv", database_url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
