"""Migrations and the live SQL functions: every function in the database is
the one its file in ``router/store/sql/functions/`` defines, and a changed
file is applied at the next start, once, whatever its change."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from router.store import migrations
from router.store.db import SCHEMA
from tests.support.databases import new_database


def definitions_query(schema: str) -> str:
    return f"""SELECT p.proname AS name,
                      replace(pg_get_functiondef(p.oid), '{schema}.', 'schema.') AS definition
                 FROM pg_proc p
                WHERE p.pronamespace = '{schema}'::regnamespace AND p.prokind = 'f'
                ORDER BY p.proname, p.oid"""


async def definitions(con: asyncpg.Connection, schema: str = SCHEMA) -> list[tuple[str, str]]:
    """(name, full definition with the schema name masked) of every function
    of ``schema``, overloads included."""
    return [(r["name"], r["definition"]) for r in await con.fetch(definitions_query(schema))]


async def signatures(con: asyncpg.Connection, name: str) -> list[str]:
    rows = await con.fetch(
        """SELECT pg_get_function_identity_arguments(p.oid) AS args
             FROM pg_proc p
            WHERE p.pronamespace = $1::regnamespace AND p.proname = $2""",
        SCHEMA,
        name,
    )
    return [r["args"] for r in rows]


@pytest.fixture
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """An empty database of its own, for tests that change the functions."""
    async with new_database(server_url, "omniroute_functions") as url:
        yield url


def test_every_function_file_defines_the_function_it_is_named_for() -> None:
    files = migrations.functions()
    assert [name for name, _ in files] == [
        "agents_capacity_guard",
        "customer_sketch",
        "deliveries_lease_kept",
        "deliveries_mark",
        "deliveries_notify",
        "ensure_partitions",
        "lifecycle_log_notify",
        "resolve_batch",
        "resolve_contact",
        "resolve_many",
    ]
    for name, sql in files:
        assert sql.count("CREATE OR REPLACE FUNCTION ") == 1, name
        assert f"CREATE OR REPLACE FUNCTION {name}(" in sql, name


async def test_the_live_functions_are_the_files(database_url: str) -> None:
    """Each function in the database, and nothing else, is what its file
    defines (compared with the file applied in a scratch schema)."""
    con = await asyncpg.connect(database_url)
    scratch = f"scratch_{secrets.token_hex(4)}"
    try:
        await migrations.migrate(con)
        live = await definitions(con)
        async with con.transaction():
            await con.execute(f"CREATE SCHEMA {scratch}")
            await con.execute(f"SET LOCAL search_path = {scratch}")
            await con.execute("SET LOCAL check_function_bodies = off")
            for _, sql in migrations.functions():
                await con.execute(sql)
            from_files = await definitions(con, scratch)
            await con.execute(f"DROP SCHEMA {scratch} CASCADE")
    finally:
        await con.close()
    assert [name for name, _ in live] == [name for name, _ in migrations.functions()]
    assert live == from_files


async def test_a_changed_function_file_is_applied_once(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = await asyncpg.connect(fresh_database, server_settings={"search_path": SCHEMA})
    try:
        # an empty database: the migrations, then every function file
        applied = await migrations.migrate(con)
        names = [name for _, name, _ in migrations.available()]
        files = migrations.functions()
        assert applied == names + [f"functions/{name}.sql" for name, _ in files]
        assert await migrations.migrate(con) == []  # nothing changed: nothing applied

        # the body changes: the new text is live at the next start, once
        edited = dict(files)
        edited["ensure_partitions"] = """
            CREATE OR REPLACE FUNCTION ensure_partitions(start timestamptz, months integer)
            RETURNS integer LANGUAGE sql AS $$ SELECT -months $$;"""
        monkeypatch.setattr(migrations, "functions", lambda: sorted(edited.items()))
        assert await migrations.migrate(con) == ["functions/ensure_partitions.sql"]
        assert await con.fetchval("SELECT ensure_partitions(now(), 3)") == -3
        assert await migrations.migrate(con) == []

        # the signature and the result type change: no stale overload is left
        edited["ensure_partitions"] = """
            CREATE OR REPLACE FUNCTION ensure_partitions(start timestamptz)
            RETURNS text LANGUAGE sql AS $$ SELECT 'one month' $$;"""
        assert await migrations.migrate(con) == ["functions/ensure_partitions.sql"]
        assert await signatures(con, "ensure_partitions") == ["start timestamp with time zone"]
        assert await con.fetchval("SELECT ensure_partitions(now())") == "one month"

        # a function a view uses is replaced in place, and the view still works
        await con.execute("CREATE VIEW sketched AS SELECT customer_sketch(NULL) AS s")
        edited["customer_sketch"] = """
            CREATE OR REPLACE FUNCTION customer_sketch(id uuid) RETURNS bit(8192)
            LANGUAGE sql IMMUTABLE AS $$ SELECT NULL::bit(8192) $$;"""
        assert await migrations.migrate(con) == ["functions/customer_sketch.sql"]
        assert await con.fetchval("SELECT s IS NULL FROM sketched")
        assert "SELECT NULL::bit(8192)" in dict(await definitions(con))["customer_sketch"]
        assert await signatures(con, "customer_sketch") == ["id uuid"]

        # back to the shipped files: they win again
        monkeypatch.setattr(migrations, "functions", lambda: files)
        assert await migrations.migrate(con) == [
            "functions/customer_sketch.sql",
            "functions/ensure_partitions.sql",
        ]
        assert await signatures(con, "ensure_partitions") == [
            "start timestamp with time zone, months integer"
        ]
        assert await con.fetchval("SELECT ensure_partitions(now(), 1)") == 0

        # a migration that defines a function again, as the early ones did: the
        # function files are applied after it, so they win
        history = migrations.available()
        again = "CREATE OR REPLACE FUNCTION ensure_partitions(start timestamptz, months integer)"
        again += " RETURNS integer LANGUAGE sql AS $$ SELECT 42 $$;"
        monkeypatch.setattr(
            migrations, "available", lambda: [*history, (9999, "9999_again.sql", again)]
        )
        assert await migrations.migrate(con) == [
            "9999_again.sql",
            *(f"functions/{name}.sql" for name, _ in files),
        ]
        assert await con.fetchval("SELECT ensure_partitions(now(), 1)") == 0
    finally:
        await con.close()


async def test_instances_starting_together_apply_everything_once(fresh_database: str) -> None:
    connections = [await asyncpg.connect(fresh_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in connections))
    finally:
        for con in connections:
            await con.close()
    names = [name for _, name, _ in migrations.available()]
    names += [f"functions/{name}.sql" for name, _ in migrations.functions()]
    assert sorted(results, key=len) == [[], [], names]
