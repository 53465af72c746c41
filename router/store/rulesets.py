"""Every ruleset version the service has loaded, with its sources."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg


async def save_ruleset(pool: asyncpg.Pool, version: str, sources: Mapping[str, str]) -> None:
    await pool.execute(
        """INSERT INTO rulesets (version, sources) VALUES ($1, $2)
           ON CONFLICT (version) DO UPDATE SET loaded_at = now()""",
        version,
        dict(sources),
    )


async def fetch_sources(pool: asyncpg.Pool, version: str) -> dict[str, str] | None:
    """The files of ruleset ``version`` (file name -> content), None if it is not stored."""
    sources: dict[str, str] | None = await pool.fetchval(
        "SELECT sources FROM rulesets WHERE version = $1", version
    )
    return sources
