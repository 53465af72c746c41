"""Every ruleset version the service has loaded or was sent, with its
sources, and the audit trail of publications (docs/rules.md, "Governance")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from router.errors import PublishConflict


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


#: Notified (with the version) when a version is published, at commit.
CHANNEL = "omniroute_rules"
#: Publications serialize on this advisory lock (taken in their transaction).
_PUBLISH_LOCK = 0x6F6D6E6952554C45  # "omniRULE"


@dataclass(frozen=True, slots=True)
class Publication:
    """One entry of the audit trail: ``version`` was published by ``author``."""

    publication: int
    version: str
    parent: str | None
    author: str
    comment: str
    published_at: datetime


_PUBLICATION = "publication, version, parent, author, comment, published_at"


async def publish(
    pool: asyncpg.Pool,
    version: str,
    sources: Mapping[str, str],
    *,
    author: str,
    comment: str,
    parent: str | None,
    check_parent: bool,
) -> Publication:
    """Store ``version`` (if new) and make it the published version, notifying
    every instance at commit. With ``check_parent``, ``PublishConflict`` unless
    the published version is ``parent`` (``None``: nothing published yet).
    Publications serialize, so two with the same parent cannot both succeed."""
    async with pool.acquire() as con, con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", _PUBLISH_LOCK)
        current: str | None = await con.fetchval(
            "SELECT version FROM ruleset_publications ORDER BY publication DESC LIMIT 1"
        )
        if check_parent and current != parent:
            raise PublishConflict(current, parent)
        await con.execute(
            """INSERT INTO rulesets (version, sources, origin) VALUES ($1, $2, 'published')
               ON CONFLICT (version) DO NOTHING""",
            version,
            dict(sources),
        )
        row = await con.fetchrow(
            f"""INSERT INTO ruleset_publications (version, parent, author, comment)
                VALUES ($1, $2, $3, $4) RETURNING {_PUBLICATION}""",
            version,
            current,
            author,
            comment,
        )
        await con.execute("SELECT pg_notify($1, $2)", CHANNEL, version)
    return Publication(*row)


async def published(pool: asyncpg.Pool) -> Publication | None:
    """The newest publication (the published version), None if nothing was published."""
    row = await pool.fetchrow(
        f"SELECT {_PUBLICATION} FROM ruleset_publications ORDER BY publication DESC LIMIT 1"
    )
    return None if row is None else Publication(*row)


async def publications(
    pool: asyncpg.Pool, *, before: int | None, limit: int, version: str | None = None
) -> list[Publication]:
    """Publications newest first, those with a number below ``before`` (keyset
    pages); only those of ``version`` when given."""
    rows = await pool.fetch(
        f"""SELECT {_PUBLICATION} FROM ruleset_publications
             WHERE ($1::bigint IS NULL OR publication < $1)
               AND ($2::text IS NULL OR version = $2)
             ORDER BY publication DESC LIMIT $3""",
        before,
        version,
        limit,
    )
    return [Publication(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class StoredRuleset:
    """A stored version: its files, where it came from, when first stored."""

    version: str
    sources: dict[str, str]
    origin: str
    first_loaded_at: datetime


async def fetch_ruleset(pool: asyncpg.Pool, version: str) -> StoredRuleset | None:
    row = await pool.fetchrow(
        "SELECT version, sources, origin, first_loaded_at FROM rulesets WHERE version = $1",
        version,
    )
    return None if row is None else StoredRuleset(*row)
