"""``omniroute serve --workers N``: several processes on one port, one shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from bench.faults import free_port
from tests.support.apps import ready
from tests.support.examples import example, unique
from tests.support.settings import ROOT, SECRETS, TOKEN


async def test_workers_share_the_port_and_stop_together(database_url: str, tmp_path: Path) -> None:
    import time

    import orjson

    from adapters.generic import sign

    port = free_port()
    config = tmp_path / "omniroute.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"rules: {{paths: [{ROOT / 'rules'}], watch: false}}\n"
        f"adapters: [{{name: chat, kind: chat, secrets: [{SECRETS['chat']}]}}]\n"
        "log: {level: warning}\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router.commands.cli",
            "serve",
            "--config",
            str(config),
            "--workers",
            "2",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        await ready(proc, port)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        statuses = []
        for _ in range(20):
            body = orjson.dumps(example("chat", id=unique()))
            headers = {
                "Content-Type": "application/json",
                "X-Omniroute-Signature": sign(body, SECRETS["chat"], int(time.time())),
            }
            # a fresh connection each time, so the kernel may pick either worker
            async with (
                aiohttp.ClientSession() as one,
                one.post(
                    f"http://127.0.0.1:{port}/v1/webhooks/chat", data=body, headers=headers
                ) as r,
            ):
                statuses.append(r.status)
        assert statuses == [200] * 20
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists()


async def test_with_destinations_one_process_of_its_own_dispatches(
    database_url: str, tmp_path: Path
) -> None:
    import time

    import orjson

    from adapters.generic import sign
    from tests.support.apps import eventually
    from tests.support.receivers import receiver, whsec

    port = free_port()
    config = tmp_path / "omniroute.yaml"
    async with receiver() as r:
        config.write_text(
            f"http: {{host: 127.0.0.1, port: {port}}}\n"
            f"rules: {{paths: [{ROOT / 'rules'}], watch: false}}\n"
            f"adapters: [{{name: chat, kind: chat, secrets: [{SECRETS['chat']}]}}]\n"
            f"destinations: [{{name: {unique('w').lower()}, url: '{r.url}',"
            f" secrets: ['{whsec()}']}}]\n"
            "delivery: {poll_interval: 0.2}\n"
            f"api: {{tokens: [{{name: ops, token: {TOKEN}, scopes: [deliveries:read]}}]}}\n"
            "log: {level: warning}\n"
        )
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
        argv = ["-m", "router.commands.cli", "serve", "--config", str(config), "--workers", "2"]
        proc = subprocess.Popen([sys.executable, *argv], env=env, stderr=subprocess.DEVNULL)
        try:
            await ready(proc, port)
            children = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
            # two HTTP workers and the dispatcher
            assert sorted(c[3].decode() for c in commands) == ["dispatch", "serve", "serve"]
            ids = []
            for _ in range(6):
                body = orjson.dumps(example("chat", id=unique()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Omniroute-Signature": sign(body, SECRETS["chat"], int(time.time())),
                }
                async with (
                    aiohttp.ClientSession() as one,
                    one.post(
                        f"http://127.0.0.1:{port}/v1/webhooks/chat", data=body, headers=headers
                    ) as answer,
                ):
                    assert answer.status == 200
                    ids.append((await answer.json())["contacts"][0]["contact_id"])

            async def arrived() -> set[str]:
                return {x.json()["data"]["contact_id"] for x in r.received}

            await eventually(arrived, lambda got: got == set(ids), timeout=20)
            # the HTTP workers do not dispatch: none of them has a circuit to show
            for _ in range(6):
                async with (
                    aiohttp.ClientSession() as one,
                    one.get(
                        f"http://127.0.0.1:{port}/v1/deliveries",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as listed,
                ):
                    assert listed.status == 200, await listed.text()
                    assert (await listed.json())["destinations"] == []
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists()
