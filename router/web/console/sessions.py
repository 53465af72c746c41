"""The console's sessions: a token typed into the sign-in form opens a
server-side session (``console_sessions``, see ``router.store.sessions``); the
browser holds only a random id in an HttpOnly, SameSite=Strict cookie.

Every console route but the sign-in form and the static files goes through
``guarded``: the session must be live (idle and absolute expiry, checked and
extended in one statement), its token must still be configured with the
route's scope, and every change (any method but GET/HEAD) must come from the
console itself: its ``Origin`` is this host, and it carries the session's
CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from router.errors import FieldError, Forbidden, Unauthorized
from router.settings import ConsoleSettings
from router.store.sessions import ConsoleSession
from router.web.state import PRINCIPAL, RUNTIME, TOKENS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The cookie's name over HTTPS (the ``__Host-`` prefix: Secure, path ``/``, no
#: Domain, so no other host or path can set or shadow it) and over plain HTTP.
SECURE_COOKIE = "__Host-omniroute_console"
PLAIN_COOKIE = "omniroute_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD")
SESSION = web.RequestKey("console_session", ConsoleSession)
SIGN_IN = "/console/sign-in"


def digest(session_id: str) -> bytes:
    """What the table keeps of a session id: its SHA-256."""
    return hashlib.sha256(session_id.encode()).digest()


def is_secure(request: web.Request, settings: ConsoleSettings) -> bool:
    """Whether the cookie is marked Secure: over HTTPS, or when configured
    (behind a proxy that ends TLS)."""
    return settings.secure_cookie or request.secure


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else PLAIN_COOKIE


def presented_id(request: web.Request) -> str | None:
    """The session id the browser sent, if any."""
    for name in (SECURE_COOKIE, PLAIN_COOKIE):
        value = request.cookies.get(name)
        if value:
            return value
    return None


async def open_session(request: web.Request, response: web.StreamResponse, token_name: str) -> None:
    """Store a new session for ``token_name`` and set its cookie on ``response``;
    a session the browser held before ends (a new id at every sign-in)."""
    rt = request.app[RUNTIME]
    settings = rt.settings.console
    earlier = presented_id(request)
    if earlier is not None:
        await rt.store.console.close(digest(earlier))
    session_id = secrets.token_urlsafe(32)
    absolute = settings.absolute_hours * 3600
    await rt.store.console.open(
        digest(session_id),
        token_name=token_name,
        csrf_token=secrets.token_urlsafe(32),
        idle_seconds=settings.idle_minutes * 60,
        absolute_seconds=absolute,
    )
    secure = is_secure(request, settings)
    response.set_cookie(
        cookie_name(secure),
        session_id,
        path="/",
        max_age=absolute,
        httponly=True,
        secure=secure,
        samesite="Strict",
    )


async def close_session(request: web.Request, response: web.StreamResponse) -> None:
    """Delete the request's session and its cookie."""
    session_id = presented_id(request)
    if session_id is not None:
        await request.app[RUNTIME].store.console.close(digest(session_id))
    for name in (SECURE_COOKIE, PLAIN_COOKIE):
        if name in request.cookies:
            response.del_cookie(name, path="/", secure=name == SECURE_COOKIE, samesite="Strict")


def check_origin(request: web.Request) -> None:
    """``Forbidden`` unless the request's ``Origin`` (or, without one, its
    ``Referer``) is this host: a change must come from the console's own pages."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        raise Forbidden(
            "a change must come from the console's own pages",
            fields=[FieldError("Origin", "missing; a browser sends it with every form")],
        )
    if urlsplit(origin).netloc.lower() != request.host.lower():
        raise Forbidden(
            "a change must come from the console's own pages",
            fields=[FieldError("Origin", f"{origin!r} is not this console's origin")],
        )


async def check_csrf(request: web.Request, session: ConsoleSession) -> None:
    """``Forbidden`` unless the request carries the session's CSRF token."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
        raise Forbidden(
            "the form is stale or did not come from the console; reload the page and try again",
            fields=[FieldError(CSRF_FIELD, "missing or not this session's token")],
        )


def _sign_in_first(request: web.Request) -> web.HTTPException | Unauthorized:
    if request.method in SAFE_METHODS and "text/html" in request.headers.get("Accept", ""):
        target = request.path_qs if request.path.startswith("/console") else "/console"
        return web.HTTPSeeOther(f"{SIGN_IN}?next={quote(target, safe='/')}")
    return Unauthorized(
        "sign in to the console first",
        fields=[FieldError("cookie", "no live console session")],
    )


def guarded(handler: Handler, scope: str) -> Handler:
    """``handler`` behind a live session whose token holds ``scope``, and, for
    a change, the Origin and CSRF checks. A page asked for without a session
    redirects to the sign-in form; anything else answers 401."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session_id = presented_id(request)
        rt = request.app[RUNTIME]
        session = await rt.store.console.touch(digest(session_id)) if session_id else None
        principal = None if session is None else request.app[TOKENS].named(session.token_name)
        if session is None or principal is None:
            raise _sign_in_first(request)
        if scope not in principal.scopes:
            raise Forbidden(
                f"token {principal.name!r} lacks the scope {scope!r}",
                fields=[FieldError("cookie", f"the session's token needs scope {scope!r}")],
            )
        if request.method not in SAFE_METHODS:
            check_origin(request)
            await check_csrf(request, session)
        request[SESSION] = session
        request[PRINCIPAL] = principal
        return await handler(request)

    return guarded


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console/live"
