"""Bulk customer import: a batch of parsed lines goes in with COPY into
temporary tables and a handful of set-based statements, in one transaction
that also advances the file's progress (so a crash resumes exactly)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

#: (line, customer_id, name, tier, language, segment, attributes as JSON text)
LineRecord = tuple[int, uuid.UUID, str | None, str | None, str | None, str | None, str | None]
#: (line, rank, kind, value, verified): a line's identifiers, strongest first
IdentityRecord = tuple[int, int, str, str, bool]


@dataclass(frozen=True, slots=True)
class Batch:
    lines: list[LineRecord]
    identities: list[IdentityRecord]
    rejected: list[bytes]  # NDJSON report lines
    last: int  # number of the batch's last line in the file


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def progress(con: asyncpg.Connection | asyncpg.Pool, file_key: str, file_name: str) -> int:
    """Lines of this file already imported (0 for a new file)."""
    done = await con.fetchval(
        """INSERT INTO import_runs (file_key, file_name) VALUES ($1, $2)
           ON CONFLICT (file_key) DO UPDATE SET updated_at = now()
           RETURNING lines_done""",
        file_key,
        file_name,
    )
    return int(done)


_STEPS = [
    """CREATE TEMP TABLE imp_lines (line int, customer_id uuid, name text, tier text,
           language text, segment text, attributes text, target uuid, new bool DEFAULT true)
           ON COMMIT DROP""",
    """CREATE TEMP TABLE imp_ids (line int, rank int, kind text COLLATE "C",
           value text COLLATE "C", verified bool, owner uuid) ON COMMIT DROP""",
]

# Each identifier is looked up once; everything else works on the temporary tables.
_MATCH = [
    # temporary tables have no statistics until analyzed: without them the planner
    # picks nested loops over thousands of rows
    "ANALYZE imp_lines, imp_ids",
    """UPDATE imp_ids x SET owner = i.customer_id
         FROM identities i WHERE i.kind = x.kind AND i.value = x.value""",
    # a line's customer: the owner of its strongest known identifier, else a new one
    """UPDATE imp_lines l SET target = m.owner, new = false
         FROM (SELECT DISTINCT ON (line) line, owner FROM imp_ids
                WHERE owner IS NOT NULL ORDER BY line, rank) m
        WHERE l.line = m.line""",
]

_UPDATE_EXISTING = """
UPDATE customers c SET name = coalesce(l.name, c.name), tier = coalesce(l.tier, c.tier),
       language = coalesce(l.language, c.language), segment = coalesce(l.segment, c.segment),
       attributes = c.attributes || coalesce(l.attributes::jsonb, '{}'),
       origin = 'crm', updated_at = now()
  FROM imp_lines l WHERE NOT l.new AND c.customer_id = l.target"""

_CREATE = [
    """INSERT INTO customers (customer_id, origin, name, tier, language, segment, attributes)
       SELECT customer_id, 'crm', name, tier, language, segment,
              coalesce(attributes::jsonb, '{}')
         FROM imp_lines WHERE new""",
    # identifiers already known are not inserted again; within a batch the first
    # line that names a new identifier gets it
    """INSERT INTO identities (kind, value, customer_id, verified)
       SELECT DISTINCT ON (x.kind, x.value) x.kind, x.value, coalesce(l.target, l.customer_id),
              x.verified
         FROM imp_ids x JOIN imp_lines l USING (line)
        WHERE x.owner IS NULL
        ORDER BY x.kind, x.value, x.line
       ON CONFLICT DO NOTHING""",
    """INSERT INTO identity_conflicts (customer_id, other_customer_id, kind, value, adapter)
       SELECT coalesce(l.target, l.customer_id), x.owner, x.kind, x.value, 'import'
         FROM imp_ids x JOIN imp_lines l USING (line)
        WHERE x.owner IS NOT NULL AND x.owner <> coalesce(l.target, l.customer_id)
       ON CONFLICT DO NOTHING""",
]


async def apply_batch(pool: asyncpg.Pool, *, file_key: str, batch: Batch) -> None:
    async with pool.acquire() as con, con.transaction():
        # The batch and the file's progress commit together, so a commit lost in
        # a crash is simply redone on resume: no need to wait for the WAL flush.
        await con.execute("SET LOCAL synchronous_commit = off")
        if batch.lines:
            for sql in _STEPS:
                await con.execute(sql)
            await con.copy_records_to_table(
                "imp_lines",
                columns=[
                    "line",
                    "customer_id",
                    "name",
                    "tier",
                    "language",
                    "segment",
                    "attributes",
                ],
                records=batch.lines,
            )
            await con.copy_records_to_table(
                "imp_ids",
                columns=["line", "rank", "kind", "value", "verified"],
                records=batch.identities,
            )
            for sql in _MATCH:
                status = await con.execute(sql)
            if int(status.rsplit(" ", 1)[-1]):  # lines of existing customers
                await con.execute(_UPDATE_EXISTING)
            for sql in _CREATE:
                await con.execute(sql)
        await con.execute(
            """UPDATE import_runs SET lines_done = $2, imported = imported + $3,
                   rejected = rejected + $4, updated_at = now() WHERE file_key = $1""",
            file_key,
            batch.last,
            len(batch.lines),
            len(batch.rejected),
        )


async def finish(pool: asyncpg.Pool, file_key: str) -> None:
    await pool.execute(
        "UPDATE import_runs SET finished_at = coalesce(finished_at, now()) WHERE file_key = $1",
        file_key,
    )
