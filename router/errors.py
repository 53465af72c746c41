"""One exception tree for the whole service, translated to HTTP at one boundary.

Every error carries the HTTP status it maps to, a stable machine-readable
``code`` and, where it helps the caller, the list of offending ``fields``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: where it is (dotted path) and why it is wrong."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class RouterError(Exception):
    """Base of every error omniroute raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = [f.as_dict() for f in self.fields]
        return body


class ConfigError(RouterError):
    """The service configuration is invalid; the service does not start."""

    code = "config_error"


class RequestError(RouterError):
    """The caller sent something we cannot accept (a 4xx)."""

    status = 400
    code = "bad_request"


class BadQuery(RequestError):
    """A query parameter is missing, malformed or out of range."""

    status = 400
    code = "bad_query"


class NotFound(RequestError):
    """The addressed resource does not exist."""

    status = 404
    code = "not_found"


class Unauthorized(RequestError):
    """No valid API token was presented."""

    status = 401
    code = "unauthorized"


class Forbidden(RequestError):
    """The API token lacks the scope the endpoint needs."""

    status = 403
    code = "forbidden"


class TooManyRequests(RequestError):
    """Too many failed attempts from the caller's address; retry after a while."""

    status = 429
    code = "too_many_requests"

    def __init__(
        self, message: str, *, retry_after: int, fields: list[FieldError] | None = None
    ) -> None:
        super().__init__(message, fields=fields)
        self.retry_after = retry_after


class PayloadTooLarge(RequestError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(RequestError):
    """The client did not send its request in time (a slow or stalled client)."""

    status = 408
    code = "request_timeout"


class ClientDisconnected(RequestError):
    """The client went away before its request was read or answered."""

    code = "client_disconnected"


class AdapterError(RequestError):
    """A channel adapter refused a delivery."""

    code = "adapter_error"


class SignatureError(AdapterError):
    """The delivery's signature is missing, malformed, expired or wrong."""

    status = 401
    code = "bad_signature"


class PayloadError(AdapterError):
    """The delivery's body does not match the adapter's schema."""

    status = 422
    code = "invalid_payload"


class UnsupportedMediaType(AdapterError):
    """The delivery's content type is not one the adapter reads."""

    status = 415
    code = "unsupported_media_type"


class UnstorableValue(RequestError):
    """The database refuses a value of the request (e.g. a NUL character in a
    text); retrying the same request cannot succeed."""

    status = 422
    code = "unstorable_value"


class RulesError(RouterError):
    """A ruleset failed to load; carries every problem found, with locations."""

    code = "rules_error"

    def __init__(self, message: str, *, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class StoreUnavailable(RouterError):
    """The database cannot be reached; the caller should retry later."""

    status = 503
    code = "store_unavailable"
    retry_after = 5


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as dotted field paths with a short reason each."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        out.append(FieldError(path or "body", err["msg"]))
    return out
