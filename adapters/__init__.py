"""Channel adapters: each verifies a provider's delivery and parses it into
normalized contacts. ``KINDS`` maps the ``kind`` named in config to its class."""

from __future__ import annotations

from adapters.base import Adapter, AdapterSpec, Parsed
from adapters.generic import GENERIC
from router.errors import ConfigError

KINDS: dict[str, type[Adapter]] = {cls.kind: cls for cls in GENERIC}


def build(spec: AdapterSpec) -> Adapter:
    """The adapter instance for one configured ``{name, kind, secrets}`` entry."""
    try:
        cls = KINDS[spec.kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(
            f"adapter {spec.name!r}: unknown kind {spec.kind!r} (known: {known})"
        ) from None
    return cls(spec)


__all__ = ["KINDS", "Adapter", "AdapterSpec", "Parsed", "build"]
