"""What handlers read from the app and the request: the runtime (set while the
app runs, by ``router.web.app``) and the caller's token (set by the route
table's scope check, ``router.web.routes``); the tokens themselves, for the
console's sign-in."""

from __future__ import annotations

from aiohttp import web

from router.runtime import Runtime
from router.web.auth import Principal, Tokens

RUNTIME = web.AppKey("runtime", Runtime)
PRINCIPAL = web.RequestKey("principal", Principal)
TOKENS = web.AppKey("tokens", Tokens)
