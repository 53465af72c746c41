"""One middleware maps every error to a JSON answer: ``RouterError`` subclasses
to their status with the offending fields, anything else to a logged 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from router.errors import FieldError, PayloadTooLarge, RouterError, StoreUnavailable
from router.metrics import Metrics

log = structlog.get_logger("omniroute.http")


def error_response(exc: RouterError) -> web.Response:
    headers = {}
    if isinstance(exc, StoreUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(
        status=exc.status,
        body=orjson.dumps(exc.as_dict()),
        content_type="application/json",
        headers=headers,
    )


def _from_http(exc: web.HTTPException) -> RouterError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(
            "request body too large",
            fields=[FieldError("body", exc.text or "over the configured limit")],
        )
    err = RouterError(exc.reason)
    err.status = exc.status
    err.code = exc.reason.lower().replace(" ", "_")
    return err


def error_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except RouterError as exc:
            error = exc
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = _from_http(exc)
        except Exception:
            log.exception("unhandled_error", path=request.path, method=request.method)
            error = RouterError("internal error; the failure was logged")
        metrics.errors.labels(code=error.code, status=str(error.status)).inc()
        if error.status >= 500:
            log.warning("request_failed", path=request.path, code=error.code, message=error.message)
        return error_response(error)

    return middleware
