"""Databases for tests: new ones of their own (created on the test server,
dropped after) and connections to them."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from router.store.db import SESSION_SETTINGS, _init_connection


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def new_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url``, dropped when done."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def connection(url: str, **settings: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the database of ``url`` with the service's search path
    (its schema, then ``public``), closed on leaving; ``settings`` are more
    session settings, or other ones. The ``db`` fixtures in ``conftest.py``."""
    server_settings = {"search_path": SESSION_SETTINGS["search_path"], **settings}
    con = await asyncpg.connect(url, server_settings=server_settings)
    try:
        yield con
    finally:
        await con.close()


@contextlib.asynccontextmanager
async def service_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the service's pool opens one: its session settings
    (``SESSION_SETTINGS``) and its JSON codecs, for calling the store directly."""
    async with connection(url, **SESSION_SETTINGS) as con:
        await _init_connection(con)
        yield con
