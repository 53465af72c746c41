"""structlog, configured once: JSON lines in production, pretty on a terminal.

One line is written for every routed contact, so the JSON path is kept
short: a plain event (no context bound, no stack or exception asked for)
goes from the logging call to its line in one step (:func:`_json_logger`),
the timestamp is formatted from a per-second prefix, the line is rendered by
orjson, and written whole (with its newline) in one write. In a serving
process the lines of one event-loop iteration are written together, in one
write at the end of it (:func:`per_iteration`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from router.settings import LogSettings


class _Lines:
    """The logger structlog hands each rendered line to: written to
    ``sys.stderr`` as it is at each write, not as it was when logging was
    configured (loggers are cached on first use, and a stream swapped since,
    a test's captured stderr closed after it, must not make a log line fail
    the request that writes it). A write holds whole lines with their
    newlines, under a lock, so lines of several threads never interleave.

    While an event loop holds the lines (:func:`per_iteration`), a line
    logged on the loop's thread waits for the end of the loop's iteration
    and goes out with the others of it in one write: a write is a system
    call, and a serving process logs a line for every routed contact. Lines
    of other threads are written at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._held: list[str] = []

    def msg(self, message: str) -> None:
        if self._loop is not None and threading.get_ident() == self._thread:
            if not self._held:
                self._loop.call_soon(self.flush)
            self._held.append(message)
            return
        self._write(message + "\n")

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def hold(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Hold the lines of ``loop``'s thread until the end of each of its
        iterations (``None``: write every line at once again)."""
        self.flush()
        self._loop = loop
        self._thread = threading.get_ident()

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            held.append("")
            self._write("\n".join(held))

    def _write(self, text: str) -> None:
        with self._lock:
            err = sys.stderr
            err.write(text)
            err.flush()


_LINES = _Lines()


def _lines(*args: Any) -> _Lines:
    return _LINES


@contextlib.contextmanager
def per_iteration(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Within the block, the lines logged on ``loop``'s thread (the calling
    thread) are written once per iteration of the loop, together; what is
    held is written when the block ends, however it ends. A process killed
    outright loses at most the lines of the iteration it was in."""
    _LINES.hold(loop)
    try:
        yield
    finally:
        _LINES.hold(None)


class _Stamp:
    """``timestamp``: now in UTC as ISO 8601 with microseconds and ``Z``
    (``2026-12-01T02:20:58.363419Z``; no fraction at a whole second), the
    format of ``datetime.now(UTC).isoformat()``, with the date and time of
    day formatted once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = self.now()
        return event_dict

    def now(self) -> str:
        second, us = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return "%s.%06dZ" % (self._prefix, us) if us else self._prefix + "Z"  # noqa: UP031


def _fallback(value: Any) -> Any:
    """What a line holds for a value JSON has no type for: its
    ``__structlog__()``, else its ``repr`` (as structlog's JSON renderer)."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


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


class _Json:
    """The JSON line's processors after the context's, in one call: the
    level (``add_log_level``), the timestamp, the stack and the exception
    (``StackInfoRenderer``, ``format_exc_info``, only for an event that asks
    for them), and the rendering (``JSONRenderer`` with :func:`_dumps`). The
    keys come in the same order as from those processors one by one."""

    def __init__(self) -> None:
        self._stamp = _Stamp()
        self._stack = structlog.processors.StackInfoRenderer(additional_ignores=[__name__])
        self._render = structlog.processors.JSONRenderer(serializer=_dumps, default=_fallback)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        event_dict["level"] = _LEVELS.get(name, name)
        self._stamp(logger, name, event_dict)
        if "stack_info" in event_dict:
            self._stack(logger, name, event_dict)
        if "exc_info" in event_dict:
            structlog.processors.format_exc_info(logger, name, event_dict)
        return self._render(logger, name, event_dict)  # type: ignore[return-value]

    def plain(self, name: str, event_dict: EventDict) -> str:
        """The line of an event that asks for no stack and no exception: the
        same as :meth:`__call__`'s, without the steps it does not need (and
        tried without orjson's option for keys that are not text first: it
        costs a third more, and only a key that is not text needs it)."""
        event_dict["level"] = _LEVELS.get(name, name)
        event_dict["timestamp"] = self._stamp.now()
        try:
            return orjson.dumps(event_dict, default=_fallback).decode()
        except TypeError:  # a key that is not text, or an integer past 64 bits
            return _dumps(event_dict, default=_fallback)


def _json_logger(level: int, render: _Json) -> type[Any]:
    """structlog's filtering bound logger at ``level`` (a method of a lower
    level does nothing), whose methods write a plain event's line in one step:
    the event dict made from the call's keywords (as structlog makes it: the
    keywords in their order, then ``event``), rendered by ``render`` and
    handed to the logger (:class:`_Lines`). structlog's path (a method, the
    logger's proxy to the processors, the chain, the renderer's serializer)
    cost as much again as the line itself, and a line is logged for every
    routed contact. An event with positional arguments, a bound context, a
    stack or an exception takes structlog's path, so that its line is
    exactly what the processors make of it; so does every event while the
    processors are not the configured ones (``capture_logs`` changes them)."""
    base = structlog.make_filtering_bound_logger(level)
    methods: dict[str, Any] = {
        name: _plain(name, getattr(base, name), render)
        for name in ("debug", "info", "warning", "error", "critical")
        if getattr(logging, name.upper()) >= level  # else the base's: nothing
    }
    for alias, name in (("warn", "warning"), ("msg", "info"), ("fatal", "critical")):
        if name in methods:
            methods[alias] = methods[name]
    return type(f"Json{base.__name__}", (base,), methods)


def _plain(name: str, general: Any, render: _Json) -> Any:
    """The method of level ``name``: a plain event's line in one step, any
    other event by ``general`` (structlog's method). ``self`` and ``event``
    are positional only: Python then matches none of the call's keywords
    against them, which it does name by name for every keyword."""

    configured = [render]

    def method(self: Any, event: str, /, *args: Any, **kw: Any) -> Any:
        if (
            args
            or self._context
            or "exc_info" in kw
            or "stack_info" in kw
            # processors changed in place (structlog.testing.capture_logs)
            or self._processors != configured
        ):
            return general(self, event, *args, **kw)
        kw["event"] = event
        return self._logger.msg(render.plain(name, kw))

    method.__name__ = name
    return method


class Logger:
    """``structlog.get_logger(name)`` whose methods are looked up once the
    logger is fixed: structlog's proxy builds (or, cached on first use, hands
    back) its bound logger on every attribute it is asked for, a tenth of the
    cost of the line each routed contact logs. While loggers are cached
    (``configure``), the proxy hands back the same logger from its first use
    on, and so the same methods: they are kept here. Not cached, every
    method is the proxy's each time, as structlog's own."""

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._proxy, name)
        if structlog.get_config()["cache_logger_on_first_use"]:
            setattr(self, name, method)
        return method


#: ``add_log_level``'s names of the methods that are not a level's name
_LEVELS = {"warn": "warning", "exception": "error"}


def configure(settings: LogSettings) -> None:
    level = getattr(logging, settings.level.upper())
    pretty = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    # No context is bound (``bind_contextvars``) anywhere, so none is merged:
    # merging looks through the context's variables on every line (a third of
    # the cost of the line each routed contact logs).
    processors: list[structlog.types.Processor] = []
    wrapper: type[Any] = structlog.make_filtering_bound_logger(level)
    if pretty:
        processors += [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(),
        ]
    else:
        render = _Json()
        processors.append(render)
        wrapper = _json_logger(level, render)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=_lines,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s")
