"""The history as a file: ``GET /v1/contacts`` with ``format=csv|ndjson`` (or
``Accept: text/csv`` / ``application/x-ndjson``), streamed.

Rows go from PostgreSQL's COPY to the socket chunk by chunk: the database
connection stops reading while the client is slow, so memory does not grow
with the number of rows. An error before the first byte is an ordinary JSON
error; once bytes are out, a failure cuts the connection without ending the
chunked body, so the client sees a truncated transfer, never a short file
that looks complete.
"""

from __future__ import annotations

from typing import Literal

import structlog
from aiohttp import web

from router.store import Selection
from router.web.query import bad, parse_int
from router.web.state import RUNTIME

log = structlog.get_logger("omniroute.export")

Format = Literal["json", "csv", "ndjson"]
FORMATS: dict[str, Format] = {"json": "json", "csv": "csv", "ndjson": "ndjson"}
_ACCEPT: dict[str, Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/json": "json",
}
_CONTENT_TYPE = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
MAX_ROWS = 2**31 - 1
WRITE_SIZE = 128 * 1024


def negotiate(request: web.Request) -> Format:
    """``format=`` wins; else the first known media type in ``Accept``; else JSON."""
    if "format" in request.query:
        value = request.query["format"]
        if value not in FORMATS:
            raise bad("format", f"must be one of {', '.join(FORMATS)}")
        return FORMATS[value]
    for part in request.headers.get("Accept", "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _ACCEPT:
            return _ACCEPT[media]
    return "json"


async def stream(request: web.Request, chosen: Selection, fmt: Format) -> web.StreamResponse:
    """Stream the records of ``chosen``. Exports running at once are limited by
    the store (so that routing always keeps connections): one too many gets
    503 + Retry-After before anything is sent."""
    assert fmt != "json"
    rt = request.app[RUNTIME]
    q = request.query
    limit = parse_int("limit", q["limit"], low=1, high=MAX_ROWS) if "limit" in q else None
    response = web.StreamResponse(
        headers={
            "Content-Type": _CONTENT_TYPE[fmt],
            "Content-Disposition": f'attachment; filename="contacts.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    sent = 0
    pending: list[bytes] = []
    buffered = 0

    async def flush() -> None:
        nonlocal sent, buffered
        if not response.prepared:
            await response.prepare(request)
        if pending:
            data = b"".join(pending)
            pending.clear()
            buffered = 0
            await response.write(data)
            sent += len(data)

    async def sink(chunk: bytes) -> None:
        # The database hands over a few kB at a time; writing fewer, larger
        # chunks costs far less CPU. At most WRITE_SIZE bytes wait here.
        nonlocal buffered
        pending.append(chunk)
        buffered += len(chunk)
        if buffered >= WRITE_SIZE:
            await flush()

    try:
        await rt.store.records.export(
            chosen,
            fmt=fmt,
            sink=sink,
            limit=limit,
            timeout=rt.settings.reporting.export_timeout,
        )
    except Exception as exc:
        if not response.prepared:
            raise  # nothing sent yet: an ordinary JSON error
        log.warning("export_cut", format=fmt, bytes=sent, error=type(exc).__name__)
        if request.transport is not None:
            request.transport.abort()  # no final chunk: the client sees the cut
        return response
    try:
        await flush()  # the rest, or just the headers when there are no rows
    except Exception as exc:
        log.warning("export_cut", format=fmt, bytes=sent, error=type(exc).__name__)
        return response
    await response.write_eof()
    return response
