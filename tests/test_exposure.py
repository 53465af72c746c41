"""The published demo credentials are served on loopback only: ``omniroute
serve`` refuses to listen anywhere else with them (single process, workers,
``--host``, the environment) unless told to accept the risk; the container
image ships none of them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.faults import free_port
from router import exposure
from router.errors import ConfigError
from router.runtime import build_adapters
from router.settings import load_settings
from tests.support.apps import ready
from tests.support.settings import ROOT, env_names

DEMO_CONFIG = ROOT / "config" / "omniroute.yaml"
#: nothing listens there: a service that does not refuse cannot get far
NO_DATABASE = "postgresql://postgres@127.0.0.1:9/none"


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``omniroute serve ARGS`` in the repository (the demo config's paths are
    relative to it); it must exit by itself."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTE_")}
    environ |= {"PYTHONPATH": str(ROOT), "DATABASE_URL": NO_DATABASE, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "router.commands.cli", "serve", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr
    assert "refusing to listen" in message
    assert "allow_demo_credentials" in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0"], {}),
        (["--host", "::"], {}),
        (["--host", "10.1.2.3"], {}),
        ([], {"OMNIROUTE_HTTP__HOST": "0.0.0.0"}),
        (["--host", "0.0.0.0", "--workers", "2"], {}),
    ],
    ids=["host-flag", "ipv6-any", "an-address", "environment", "workers"],
)
def test_the_demo_config_is_refused_off_loopback(args: list[str], env: dict[str, str]) -> None:
    result = serve("--config", str(DEMO_CONFIG), "--port", str(free_port()), *args, env=env)
    assert_refused(result, "api.tokens[demo]", "adapters[chat].secrets", "demo: true")


def test_demo_values_are_refused_in_any_config(tmp_path: Path) -> None:
    """Not only the demo file: a demo secret read from the environment, or the
    demo token given by its digest, in a config of one's own."""
    config = tmp_path / "omniroute.yaml"
    digest = hashlib.sha256(b"demo-token").hexdigest()
    config.write_text(
        "http: {host: 0.0.0.0}\n"
        "adapters: [{name: sms, kind: chat, secrets: [env:SMS_SECRET]}]\n"
        f'api: {{tokens: [{{name: ops, sha256: "{digest}", scopes: [reports:read]}}]}}\n'
    )
    result = serve("--config", str(config), env={"SMS_SECRET": "demo-sms-secret"})
    assert_refused(result, "adapters[sms].secrets", "api.tokens[ops]")


async def test_the_override_starts_and_warns(database_url: str) -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTE_")}
    environ |= {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "OMNIROUTE_HTTP__ALLOW_DEMO_CREDENTIALS": "true",
        "OMNIROUTE_RULES__WATCH": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "router.commands.cli", "serve", "--config", str(DEMO_CONFIG)]
        + ["--host", "0.0.0.0", "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await ready(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    warnings = [
        json.loads(line)
        for line in err.splitlines()
        if line.startswith("{") and "demo_credentials_exposed" in line
    ]
    assert len(warnings) == 1, err[-2000:]
    assert warnings[0]["level"] == "warning"
    assert "api.tokens[demo]" in warnings[0]["settings"]


def test_loopback_is_allowed_with_demo_values() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"):
        assert exposure.is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "example.com", "localhost.example.com"):
        assert not exposure.is_loopback(host), host
    exposure.check(load_settings(DEMO_CONFIG))  # the quick start: loopback, no error


def test_the_demo_config_says_it_is_one() -> None:
    settings = load_settings(DEMO_CONFIG)
    assert settings.demo
    secrets = {s for a in settings.adapters for s in a.secrets}
    tokens = {t.token for t in settings.api.tokens}
    assert secrets | tokens <= exposure.DEMO_CREDENTIALS


# -- the container image -------------------------------------------------------


def dockerfile() -> tuple[str, dict[str, str], list[str]]:
    """The Dockerfile's text, its ENV and its CMD."""
    text = (ROOT / "Dockerfile").read_text()
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if line.startswith("ENV "):
            env |= {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line[4:])}
        elif line.startswith("CMD "):
            cmd = json.loads(line[4:])
    return text, env, cmd


def image_config() -> Path:
    """The config file the image's command serves (WORKDIR /app holds the repository's
    config/ folder)."""
    _, env, cmd = dockerfile()
    assert cmd[:2] == ["omniroute", "serve"], cmd
    named = cmd[cmd.index("--config") + 1] if "--config" in cmd else env["OMNIROUTE_CONFIG"]
    assert named.startswith("/app/config/"), named
    return ROOT / named.removeprefix("/app/")


def test_the_image_ships_no_demo_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    text, env, _ = dockerfile()
    path = image_config()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    needed = env_names(path)
    assert needed, "the image's config reads its secrets from the environment"
    for name in needed:
        assert name in text, f"the Dockerfile does not document {name}"
        monkeypatch.setenv(name, f"operator-{name.lower()}")
    settings = load_settings(path)
    assert not exposure.is_loopback(settings.http.host)
    assert exposure.demo_settings(settings) == []
    exposure.check(settings)
    assert build_adapters(settings)
    assert settings.api.tokens


def test_the_image_fails_fast_without_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    path = image_config()
    for name in env_names(path):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    for name in env_names(path):
        assert f"environment variable {name} is not set" in caught.value.message
