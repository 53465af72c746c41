"""What every channel adapter is: verify a delivery, parse it into contacts
(and outcome events, where the provider reports them unambiguously), answer
handshakes, and shape the reply the provider expects.

Adapters are pure: they see a ``WebhookRequest`` (raw bytes and headers) and
return models; they never touch the network or the database.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from router.errors import (
    ConfigError,
    FieldError,
    PayloadError,
    UnsupportedMediaType,
    field_errors,
)
from router.models import (
    Contact,
    Nonce,
    OutcomeEvent,
    OverflowStep,
    Routed,
    WebhookReply,
    WebhookRequest,
)

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Parsed:
    """The contacts one delivery carries, and how many events were skipped
    (status callbacks, read receipts, echoes, typing indicators) (never changed once made)."""

    contacts: Sequence[Contact]
    ignored: int = 0
    reply: WebhookReply | None = None  # set when the delivery was only a handshake
    #: set when the signature does not cover the body but carries a one-time value
    nonce: Nonce | None = None
    #: outcomes the provider reports for contacts routed before (status
    #: callbacks), recorded as ``POST /v1/contacts/{id}/events`` records them
    outcomes: Sequence[OutcomeEvent] = ()
    #: every value of the contacts is one PostgreSQL can store, as the adapter
    #: checked (the pipeline does not look at them again)
    storable: bool = False


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """One configured adapter instance: its URL name, kind, secrets and options.

    This is the one place that decides which secrets are usable, for every
    adapter: empty and whitespace-only values are dropped (an unset previous
    secret, ``env:NAME`` with NAME empty), because an empty HMAC key or token
    is one anybody can use. An instance left without a usable secret is a
    ``ConfigError`` naming it and, when ``sources`` is given, the empty ones.
    """

    name: str
    kind: str
    secrets: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    #: where each secret came from, in order (``env:NAME`` or ``secrets[i]``), for messages
    sources: tuple[str, ...] = ()
    #: the sources of the secrets dropped as empty (set when built)
    dropped: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        labels = [
            self.sources[i] if i < len(self.sources) else f"secrets[{i}]"
            for i in range(len(self.secrets))
        ]
        pairs = list(zip(self.secrets, labels, strict=True))
        kept = [(s, label) for s, label in pairs if s.strip()]
        dropped = tuple(label for s, label in pairs if not s.strip())
        if not kept:
            reason = f"empty: {', '.join(dropped)}" if dropped else "none is configured"
            raise ConfigError(
                f"adapter {self.name!r} ({self.kind}): "
                f"needs at least one non-empty secret ({reason})"
            )
        object.__setattr__(self, "secrets", tuple(s for s, _ in kept))
        object.__setattr__(self, "sources", tuple(label for _, label in kept))
        object.__setattr__(self, "dropped", dropped)


class Adapter(ABC):
    """Base of all adapters; subclasses set ``kind`` and implement the hooks."""

    kind: ClassVar[str]
    #: What a contact carrying a value PostgreSQL cannot store (a NUL
    #: character, an unpaired surrogate) does to its delivery (docs/adapters.md).
    #: ``"refuse"``: the whole delivery is answered 422 naming each such field,
    #: before anything of it is routed (for platforms that read the answer and
    #: can fix and resend). ``"replace"``: each such character is replaced by
    #: U+FFFD and every contact is routed (for providers that cannot change
    #: their payload and redeliver on any error).
    unstorable: ClassVar[Literal["refuse", "replace"]] = "replace"

    def __init__(self, spec: AdapterSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every usable secret, newest first (``AdapterSpec`` dropped the empty ones)."""
        return self.spec.secrets

    @abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Raise ``SignatureError`` unless the delivery is authentic and fresh."""

    @abstractmethod
    def parse(self, request: WebhookRequest) -> Parsed:
        """Turn a verified delivery into normalized contacts (``PayloadError`` if bad)."""

    def handshake(self, request: WebhookRequest) -> WebhookReply:
        """Answer a GET verification handshake; adapters without one answer 405.

        A malformed handshake raises a ``RequestError`` naming the parameter
        (``BadQuery``); a value the provider asks to have echoed or signed is
        checked with ``adapters.challenges`` first."""
        return json_reply(
            {
                "error": "method_not_allowed",
                "message": "this adapter has no GET handshake",
            },
            status=405,
        )

    def reply(self, routed: Sequence[Routed], parsed: Parsed) -> WebhookReply:
        """The answer to a delivery whose contacts were all routed and recorded:
        each ``Routed`` but its ``external_id``, as ``model_dump(mode="json")``
        gives it, encoded by orjson straight from the models' fields."""
        return json_reply({"contacts": [_answer(r) for r in routed], "ignored": parsed.ignored})


def _answer(r: Routed) -> dict[str, Any]:
    # The decision's fields as they are (strings, numbers, tuples, nested
    # models: see _model_json); a UUID is written by orjson as pydantic
    # writes it. tests/adapters/test_base.py holds this to model_dump.
    return {
        "contact_id": r.contact_id,
        "customer_id": r.customer_id,
        "duplicate": r.duplicate,
        "decision": r.decision.__dict__,
    }


def _model_json(value: Any) -> Any:
    """orjson's ``default``: a nested model as ``model_dump(mode="json")``, and
    a UUID of a subclass (the database driver's) as text, as pydantic writes it."""
    if type(value) is OverflowStep:
        # a decision's (the models inside an answer): fields of JSON's types
        # (numbers, text, a tuple of text), which is what model_dump gives
        return value.__dict__
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_reply(body: Any, *, status: int = 200) -> WebhookReply:
    return WebhookReply(
        status=status, body=orjson.dumps(body, default=_model_json), content_type="application/json"
    )


def require_json(request: WebhookRequest) -> Any:
    """The body decoded as JSON, or a ``PayloadError``/``UnsupportedMediaType``."""
    if request.content_type not in ("application/json", "") and not request.content_type.endswith(
        "+json"
    ):
        raise UnsupportedMediaType(
            f"expected application/json, got {request.content_type!r}",
            fields=[FieldError("content-type", "must be application/json")],
        )
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(
            "body is not valid JSON", fields=[FieldError("body", f"invalid JSON: {exc}")]
        ) from None


def validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    """``model.model_validate(data)``, with errors turned into a ``PayloadError``.
    (The model's validator is called as ``model_validate`` calls it, without
    the checks of its keyword arguments around the call: a fifth of the
    cost of a chat delivery's validation.)"""
    try:
        validated: M = model.__pydantic_validator__.validate_python(data)
        return validated
    except ValidationError as exc:
        raise PayloadError(
            f"payload does not match the {model.__name__} schema",
            fields=field_errors(exc, prefix=prefix),
        ) from None
