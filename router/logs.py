"""structlog, configured once: JSON lines in production, pretty on a terminal."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any, TextIO, cast

import orjson
import structlog

from router.settings import LogSettings


class _Stderr(io.TextIOBase):
    """``sys.stderr`` as it is at each write, not as it was when logging was
    configured: loggers are cached on first use, and a stream swapped since
    (a test's captured stderr, closed after it) must not make a log line fail
    the request that writes it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _dumps(value: Any, **options: Any) -> str:
    """JSON for a log line by orjson (one line is written for every routed
    contact); ``default`` turns what orjson cannot encode into text, as the
    standard library's encoder would be told to."""
    try:
        return orjson.dumps(
            value, default=options.get("default"), option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:  # what orjson refuses (integers past 64 bits)
        return json.dumps(value, **options)


def configure(settings: LogSettings) -> None:
    level = getattr(logging, settings.level.upper())
    pretty = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer()
        if pretty
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stderr())),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s")
