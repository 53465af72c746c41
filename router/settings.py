"""Service settings: ``config/omniroute.yaml`` validated at start-up, each key
overridable from the environment (``OMNIROUTE_HTTP__PORT=9000``; nested keys
joined with ``__``), ``DATABASE_URL`` for the database. A secret or token may be
written ``env:NAME`` to read it from the environment instead of the file.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from router.errors import ConfigError
from router.models import BUILTIN_KINDS, CHANNELS
from router.store.config import DatabaseSettings

DEFAULT_CONFIG = Path("config/omniroute.yaml")
SCOPES = (
    "reports:read",
    "customers:read",
    "customers:write",
    "events:write",
    "rules:read",
    "rules:write",
    "metrics:read",
    "deliveries:read",
    "deliveries:write",
    "live:read",
    "agents:read",
    "agents:write",
    "console",
)
#: The events a destination may receive (``events`` filters among them).
EVENT_TYPES = (
    "contact.routed",
    "contact.step",
    "contact.expired",
    "contact.offered",
    "contact.assigned",
    "contact.answered",
    "contact.abandoned",
    "contact.resolved",
    "contact.closed",
)


def resolve_secret(value: str) -> str:
    """``env:NAME`` -> the value of environment variable NAME; anything else as is."""
    if value.startswith("env:"):
        name = value[4:]
        try:
            return os.environ[name]
        except KeyError:
            raise ValueError(f"environment variable {name} is not set") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Public base URL the providers call (for adapters that sign the URL).
    public_url: str | None = None
    shutdown_timeout: float = Field(default=30.0, ge=0)
    #: Seconds a request's header block may take to arrive (from the
    #: connection's opening, or the first byte of a next request).
    header_timeout: float = Field(default=10.0, gt=0)
    #: Seconds a request's body may take to arrive once its headers are in.
    body_timeout: float = Field(default=30.0, gt=0)
    #: Seconds an idle kept-alive connection stays open (behind a load
    #: balancer: longer than the balancer's own idle timeout).
    keepalive_timeout: float = Field(default=75.0, ge=0)
    #: bind with SO_REUSEPORT (set for the workers of ``serve --workers N``)
    reuse_port: bool = False
    #: Reverse proxies or load balancers (addresses or networks) whose
    #: ``X-Forwarded-For`` names the client, for the failed-token brake.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Start even with the published demo credentials on a non-loopback
    #: address (a warning is logged at every start); see ``router.exposure``.
    allow_demo_credentials: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class RulesSettings(_Section):
    paths: list[Path] = Field(default_factory=lambda: [Path("rules")])
    watch: bool = True
    #: ``files``: serve the files in ``paths`` (reloaded on change when
    #: ``watch``); ``database``: serve the version published through the API
    #: or ``omniroute rules publish`` (the files in ``paths`` are published
    #: as the first version when none is). See docs/rules.md, "Governance".
    source: Literal["files", "database"] = "files"


class ContextProviderSettings(_Section):
    """An HTTP lookup to a CRM at routing time. ``url`` is a template with
    placeholders for identifier kinds (``{email}``, ``{phone}``, ``{crm}``…) and
    ``{customer_id}``; contacts lacking a placeholder's value are not looked up."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(default=150, ge=1, le=10_000)
    cache_ttl_seconds: float = Field(default=300, ge=0)
    cache_size: int = Field(default=100_000, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30, gt=0)

    def resolved_headers(self) -> dict[str, str]:
        return {k: resolve_secret(v) for k, v in self.headers.items()}


class CustomKind(_Section):
    """An identifier kind of your own (a loyalty card, a contract number…)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    case_insensitive: bool = False


class IdentitySettings(_Section):
    default_region: str = Field(default="US", min_length=2, max_length=2)
    kinds: list[CustomKind] = Field(default_factory=list)

    @field_validator("kinds")
    @classmethod
    def _not_builtin(cls, value: list[CustomKind]) -> list[CustomKind]:
        for kind in value:
            if kind.name in BUILTIN_KINDS:
                raise ValueError(f"{kind.name!r} is a built-in kind")
        return value


class AdapterSettings(BaseModel):
    """One adapter instance: URL name, kind, secrets; other keys are kind options."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    kind: str
    #: the values (``env:NAME`` resolved); which are usable is decided by ``AdapterSpec``
    secrets: list[str] = Field(default_factory=list)
    #: ``none``: keep no lifecycle for this adapter's contacts (no waiting
    #: state, no overflow timers, no expiry), for platforms that only want decisions
    lifecycle: Literal["on", "none"] = "on"
    _sources: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("secrets")
    @classmethod
    def _resolve(cls, value: list[str]) -> list[str]:
        return [resolve_secret(v) for v in value]

    @model_validator(mode="wrap")
    @classmethod
    def _remember_sources(
        cls, data: Any, handler: ModelWrapValidatorHandler[AdapterSettings]
    ) -> AdapterSettings:
        model = handler(data)
        raw = data.get("secrets") if isinstance(data, Mapping) else None
        if isinstance(raw, list):
            model._sources = tuple(
                v if isinstance(v, str) and v.startswith("env:") else f"secrets[{i}]"
                for i, v in enumerate(raw)
            )
        return model

    @property
    def secret_sources(self) -> tuple[str, ...]:
        """Where each secret came from: ``env:NAME``, or ``secrets[i]`` for a literal
        (never the value), for messages about empty or weak secrets."""
        return self._sources or tuple(f"secrets[{i}]" for i in range(len(self.secrets)))

    @property
    def options(self) -> dict[str, Any]:
        extra = self.model_extra or {}
        return {k: resolve_secret(v) if isinstance(v, str) else v for k, v in extra.items()}


