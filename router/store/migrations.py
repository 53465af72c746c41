"""Schema migrations: numbered SQL files applied in order, once, under an
advisory lock so that several instances starting together do not race."""

from __future__ import annotations

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


async def migrate(con: asyncpg.Connection) -> list[str]:
    """Apply the pending migrations; returns the names applied."""
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
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied
