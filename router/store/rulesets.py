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
