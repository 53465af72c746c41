"""Whether the service may listen where it is told to.

The demo credentials are published (``config/omniroute.yaml``, the README,
``examples/send.py``): anyone who has read the docs can sign deliveries and
read every record with them. ``omniroute serve`` accepts them on loopback
only; anywhere else it refuses to start unless ``http.allow_demo_credentials``
is set, and then warns at every start.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

import structlog

from router.errors import ConfigError
from router.settings import Settings

log = structlog.get_logger("omniroute.exposure")

#: The published demo credentials. This is the one list: the config, the docs
#: and the examples use these values.
DEMO_CREDENTIALS = frozenset(
    {
        "demo-token",
        "demo-chat-secret",
        "demo-email-secret",
        "demo-voice-secret",
        "demo-social-secret",
    }
)
#: ``examples/send.py`` signs with ``demo-<adapter>-secret`` for any adapter
#: name, so every value of that form counts as published too.
DEMO_PATTERN = re.compile(r"demo-[a-z0-9_-]+-secret")

_DEMO_DIGESTS = frozenset(hashlib.sha256(v.encode()).digest() for v in DEMO_CREDENTIALS)


def is_demo(value: str) -> bool:
    """Whether a secret or token is one of the published demo values."""
    return value in DEMO_CREDENTIALS or DEMO_PATTERN.fullmatch(value) is not None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only: ``localhost``,
    127.0.0.0/8 or ::1. Any other name may resolve to a public interface; an
    empty host, ``0.0.0.0`` and ``::`` are every interface."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def demo_settings(settings: Settings) -> list[str]:
    """The settings that hold a demo credential (or mark the file as a demo)."""
    found = []
    if settings.demo:
        found.append("demo: true (the config file is the local demo)")
    for adapter in settings.adapters:
        if any(is_demo(secret) for secret in adapter.secrets):
            found.append(f"adapters[{adapter.name}].secrets")
    for token in settings.api.tokens:
        if token.digest in _DEMO_DIGESTS or (token.token is not None and is_demo(token.token)):
            found.append(f"api.tokens[{token.name}]")
    return found


def check(settings: Settings) -> None:
    """Refuse (``ConfigError``) to listen beyond loopback with demo credentials,
    unless ``http.allow_demo_credentials`` accepts it; then warn."""
    host = settings.http.host
    found = demo_settings(settings)
    if not found or is_loopback(host):
        return
    if settings.http.allow_demo_credentials:
        log.warning(
            "demo_credentials_exposed",
            host=host,
            settings=found,
            hint="anyone can sign deliveries and read the data with the published demo "
            "credentials; replace them before real use",
        )
        return
    raise ConfigError(
        f"refusing to listen on {host!r} with the published demo credentials of "
        f"{', '.join(found)}: anyone could sign deliveries and read the data with them. "
        "Replace them (start from config/omniroute.example.yaml), listen on loopback "
        "(http.host: 127.0.0.1), or accept the risk with http.allow_demo_credentials: true "
        "(OMNIROUTE_HTTP__ALLOW_DEMO_CREDENTIALS=true)"
    )
