"""Rendering the console's pages: one Jinja2 environment over the templates
beside this module, with autoescaping on for every template, so that what a
customer sent (names, subjects, message text) is always shown as text."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import orjson
from aiohttp import web

from router.web.console.sessions import CSRF_FIELD, SESSION
from router.web.state import PRINCIPAL

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

#: The console's pages, in the order of the navigation: (path, title).
NAVIGATION = (
    ("/console/live", "Live"),
    ("/console/contacts", "Contacts"),
    ("/console/rules", "Rules"),
    ("/console/deliveries", "Deliveries"),
    ("/console/summary", "Summary"),
)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _percent(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.1f}%"


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters.update(when=_when, duration=_duration, percent=_percent, pretty=_pretty)


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """``template`` rendered for ``request``: the signed-in token's name, the
    session's CSRF token for forms, and the navigation are always there."""
    session = request.get(SESSION)
    principal = request.get(PRINCIPAL)
    html = ENVIRONMENT.get_template(template).render(
        navigation=NAVIGATION,
        path=request.path,
        signed_in=principal.name if principal is not None and session is not None else None,
        csrf_field=CSRF_FIELD,
        csrf_token=session.csrf_token if session is not None else "",
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
