"""One middleware maps every error to a JSON answer: ``RouterError`` subclasses
to their status with the offending fields, anything else to a logged 500."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from router.errors import (
    ClientDisconnected,
    FieldError,
    PayloadTooLarge,
    RequestTimeout,
    RouterError,
    StoreUnavailable,
    TooManyRequests,
)
from router.metrics import Metrics

log = structlog.get_logger("omniroute.http")


def error_response(exc: RouterError) -> web.Response:
    headers = {}
    if isinstance(exc, StoreUnavailable | TooManyRequests):
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


async def _answer_and_close(request: web.Request, response: web.Response) -> None:
    """Send the answer now and close the connection, without reading (or
    lingering over) the rest of a slow client's body."""
    response.force_close()
    transport = request.transport
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write_eof()
    if transport is not None:
        transport.close()


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
        except ConnectionResetError as exc:
            if request.transport is not None and not request.transport.is_closing():
                log.exception("unhandled_error", path=request.path, method=request.method)
                error = RouterError("internal error; the failure was logged")
            else:  # the client went away: nobody gets this answer
                metrics.client_disconnects.inc()
                log.info(
                    "client_disconnected",
                    path=request.path,
                    method=request.method,
                    error=str(exc) or type(exc).__name__,
                )
                return error_response(ClientDisconnected("the client went away"))
        except Exception:
            log.exception("unhandled_error", path=request.path, method=request.method)
            error = RouterError("internal error; the failure was logged")
        metrics.errors.labels(code=error.code, status=str(error.status)).inc()
        if error.status >= 500:
            log.warning("request_failed", path=request.path, code=error.code, message=error.message)
        response = error_response(error)
        if isinstance(error, RequestTimeout):
            await _answer_and_close(request, response)
        return response

    return middleware
