"""Validation of the provider-specific settings an adapter entry carries in
config (``spec.options``), done once when the adapter is built."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from adapters.base import AdapterSpec
from router.errors import ConfigError


class Options:
    """Typed access to ``spec.options``; unknown keys and bad values are a ``ConfigError``."""

    def __init__(self, spec: AdapterSpec, *, allowed: Collection[str] = ()) -> None:
        self.spec = spec
        unknown = sorted(set(spec.options) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise self.error(f"unknown option(s) {', '.join(unknown)} (known: {known})")

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"adapter {self.spec.name!r} ({self.spec.kind}): {message}")

    def _get(self, name: str) -> Any:
        return self.spec.options.get(name)

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._get(name)
        if value is None:
            if required or default is None:
                raise self.error(f"option {name!r} is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"option {name!r} must be a non-empty string")
        return value.strip()

    def optional_string(self, name: str) -> str | None:
        return None if self._get(name) is None else self.string(name)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"option {name!r} must be true or false")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"option {name!r} must be an integer")
        if not minimum <= value <= maximum:
            raise self.error(f"option {name!r} must be between {minimum} and {maximum}")
        return value

    def choice(self, name: str, choices: Collection[str], default: str) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise self.error(f"option {name!r} must be one of {', '.join(sorted(choices))}")
        return value