class _Destination(_Section):
    """What every destination has: a name, filters (``adapters``, ``channels``,
    ``queues``, ``events``; unset: everything), concurrency and a timeout."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    adapters: list[str] | None = None
    channels: list[str] | None = None
    queues: list[str] | None = None
    events: list[str] | None = None
    #: attempts in flight at once to this destination
    concurrency: int = Field(default=8, ge=1, le=256)
    #: seconds an attempt may take (connect, send, answer)
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        for event in value or ():
            if event not in EVENT_TYPES:
                raise ValueError(f"unknown event {event!r} (known: {', '.join(EVENT_TYPES)})")
        return value


def _credential(value: str) -> str:
    """A provider credential (``env:NAME`` resolved), refused when empty."""
    resolved = resolve_secret(value).strip()
    if not resolved:
        raise ValueError("must not be empty (an unset or empty env: variable?)")
    return resolved


class WebhookDestination(_Destination):
    """A ``webhook`` URL, signed per Standard Webhooks with ``secrets``
    (``whsec_…``, newest first; every one signs, for rotation)."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    #: the values (``env:NAME`` resolved); empty ones are dropped, none left is an error
    secrets: list[str] = Field(default_factory=list)

    @field_validator("secrets")
    @classmethod
    def _usable(cls, value: list[str]) -> list[str]:
        # The adapters' rule (adapters.base.AdapterSpec): an empty or blank
        # secret (an unset env:NAME) is dropped, none left is refused.
        kept = [s.strip() for s in (resolve_secret(v) for v in value) if s.strip()]
        if not kept:
            raise ValueError("needs at least one non-empty secret (whsec_...)")
        for secret in kept:
            if not secret.startswith("whsec_"):
                raise ValueError("a secret is written whsec_ followed by base64")
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except ValueError:
                raise ValueError("a secret is written whsec_ followed by base64") from None
            if len(key) < 24:
                raise ValueError("a secret's key must be 24 to 64 bytes (whsec_ + base64)")
        return kept


#: The TaskRouter task channel of each of our channels (``task_channels`` overrides).
TASK_CHANNELS = {"voice": "voice", "chat": "chat", "email": "email", "social": "chat"}


class _ProviderDestination(_Destination):
    """A provider's API acting on routed contacts: only ``contact.routed``."""

    events: list[str] | None = Field(default_factory=lambda: ["contact.routed"])

    @field_validator("events")
    @classmethod
    def _routed_only(cls, value: list[str] | None) -> list[str]:
        if value is not None and set(value) != {"contact.routed"}:
            raise ValueError("a provider destination receives contact.routed only")
        return ["contact.routed"]


class TaskRouterDestination(_ProviderDestination):
    """``twilio-taskrouter``: each routed contact becomes a TaskRouter Task."""

    kind: Literal["twilio-taskrouter"]
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    #: the account's auth token (or an API key's secret), ``env:NAME`` preferred
    auth_token: str
    workspace_sid: str = Field(pattern=r"^WS[0-9a-fA-F]{32}$")
    workflow_sid: str = Field(pattern=r"^WW[0-9a-fA-F]{32}$")
    base_url: str = Field(default="https://taskrouter.twilio.com", pattern=r"^https?://")
    #: our channel -> TaskRouter task channel unique name (merged over ``TASK_CHANNELS``)
    task_channels: dict[str, str] = Field(default_factory=dict)
    #: seconds a task may wait unassigned before TaskRouter cancels it (Twilio: at most 2 weeks)
    task_timeout: int = Field(default=86400, ge=1, le=1_209_600)

    @field_validator("auth_token")
    @classmethod
    def _token(cls, value: str) -> str:
        return _credential(value)

    @field_validator("task_channels")
    @classmethod
    def _channels(cls, value: dict[str, str]) -> dict[str, str]:
        for channel in value:
            if channel not in CHANNELS:
                raise ValueError(f"{channel!r} is not a channel ({', '.join(CHANNELS)})")
        return {**TASK_CHANNELS, **value}

    def task_channel(self, channel: str) -> str:
        merged = self.task_channels or TASK_CHANNELS
        return merged.get(channel, "default")


