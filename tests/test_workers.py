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
from tests.support.settings import ROOT, SECRETS


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
