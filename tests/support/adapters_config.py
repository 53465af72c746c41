"""Adapter sections for test apps beyond the generic adapters."""

from __future__ import annotations

from typing import Any

from tests.support.settings import SECRETS


def zendesk_adapters(secret: str) -> list[dict[str, Any]]:
    """The test app's generic adapters and a ``zendesk`` one with ``secret``."""
    generic = [{"name": n, "kind": n, "secrets": [s]} for n, s in SECRETS.items()]
    return [*generic, {"name": "zendesk", "kind": "zendesk", "secrets": [secret]}]
