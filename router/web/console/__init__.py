"""The supervisors' web console at ``/console`` (docs/console.md): pages
rendered on the server (Jinja2, autoescaped), a small script of our own for
the live updates, sessions after a token sign-in (``sessions``), CSRF and
Origin checks on every change, and strict security headers on every answer
under ``/console``.

``ROUTES`` lists the console's routes for the route table
(``router.web.routes``): (method, path, handler, scope, how the scope is
proven: ``session`` through ``sessions.guarded``, or ``None`` for the sign-in
form and the static files)."""

from __future__ import annotations

from aiohttp import web

from router.web import live
from router.web.console import pages, rules
from router.web.console.sessions import Handler

#: The Content-Security-Policy of the console: scripts and styles from the
#: console's own files only (no inline script or style), no frames, forms and
#: requests to the console only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: ``Referrer-Policy: same-origin``, not ``no-referrer``: under ``no-referrer`` a
#: browser sends ``Origin: null`` with the console's own forms, and the Origin
#: check must see this host; other sites still get no referrer.
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

ROUTES: list[tuple[str, str, Handler, str | None]] = [
    ("GET", "/console/sign-in", pages.sign_in_form, None),
    ("POST", "/console/sign-in", pages.sign_in, None),
    ("GET", "/console/static/{name}", pages.static, None),
    ("POST", "/console/sign-out", pages.sign_out, "console"),
    ("GET", "/console", pages.home, "console"),
    ("GET", "/console/live", pages.live, "console"),
    ("GET", "/console/live/panel", pages.live_panel, "console"),
    ("GET", "/console/live/stream", live.live_stream, "console"),
    ("GET", "/console/contacts", pages.contacts, "console"),
    ("GET", "/console/contacts/{id}", pages.contact, "console"),
    ("GET", "/console/rules", rules.rules, "console"),
    ("POST", "/console/rules/candidate", rules.check_candidate, "console"),
    ("GET", "/console/deliveries", pages.deliveries, "console"),
    ("POST", "/console/deliveries/{id}/retry", pages.retry, "console"),
    ("GET", "/console/summary", pages.summary, "console"),
]


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The console's headers on every answer under ``/console`` (errors too)."""
    if request.path == "/console" or request.path.startswith("/console/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)


def install(app: web.Application) -> None:
    """What the console adds to the app besides its routes."""
    app.on_response_prepare.append(security_headers)
