"""One exception tree for the whole service.

Every error carries a stable machine-readable ``code`` and, where it helps the
caller, the list of offending ``fields``. Errors carry no HTTP status: the web
layer maps each class to one (``router/web/errors.py``), the most specific
class winning. The store translates the database driver's errors into
``StoreUnavailable`` and ``UnstorableValue``; nothing above it sees the driver.
"""

from __future__ import annotations

import uuid
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
    """The caller sent something we cannot accept."""

    code = "bad_request"


class BadQuery(RequestError):
    """A query parameter is missing, malformed or out of range."""

    code = "bad_query"


class InvalidBody(RequestError):
    """The request body does not match the endpoint's schema."""

    code = "invalid_body"


class NotFound(RequestError):
    """The addressed resource does not exist."""

    code = "not_found"


class UnknownCustomer(NotFound):
    """No customer has the given id."""

    def __init__(
        self, customer_id: uuid.UUID, *, field: str = "id", message: str | None = None
    ) -> None:
        super().__init__(
            message or f"no customer {customer_id}",
            fields=[FieldError(field, "unknown customer")],
        )
        self.customer_id = customer_id


class Gone(RequestError):
    """The addressed resource existed but was merged into another or erased."""

    code = "gone"


class CustomerGone(Gone):
    """The customer was merged into another one or erased."""

    def __init__(self, customer_id: uuid.UUID, *, merged_into: uuid.UUID | None) -> None:
        if merged_into is not None:
            message = f"customer {customer_id} was merged into {merged_into}"
            fields = [FieldError("id", f"merged into {merged_into}")]
        else:
            message = f"customer {customer_id} was erased"
            fields = [FieldError("id", "erased")]
        super().__init__(message, fields=fields)
        self.customer_id = customer_id
        self.merged_into = merged_into
        self.erased = merged_into is None


class Conflict(RequestError):
    """The request conflicts with the current state (the message says with what)."""

    code = "conflict"


class PublishConflict(Conflict):
    """A ruleset publication named a parent that is no longer the published version."""

    code = "publish_conflict"

    def __init__(self, current: str | None, parent: str | None) -> None:
        super().__init__(
            f"the published version is {current or 'none'}, not {parent or 'none'}; "
            "read the current version, merge, and publish again",
            fields=[FieldError("parent", f"the published version is {current or 'none'}")],
        )
        self.current = current
        self.parent = parent


class RulesRejected(RequestError):
    """Rules sent to be published do not load or their tests fail; each problem
    is a field error at its file."""

    code = "rules_rejected"


class AgentHoldsWork(Conflict):
    """An agent holding offered or assigned contacts cannot be removed."""

    code = "agent_holds_work"

    def __init__(self, agent_id: str, held: int) -> None:
        super().__init__(
            f"agent {agent_id} holds {held} contact(s); end or move them first",
            fields=[FieldError("id", f"holds {held} offered or assigned contact(s)")],
        )
        self.agent_id = agent_id
        self.held = held


class Unauthorized(RequestError):
    """No valid API token was presented."""

    code = "unauthorized"


class Forbidden(RequestError):
    """The API token lacks the scope the endpoint needs."""

    code = "forbidden"


class TooManyRequests(RequestError):
    """Too many failed attempts from the caller's address; retry after a while."""

    code = "too_many_requests"

    def __init__(
        self, message: str, *, retry_after: int, fields: list[FieldError] | None = None
    ) -> None:
        super().__init__(message, fields=fields)
        self.retry_after = retry_after


class PayloadTooLarge(RequestError):
    """The request body is over the configured limit."""

    code = "payload_too_large"


class RequestTimeout(RequestError):
    """The client did not send its request in time (a slow or stalled client)."""

    code = "request_timeout"


class ClientDisconnected(RequestError):
    """The client went away before its request was read or answered."""

    code = "client_disconnected"


class AdapterError(RequestError):
    """A channel adapter refused a delivery."""

    code = "adapter_error"


class SignatureError(AdapterError):
    """The delivery's signature is missing, malformed, expired or wrong."""

    code = "bad_signature"


class PayloadError(AdapterError):
    """The delivery's body does not match the adapter's schema."""

    code = "invalid_payload"


class UnsupportedMediaType(AdapterError):
    """The delivery's content type is not one the adapter reads."""

    code = "unsupported_media_type"


class UnstorableValue(RequestError):
    """The database refuses a value of the request (e.g. a NUL character in a
    text); retrying the same request cannot succeed."""

    code = "unstorable_value"


class RulesError(RouterError):
    """A ruleset failed to load; carries every problem found, with locations."""

    code = "rules_error"

    def __init__(self, message: str, *, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class RulesTestsFailed(RulesError):
    """A ruleset loads but some of its own tests fail; it must not go live."""

    code = "rules_tests_failed"


class NotRedecidable(RouterError):
    """A stored contact cannot be decided again (the message says why)."""

    code = "not_redecidable"


class Erased(NotRedecidable):
    """The record's personal data was erased, in whole or in part."""

    code = "erased"


class Unreadable(NotRedecidable):
    """The record's snapshots no longer read as the current models."""

    code = "unreadable"


class Unexplainable(NotRedecidable):
    """The ruleset version that decided a record is not stored or no longer loads."""

    code = "unexplainable"


class StoreUnavailable(RouterError):
    """The database cannot be reached right now; the caller should retry later."""

    code = "store_unavailable"
    #: seconds after which a retry may succeed
    retry_after = 5


class ReplicaUnavailable(StoreUnavailable):
    """A reporting read was refused: the replica is away or too far behind and
    the configuration keeps such reads off the primary."""

    code = "replica_unavailable"


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as dotted field paths with a short reason each."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        out.append(FieldError(path or "body", err["msg"]))
    return out
