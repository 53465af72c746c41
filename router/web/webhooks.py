"""``POST /v1/webhooks/{adapter}`` (deliveries) and ``GET`` (handshakes)."""

from __future__ import annotations

import structlog
from aiohttp import web

from adapters.base import Adapter
from adapters.signing import mismatch
from router.models import WebhookReply, WebhookRequest, now_ms
from router.runtime import Runtime
from router.settings import Settings
from router.web.state import RUNTIME

log = structlog.get_logger("omniroute.webhooks")


def _adapter(request: web.Request, rt: Runtime) -> Adapter | None:
    """The configured adapter the URL names; ``None`` (logged) for any other name."""
    name = request.match_info["adapter"]
    adapter = rt.adapters.get(name)
    if adapter is None:
        log.info("unknown_adapter", adapter=name[:100], method=request.method)
    return adapter


#: ``str(request.url)`` by (scheme, Host, raw path and query): the same for
#: every delivery to an adapter, and a few microseconds to build (yarl).
#: Emptied when full, so that no sender grows it without bound.
_URLS: dict[tuple[str, str, str], str] = {}
_URLS_MAX = 256


def public_url(request: web.Request, settings: Settings) -> str:
    """The URL the provider called: the configured public base URL + path, if set."""
    if settings.http.public_url:
        return settings.http.public_url.rstrip("/") + request.path_qs
    key = (request.scheme, request.host, request.raw_path)
    url = _URLS.get(key)
    if url is None:
        url = str(request.url)
        if len(_URLS) >= _URLS_MAX:
            _URLS.clear()
        _URLS[key] = url
    return url


async def _webhook_request(request: web.Request, settings: Settings) -> WebhookRequest:
    # read by the middleware already, within http.max_body_bytes and http.body_timeout
    body = await request.read()
    return WebhookRequest(
        method=request.method,
        url=public_url(request, settings),
        headers={k.lower(): v for k, v in request.headers.items()},
        # most deliveries have no query: no parse of one (yarl's MultiDict)
        query=dict(request.query) if request.query_string else {},
        body=body,
        received_at=now_ms(),
    )


#: Header of every webhook answer: the ruleset version the instance serves.
RULESET_HEADER = "X-Omniroute-Ruleset"


def _response(reply: WebhookReply, ruleset: str) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        headers={"Content-Type": reply.content_type, RULESET_HEADER: ruleset, **reply.headers},
    )


async def deliver(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    adapter = _adapter(request, rt)
    incoming = await _webhook_request(request, rt.settings)
    if adapter is None:
        # Answered as a generic adapter answers a caller without its secret
        # (401, the same body), so adapter names cannot be probed.
        rt.unknown_adapter.verify(incoming)
        raise mismatch("X-Omniroute-Signature")  # not reached: nobody knows the decoy's secret
    reply = await rt.pipeline.deliver(adapter, incoming)
    return _response(reply, rt.rules.active.version)


async def handshake(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    adapter = _adapter(request, rt) or rt.unknown_adapter  # 405, as a generic adapter
    incoming = await _webhook_request(request, rt.settings)
    return _response(adapter.handshake(incoming), rt.rules.active.version)
