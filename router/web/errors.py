"""One middleware maps every error to a JSON answer: a ``RouterError`` to the
status of its class in ``STATUS`` (the most specific class listed wins) with
the offending fields, anything else to a logged 500. Domain errors carry no
HTTP status; this table is the one place that gives them one."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from router.errors import (
    AdapterError,
    BadQuery,
    ClientDisconnected,
    Conflict,
    FieldError,
    Forbidden,
    Gone,
    InvalidBody,
    NotFound,
    PayloadError,
    PayloadTooLarge,
    ReplicaUnavailable,
    RequestError,
    RequestTimeout,
    RouterError,
    RulesRejected,
    SignatureError,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
    UnstorableValue,
    UnsupportedMediaType,
)
from router.metrics import Metrics

log = structlog.get_logger("omniroute.http")

#: The HTTP status of each error class; a class not listed takes its nearest
#: listed base's (``RouterError``, and so any error not meant for the caller: 500).
STATUS: dict[type[RouterError], int] = {
    RouterError: 500,
    RequestError: 400,
    BadQuery: 400,
    ClientDisconnected: 400,
    AdapterError: 400,
    Unauthorized: 401,
    SignatureError: 401,
    Forbidden: 403,
    NotFound: 404,
    RequestTimeout: 408,
    Conflict: 409,
    Gone: 410,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidBody: 422,
    RulesRejected: 422,
    PayloadError: 422,
    UnstorableValue: 422,
    TooManyRequests: 429,
    StoreUnavailable: 503,
    ReplicaUnavailable: 503,
}


class _HttpError(RouterError):
    """One of aiohttp's own answers (no route, method not allowed ...), as an error."""

    def __init__(self, exc: web.HTTPException) -> None:
        super().__init__(exc.reason)
        self.status = exc.status
        self.code = exc.reason.lower().replace(" ", "_")


def status_of(exc: RouterError) -> int:
    """The status of the most specific class of ``exc`` in ``STATUS`` (or,
    for one of aiohttp's own answers, its status)."""
    if isinstance(exc, _HttpError):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_response(exc: RouterError) -> web.Response:
    headers = {}
    if isinstance(exc, StoreUnavailable | TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(
        status=status_of(exc),
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
    return _HttpError(exc)


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
        status = status_of(error)
        metrics.errors.labels(code=error.code, status=str(status)).inc()
        if status >= 500:
            log.warning("request_failed", path=request.path, code=error.code, message=error.message)
        response = error_response(error)
        if isinstance(error, RequestTimeout):
            await _answer_and_close(request, response)
        return response

    return middleware
