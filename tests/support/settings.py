"""The test configuration: the repository root, API tokens, adapter secrets,
settings for an app on the test database, and what a config file reads from
the environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from router.settings import SCOPES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-all-scopes"
READ_TOKEN = "test-token-read-only"
#: The generic adapters of the test app, each with its current secret (an
#: older one is accepted too, as during a rotation).
SECRETS = {
    "chat": "chat-secret",
    "email": "email-secret",
    "voice": "voice-secret",
    "social": "social-secret",
}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings of the test app on ``database_url``; ``overrides`` replace
    whole top-level sections."""
    data: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": 0, "max_body_bytes": 64 * 1024},
        "database": {"url": database_url, "pool_min": 1, "pool_max": 5},
        "rules": {"paths": [str(ROOT / "rules")], "watch": False},
        "adapters": [
            {"name": name, "kind": name, "secrets": ["old-" + secret, secret]}
            for name, secret in SECRETS.items()
        ],
        "api": {
            "tokens": [
                {
                    "name": "all",
                    "token": TOKEN,
                    "scopes": list(SCOPES),
                },
                {"name": "reader", "token": READ_TOKEN, "scopes": ["reports:read"]},
            ],
            # the fuzz test presents bogus tokens by the hundred through the shared
            # app; the brake on failed attempts is tested on apps of its own
            "failed_auth_limit": 0,
        },
    }
    for key, value in overrides.items():
        data[key] = value
    return load_settings(ROOT / "tests" / "empty.yaml", overrides=data)


def env_names(path: Path) -> set[str]:
    """The environment variables a config file reads (``env:NAME`` values)."""
    return set(re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
