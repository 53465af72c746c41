"""Monthly partitions created ahead; a month whose rows already sit in the
default partition gets its partition with those rows moved into it."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from tests.support.api import Api
from tests.support.examples import unique
from tests.support.seed import Row, pool, seed


async def where(p: asyncpg.Pool, adapter: str) -> list[tuple[str, str]]:
    rows = await p.fetch(
        """SELECT tableoid::regclass::text AS part, external_id FROM contacts
            WHERE adapter = $1 ORDER BY external_id""",
        adapter,
    )
    return [(r["part"], r["external_id"]) for r in rows]


async def test_rows_in_the_default_partition_move_into_their_new_month(
    api: Api, database_url: str
) -> None:
    adapter = unique("part")
    rows = [
        Row(datetime(2191, 3, 1, tzinfo=UTC), adapter, external_id="a-first-instant"),
        Row(datetime(2191, 3, 31, 23, 59, 59, tzinfo=UTC), adapter, external_id="b-last-instant"),
        Row(datetime(2191, 4, 1, tzinfo=UTC), adapter, external_id="c-next-month"),
    ]
    async with pool(database_url) as p:
        await seed(p, rows)
        assert {part for part, _ in await where(p, adapter)} == {"contacts_default"}

        assert await p.fetchval("SELECT ensure_partitions('2191-03-15', 1)") == 1
        assert await where(p, adapter) == [
            ("contacts_2191_03", "a-first-instant"),
            ("contacts_2191_03", "b-last-instant"),
            ("contacts_default", "c-next-month"),
        ]
        # A partition like any other: its indexes, its idempotency keys.
        indexes = await p.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'contacts_2191_03'"
        )
        parent = await p.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'contacts'")
        assert indexes == parent
        keys = await p.fetchval(
            """SELECT count(*) FROM contact_keys k JOIN contacts c
                   ON c.contact_id = k.contact_id AND c.received_at = k.received_at
                WHERE k.adapter = $1""",
            adapter,
        )
        assert keys == 3

        assert await p.fetchval("SELECT ensure_partitions('2191-03-15', 2)") == 1  # April
        assert await p.fetchval("SELECT ensure_partitions('2191-03-15', 2)") == 0
        assert [part for part, _ in await where(p, adapter)] == [
            "contacts_2191_03",
            "contacts_2191_03",
            "contacts_2191_04",
        ]


async def test_a_new_partition_takes_the_parents_compression_methods(
    api: Api, database_url: str
) -> None:
    adapter = unique("part")
    async with pool(database_url) as p:
        await seed(p, [Row(datetime(2193, 5, 2, tzinfo=UTC), adapter)])
        # one partition with rows moved out of the default one, one created empty
        assert await p.fetchval("SELECT ensure_partitions('2193-05-01', 2)") == 2
        methods = await p.fetch(
            """SELECT c.relname, a.attname, a.attcompression::text AS attcompression
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                WHERE c.relname IN ('contacts', 'contacts_2193_05', 'contacts_2193_06')
                  AND a.attname IN ('contact', 'context', 'decision', 'trace')
                  AND c.relnamespace = (SELECT relnamespace FROM pg_class
                                         WHERE oid = 'contacts'::regclass)"""
        )
    parent = {r["attname"]: r["attcompression"] for r in methods if r["relname"] == "contacts"}
    assert len(parent) == 4 and set(parent.values()) <= {"l", ""}  # lz4, else the default (0029)
    for part in ("contacts_2193_05", "contacts_2193_06"):
        assert {r["attname"]: r["attcompression"] for r in methods if r["relname"] == part} == (
            parent
        )


async def gin_options(p: asyncpg.Pool, tables: list[str]) -> dict[str, list[str] | None]:
    """Each GIN index of the tables, with its storage parameters."""
    rows = await p.fetch(
        """SELECT c.relname, c.reloptions FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_am a ON a.oid = c.relam
            WHERE a.amname = 'gin' AND i.indrelid = ANY($1::regclass[])""",
        tables,
    )
    return {r["relname"]: r["reloptions"] for r in rows}


async def test_every_partitions_gin_indexes_take_entries_at_once(
    api: Api, database_url: str
) -> None:
    """No GIN pending list on the record: the insert that found it full moved
    all of it into the index, and that batch's requests waited (0034)."""
    adapter = unique("part")
    async with pool(database_url) as p:
        existing = [
            r["part"]
            for r in await p.fetch(
                """SELECT inhrelid::regclass::text AS part FROM pg_inherits
                    WHERE inhparent = 'contacts'::regclass"""
            )
        ]
        assert "contacts_default" in existing
        # one partition with rows moved out of the default one, one created empty
        await seed(p, [Row(datetime(2195, 7, 9, tzinfo=UTC), adapter, tags=["vip"])])
        assert await p.fetchval("SELECT ensure_partitions('2195-07-01', 2)") == 2
        options = await gin_options(p, [*existing, "contacts_2195_07", "contacts_2195_08"])
    # the tags and the identifiers' values, on every partition
    assert len(options) == 2 * (len(existing) + 2)
    assert all(o == ["fastupdate=off"] for o in options.values()), options
