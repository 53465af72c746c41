"""Schema migrations and the live SQL functions.

Where the SQL is:

* ``sql/NNNN_name.sql`` are the migrations: the schema's history, applied
  once each, in order. They are never edited once released; a change to the
  schema is a new file.
* ``sql/functions/<name>.sql`` holds the current definition of the SQL
  function ``<name>``, one function per file: read (and change) a function
  there, not in the migrations, whose older definitions are only history.

``migrate`` applies the pending migrations, then every function file whose
text differs from the one last applied (``schema_functions`` keeps a SHA-256
per file), or every function file when a migration has just run (it may
have defined a function again). Applying a function file drops the
function's overloads first, so a changed signature or result type leaves no
stale definition behind; a function that a view or an index uses is
replaced in place instead (its signature can then only change in a
migration). Function files are applied in name order. All of it runs under
one advisory lock, so several instances starting together do not race.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg
import structlog

from router.store.db import SCHEMA

log = structlog.get_logger("omniroute.store")

_LOCK_KEY = 0x6F6D6E69  # "omni"


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    out = []
    for entry in resources.files("router.store").joinpath("sql").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


def functions() -> list[tuple[str, str]]:
    """(name, sql) of every SQL function file shipped with the package, by name."""
    folder = resources.files("router.store").joinpath("sql").joinpath("functions")
    return sorted(
        (entry.name.removesuffix(".sql"), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


async def migrate(con: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations and the changed function files; returns
    the names applied (function files as ``functions/<name>.sql``)."""
    applied: list[str] = []
    await con.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await con.execute(
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
                    version int PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        await con.execute(
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_functions (
                    name text PRIMARY KEY,
                    sha256 text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"] for r in await con.fetch(f"SELECT version FROM {SCHEMA}.schema_migrations")
        }
        for version, name, sql in available():
            if version in done:
                continue
            async with con.transaction():
                await con.execute(f"SET LOCAL search_path = {SCHEMA}, public")
                await con.execute(sql)
                await con.execute(
                    f"INSERT INTO {SCHEMA}.schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    name,
                )
            log.info("migration_applied", migration=name)
            applied.append(name)
        applied += await _apply_functions(con, every=bool(applied))
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied


async def _apply_functions(con: asyncpg.Connection, *, every: bool) -> list[str]:
    """(Re)create the functions whose file changed since it was last applied
    (all of them with ``every``), each in a transaction of its own."""
    current = {
        r["name"]: r["sha256"]
        for r in await con.fetch(f"SELECT name, sha256 FROM {SCHEMA}.schema_functions")
    }
    applied = []
    for name, sql in functions():
        digest = hashlib.sha256(sql.encode()).hexdigest()
        if not every and current.get(name) == digest:
            continue
        async with con.transaction():
            await con.execute(f"SET LOCAL search_path = {SCHEMA}, public")
            await _drop_overloads(con, name)
            await con.execute(sql)
            await con.execute(
                f"""INSERT INTO {SCHEMA}.schema_functions (name, sha256) VALUES ($1, $2)
                    ON CONFLICT (name) DO UPDATE SET sha256 = $2, applied_at = now()""",
                name,
                digest,
            )
        log.info("function_applied", function=name)
        applied.append(f"functions/{name}.sql")
    return applied


async def _drop_overloads(con: asyncpg.Connection, name: str) -> None:
    """Drop every function ``name`` of the schema that nothing depends on."""
    signatures = await con.fetch(
        """SELECT format('%I.%I(%s)', n.nspname, p.proname,
                         pg_get_function_identity_arguments(p.oid)) AS signature
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = $1 AND p.proname = $2""",
        SCHEMA,
        name,
    )
    for row in signatures:
        try:
            async with con.transaction():
                await con.execute(f"DROP FUNCTION {row['signature']}")
        except asyncpg.DependentObjectsStillExistError:
            pass  # a view or an index uses it: the file replaces it in place