class ZendeskDestination(_ProviderDestination):
    """``zendesk``: the ticket a contact came from gets the decision's group,
    priority and tags."""

    kind: Literal["zendesk"]
    #: ``acme`` for https://acme.zendesk.com; or ``base_url`` (tests, a proxy)
    subdomain: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    #: the agent whose API token is used
    email: str = Field(min_length=3)
    api_token: str
    #: queue -> Zendesk group id; a queue not in it leaves the ticket's group alone
    groups: dict[str, int] = Field(default_factory=dict)

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: str) -> str:
        return _credential(value)

    @model_validator(mode="after")
    def _one_address(self) -> ZendeskDestination:
        if (self.subdomain is None) == (self.base_url is None):
            raise ValueError("give exactly one of subdomain or base_url")
        return self

    @property
    def api_url(self) -> str:
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return f"https://{self.subdomain}.zendesk.com"


def _destination_kind(value: Any) -> str:
    kind = value.get("kind", "webhook") if isinstance(value, Mapping) else value.kind
    return str(kind)


#: One configured destination; ``kind`` picks the model (``webhook`` when unset).
DestinationSettings = Annotated[
    Annotated[WebhookDestination, Tag("webhook")]
    | Annotated[TaskRouterDestination, Tag("twilio-taskrouter")]
    | Annotated[ZendeskDestination, Tag("zendesk")],
    Discriminator(_destination_kind),
]


class DeliverySettings(_Section):
    """How the dispatchers deliver the outbox's events."""

    #: a failed event is retried (exponential backoff with jitter) until this
    #: many seconds after it was written (or retried by hand), then dead (failed)
    retry_horizon: float = Field(default=86400.0, gt=0)
    #: the first retry's delay in seconds; each next one doubles, up to ``max_delay``
    retry_base: float = Field(default=1.0, gt=0)
    retry_max_delay: float = Field(default=3600.0, gt=0)
    #: seconds between looks for due events when no notification arrives
    poll_interval: float = Field(default=1.0, gt=0)
    #: delivered events are deleted this many days after they were written
    #: (failed ones are kept until retried or deleted by hand)
    keep_delivered_days: float = Field(default=7.0, gt=0)


class TokenSettings(_Section):
    """An API token: the token itself (or ``env:NAME``) or its SHA-256 hex."""

    name: str
    token: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    scopes: list[str] = Field(default_factory=list)

    @field_validator("token")
    @classmethod
    def _resolve(cls, value: str | None) -> str | None:
        return resolve_secret(value) if value is not None else None

    @field_validator("sha256", mode="before")
    @classmethod
    def _quoted(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise ValueError(
                "write the digest as a quoted string: YAML reads an unquoted digest "
                "of digits as a number"
            )
        return value

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> TokenSettings:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token or sha256")
        return self

    @property
    def digest(self) -> bytes:
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).digest()


class ApiSettings(_Section):
    tokens: list[TokenSettings] = Field(default_factory=list)
    #: Failed bearer-token attempts allowed per client address within
    #: ``failed_auth_window`` seconds; beyond, 429 until the window has passed
    #: (0: no limit). Counted in each process's memory.
    failed_auth_limit: int = Field(default=10, ge=0)
    failed_auth_window: float = Field(default=60.0, gt=0)


class MetricsSettings(_Section):
    #: Serve ``/metrics`` without a token (otherwise the scope ``metrics:read``
    #: is needed): for a port only the monitoring network reaches.
    public: bool = False


class ReportingSettings(_Section):
    #: Keep routed-contact records this many months (whole monthly partitions
    #: are dropped once entirely older); ``None`` keeps everything.
    retention_months: int | None = Field(default=None, ge=1)
    #: Seconds between runs of the rollup job.
    rollup_interval: float = Field(default=60.0, gt=0)
    #: Longest an export may stream, in seconds.
    export_timeout: float = Field(default=3600.0, gt=0)


