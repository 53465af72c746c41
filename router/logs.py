"""structlog, configured once: JSON lines in production, pretty on a terminal."""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO, cast

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


def configure(settings: LogSettings) -> None:
    level = getattr(logging, settings.level.upper())
    pretty = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
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
