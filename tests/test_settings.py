"""The configuration files shipped in ``config/`` load as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import ConfigError
from router.runtime import build_adapters
from router.settings import SCOPES, load_settings
from tests.support.settings import ROOT, env_names

CONFIGS = sorted((ROOT / "config").glob("*.y*ml"))


def test_there_are_config_files() -> None:
    assert {p.name for p in CONFIGS} >= {"omniroute.yaml", "omniroute.example.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_file_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(path):
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    for name in ("OMNIROUTE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(path)
    assert build_adapters(settings)  # every adapter kind and option is valid
    for token in settings.api.tokens:
        assert token.digest


def test_an_unquoted_digest_of_digits_is_explained(tmp_path: Path) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_text(f"api: {{tokens: [{{name: r, sha256: {'0' * 64}, scopes: []}}]}}\n")
    with pytest.raises(ConfigError, match="quoted string"):
        load_settings(config)


def test_the_quick_start_token_can_call_every_endpoint() -> None:
    """The demo token of the quick start holds every scope (a new scope is
    added to it, or the README's examples answer 403)."""
    settings = load_settings(ROOT / "config" / "omniroute.yaml")
    [demo] = settings.api.tokens
    assert set(demo.scopes) == set(SCOPES)


def test_the_replica_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "omniroute.yaml"
    config.write_text("database: {replica_url: 'env:REPORTS_DB'}\n")
    monkeypatch.setenv("REPORTS_DB", "postgresql://reports@replica-1/omniroute")
    assert load_settings(config).database.replica_url == "postgresql://reports@replica-1/omniroute"
    monkeypatch.delenv("REPORTS_DB")
    with pytest.raises(ConfigError, match="REPORTS_DB is not set"):
        load_settings(config)
    config.write_text("database: {max_lag_seconds: 5}\n")
    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgresql://reports@replica-2/omniroute")
    assert load_settings(config).database.replica_url == "postgresql://reports@replica-2/omniroute"
    config.write_text("database: {replica_fallback: never}\n")
    with pytest.raises(ConfigError, match="replica_fallback"):
        load_settings(config)
