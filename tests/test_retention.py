"""Retention drops whole monthly partitions older than the cutoff with the
keys and events of their contacts; newer contacts keep theirs; the
``omniroute db retention`` command."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.commands.cli import main, parse_age
from router.store import retention
from tests.support.api import Api
from tests.support.examples import example, person, unique
from tests.support.seed import Row, pool, seed


def at(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


async def test_retention_drops_old_partitions_and_their_keys(api: Api, database_url: str) -> None:
    adapter = unique("ret")
    rows = [
        Row(at(1990, 1), adapter),
        Row(at(1990, 2), adapter),
        Row(at(1990, 3), adapter),  # newer than the cutoff: stays
        Row(at(1985, 5), adapter),  # outside any partition: in the default one
    ]
    async with pool(database_url) as p:
        assert await p.fetchval("SELECT ensure_partitions('1990-01-15', 3)") == 3
        await seed(p, rows)
        for r in rows:
            await p.execute(
                """INSERT INTO contact_events (contact_id, received_at, event_id, type, at)
                   VALUES ($1, $2, 'e', 'answered', $2)""",
                r.contact_id,
                r.at,
            )
        cutoff = datetime(1990, 3, 1, tzinfo=UTC)
        dry = await retention.apply(p, cutoff, dry_run=True)
        assert dry is not None
        assert [x.name for x in dry.dropped] == ["contacts_1990_01", "contacts_1990_02"]
        assert dry.default_rows == 1
        assert await p.fetchval("SELECT count(*) FROM contacts WHERE adapter = $1", adapter) == 4

        report = await retention.apply(p, cutoff)
        assert report is not None
        assert [x.name for x in report.dropped] == ["contacts_1990_01", "contacts_1990_02"]
        assert (report.default_rows, report.keys, report.events) == (1, 3, 3)
        names = {x.name for x in await retention.partitions(p)}
        assert {"contacts_1990_01", "contacts_1990_02"}.isdisjoint(names)
        assert "contacts_1990_03" in names
        assert await p.fetchval("SELECT to_regclass('contacts_default')") is not None
        left = await p.fetch("SELECT contact_id FROM contacts WHERE adapter = $1", adapter)
        assert [r["contact_id"] for r in left] == [rows[2].contact_id]
        keys = await p.fetch("SELECT contact_id FROM contact_keys WHERE adapter = $1", adapter)
        assert [r["contact_id"] for r in keys] == [rows[2].contact_id]
        events = await p.fetch(
            "SELECT contact_id FROM contact_events WHERE contact_id = ANY($1::uuid[])",
            [r.contact_id for r in rows],
        )
        assert [r["contact_id"] for r in events] == [rows[2].contact_id]
        again = await retention.apply(p, cutoff)
        assert again is not None and again.dropped == [] and again.default_rows == 0


async def test_a_retried_delivery_of_a_kept_contact_is_still_a_duplicate(api: Api) -> None:
    # Retention ran above; idempotency of current contacts is untouched.
    payload = example("chat", id=unique("chat"), customer=person())
    first = await (await api.deliver("chat", payload)).json()
    again = await (await api.deliver("chat", payload)).json()
    assert again["contacts"][0]["duplicate"] is True
    assert again["contacts"][0]["contact_id"] == first["contacts"][0]["contact_id"]


def test_ages() -> None:
    assert parse_age("13mo") == (13, 0)
    assert parse_age("2y") == (24, 0)
    assert parse_age("400d") == (0, 400)
    assert parse_age("8w") == (0, 56)
    for bad in ("13", "0mo", "13 months", "-1d", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_age(bad)


def test_months_before() -> None:
    assert retention.months_before(at(2026, 3, 31), 13) == at(2025, 2, 28)
    assert retention.months_before(at(2026, 1, 15), 1) == at(2025, 12, 15)


def test_cli_dry_run(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_text(f"database:\n  url: {database_url}\nlog:\n  level: warning\n")
    assert (
        main(["db", "retention", "--older-than", "400mo", "--dry-run", "--config", str(config)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("cutoff ")
    assert "would delete" in out
    assert main(["db", "retention", "--config", str(config)]) == 2
    assert "retention_months" in capsys.readouterr().err


def test_cli_rollup(
    api: Api, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_text(f"database:\n  url: {database_url}\nlog:\n  level: warning\n")
    assert main(["db", "rollup", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("rolled up ")
    argv = [
        "db",
        "rollup",
        "--since",
        "2001-03-01",
        "--until",
        "2001-03-02",
        "--config",
        str(config),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "rebuilt 24 hour(s)"