class LifecycleSettings(_Section):
    """The lifecycle of routed contacts (docs/lifecycle.md)."""

    #: Seconds a contact stays open without a terminal outcome before it expires.
    lifetime_seconds: float = Field(default=24 * 3600, gt=0)
    #: Per channel: a lifetime in seconds, or ``none`` (no lifecycle for the channel).
    channels: dict[str, float | Literal["none"]] = Field(default_factory=dict)
    #: Seconds between two looks for due overflow steps (a step fires at most
    #: this long after its due time, plus the time to apply it).
    step_interval: float = Field(default=0.25, gt=0, le=60)
    #: Seconds between two runs of the expiry job.
    expiry_interval: float = Field(default=30.0, gt=0)
    #: Contacts claimed by one statement of the step and expiry jobs.
    batch: int = Field(default=500, ge=1, le=10_000)

    @field_validator("channels")
    @classmethod
    def _known_channels(
        cls, value: dict[str, float | Literal["none"]]
    ) -> dict[str, float | Literal["none"]]:
        for channel, lifetime in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"{channel!r} is not a channel ({', '.join(CHANNELS)})")
            if lifetime != "none" and lifetime <= 0:
                raise ValueError(f"{channel}: a lifetime must be more than 0 seconds")
        return value

    def lifetime(self, channel: str) -> float | None:
        """Seconds a contact of ``channel`` stays open; ``None``: no lifecycle."""
        value = self.channels.get(channel, self.lifetime_seconds)
        return None if value == "none" else float(value)


PRESENCES = ("available", "busy", "away", "offline")


class AgentSettings(_Section):
    """Agents, their presence and the work each channel's contact takes (docs/agents.md)."""

    #: Capacity units one contact of each channel takes from an agent (default
    #: capacity 100): one call, or three chats, or a chat and two e-mails.
    units: dict[str, int] = Field(
        default_factory=lambda: {"voice": 100, "chat": 34, "social": 25, "email": 20}
    )
    #: A platform's own presence names mapped to ours, e.g. ``{"on_break": "away"}``.
    presence_names: dict[str, Literal["available", "busy", "away", "offline"]] = Field(
        default_factory=dict
    )
    #: Seconds an offer waits for accept or reject when the queue names none.
    offer_timeout: float = Field(default=120.0, gt=0, le=86_400)

    @field_validator("units")
    @classmethod
    def _units(cls, value: dict[str, int]) -> dict[str, int]:
        for channel, units in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"{channel!r} is not a channel ({', '.join(CHANNELS)})")
            if not 0 <= units <= 100_000:
                raise ValueError(f"{channel}: units must be between 0 and 100000")
        return value

    def units_of(self, channel: str) -> int:
        """Units a contact of ``channel`` takes (a whole default capacity if unset)."""
        return self.units.get(channel, 100)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ConsoleSettings(_Section):
    """The supervisors' web console at ``/console`` (docs/console.md)."""

    #: Minutes a session lives without a request.
    idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: Hours a session lives at most, however busy.
    absolute_hours: int = Field(default=12, ge=1, le=7 * 24)
    #: Mark the cookie ``Secure`` (and name it ``__Host-``) even when the request
    #: came over plain HTTP: set it behind a proxy that ends TLS.
    secure_cookie: bool = False
    #: Days a replay preview of candidate rules may reach back.
    replay_max_days: int = Field(default=31, ge=1, le=366)


class Settings(BaseSettings):
    """All of omniroute's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="OMNIROUTE_", env_nested_delimiter="__", extra="forbid"
    )

    #: The file is the local demo (``config/omniroute.yaml``): refused off loopback
    #: like the demo credentials it holds.
    demo: bool = False
    http: HttpSettings = Field(default_factory=HttpSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    adapters: list[AdapterSettings] = Field(default_factory=list)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    context_provider: ContextProviderSettings | None = None
    reporting: ReportingSettings = Field(default_factory=ReportingSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @model_validator(mode="after")
    def _unique_adapters(self) -> Settings:
        names = [a.name for a in self.adapters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapter names must be unique: {', '.join(dupes)}")
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destination names must be unique: {', '.join(dupes)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (the file arrives as init arguments).
        return env_settings, init_settings


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def load_settings(
    path: Path | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from the YAML file (``path``, ``$OMNIROUTE_CONFIG`` or the default),
    then the environment, then ``overrides`` (used by tests)."""
    if path is None:
        env_path = os.environ.get("OMNIROUTE_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG
        data = read_yaml(path) if path.exists() or env_path else {}
    else:
        data = read_yaml(path)
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{path}: invalid configuration: {problems}") from None
    if settings.database.url is None and os.environ.get("DATABASE_URL"):
        settings.database.url = os.environ["DATABASE_URL"]
    if settings.database.replica_url is None and os.environ.get("DATABASE_REPLICA_URL"):
        settings.database.replica_url = os.environ["DATABASE_REPLICA_URL"]
    return settings
