"""Fault-injection support shared by ``bench/chaos.py`` (long runs with printed
counts) and the fault tests (short runs in CI):

- :class:`Platform`, a load generator that behaves like a contact-center
  platform: every delivery has a unique external id and is retried, re-signed,
  with a small backoff, until it gets a 2xx; it remembers the first 2xx answer;
- :func:`verify`, the SQL check that every acknowledged delivery has exactly
  one record, the one the answer named, with the decision the answer gave;
- :class:`Omniroute`, an ``omniroute serve`` subprocess that can be killed
  with SIGKILL and started again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.generic import sign  # noqa: E402

CHANNELS = ("chat", "email", "voice", "social")
RULESET_HEADER = "X-Omniroute-Ruleset"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def contact(channel: str, external_id: str, who: int, run: str) -> dict[str, Any]:
    """A minimal valid delivery of the generic adapter for ``channel``; ``who``
    picks one of the run's customers, so customers come back across channels."""
    email = f"c{who}.{run}@example.com"
    if channel == "chat":
        return {"id": external_id, "customer": {"email": email}, "text": "where is my order"}
    if channel == "email":
        return {"id": external_id, "from": {"address": email}, "subject": "refund"}
    if channel == "voice":
        return {"id": external_id, "caller": f"+1415{who % 10_000_000:07d}"}
    return {"id": external_id, "platform": "x", "author": {"id": f"{run}-{who}"}, "text": "hi"}


@dataclass
class Delivery:
    """One delivery and what the platform saw of it."""

    adapter: str
    external_id: str
    body: bytes
    attempts: int = 0
    #: the first 2xx answer's contact (contact_id, customer_id, duplicate, decision)
    answer: dict[str, Any] | None = None
    ruleset: str | None = None
    rejected: int | None = None  # a 4xx: the platform gives up


@dataclass
class Platform:
    """Sends unique deliveries from ``concurrency`` workers and retries each one
    until it is acknowledged; a retry goes to the next of ``urls`` (a load
    balancer's failover). ``Retry-After`` is honoured up to ``max_backoff``."""

    urls: Sequence[str]
    secrets: Mapping[str, str]
    run: str
    channels: Sequence[str] = CHANNELS
    customers: int = 200
    timeout: float = 5.0
    max_backoff: float = 0.5
    deliveries: list[Delivery] = field(default_factory=list)
    #: answers by outcome: "200", "503", "500", "connection", "timeout", …
    outcomes: Counter[str] = field(default_factory=Counter)
    #: 503 answers without a Retry-After header (must stay 0)
    missing_retry_after: int = 0
    #: (started, finished, outcome) of every attempt, in monotonic time
    timeline: list[tuple[float, float, str]] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[str]:
        """The outcomes of the attempts made wholly between ``start`` and ``end``."""
        return [o for t0, t1, o in self.timeline if start < t0 and t1 < end]

    def first_success_after(self, start: float) -> float | None:
        """Seconds from ``start`` to the first 2xx answered after it."""
        done = [t1 for t0, t1, o in self.timeline if t1 > start and o.startswith("2")]
        return min(done) - start if done else None

    def add(self, adapter: str, payload: dict[str, Any]) -> Delivery:
        """Track a delivery of ``payload`` (its ``id`` must start with the run id)."""
        delivery = Delivery(adapter, payload["id"], orjson.dumps(payload))
        self.deliveries.append(delivery)
        return delivery

    def _new(self, rng: random.Random) -> Delivery:
        n = len(self.deliveries)
        channel = self.channels[n % len(self.channels)]
        who = rng.randrange(self.customers)
        return self.add(channel, contact(channel, f"{self.run}-{n}", who, self.run))

    async def run_for(
        self, duration: float, *, concurrency: int = 8, give_up_after: float = 60.0
    ) -> None:
        """New deliveries for ``duration`` seconds; then wait (at most
        ``give_up_after`` seconds more) until every one is acknowledged."""
        rng = random.Random(self.run)
        stop_new = time.monotonic() + duration
        give_up = stop_new + give_up_after
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker(offset: int) -> None:
                while time.monotonic() < stop_new:
                    await self.send(session, self._new(rng), offset, give_up)

            await asyncio.gather(*(worker(i) for i in range(concurrency)))

    async def send(
        self, session: aiohttp.ClientSession, d: Delivery, offset: int, give_up: float
    ) -> None:
        while True:
            url = self.urls[(offset + d.attempts) % len(self.urls)]
            d.attempts += 1
            headers = {
                "Content-Type": "application/json",
                "X-Omniroute-Signature": sign(d.body, self.secrets[d.adapter], int(time.time())),
            }
            wait = min(self.max_backoff, 0.02 * 2 ** min(d.attempts, 6))
            started = time.monotonic()
            try:
                async with session.post(
                    f"{url}/v1/webhooks/{d.adapter}", data=d.body, headers=headers
                ) as r:
                    body = await r.read()
                    outcome = str(r.status)
                    if r.status == 503:
                        retry_after = r.headers.get("Retry-After")
                        if retry_after is None:
                            self.missing_retry_after += 1
                        else:
                            wait = min(self.max_backoff, float(retry_after))
                    if 200 <= r.status < 300:
                        d.answer = orjson.loads(body)["contacts"][0]
                        d.ruleset = r.headers.get(RULESET_HEADER)
                    elif r.status < 500:
                        d.rejected = r.status
            except TimeoutError:
                outcome = "timeout"
            except (aiohttp.ClientError, OSError):
                outcome = "connection"
            self.outcomes[outcome] += 1
            self.timeline.append((started, time.monotonic(), outcome))
            if d.answer is not None or d.rejected is not None or time.monotonic() > give_up:
                return
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))


@dataclass
class Verdict:
    """What the database holds for a :class:`Platform` run."""

    deliveries: int
    acknowledged: int
    unacknowledged: int
    rejected: int
    retried: int
    duplicates_answered: int
    records: int
    lost: int
    doubled: int
    mismatched: int
    duplicate_on_first_try: int
    degraded: int

    @property
    def ok(self) -> bool:
        return not (
            self.unacknowledged
            or self.rejected
            or self.lost
            or self.doubled
            or self.mismatched
            or self.duplicate_on_first_try
        )

    def line(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in vars(self).items())


async def verify(database_url: str, platform: Platform) -> Verdict:
    """Compare what the platform was told with what was committed. Every
    acknowledged delivery must have exactly one record, the one its answer
    named (same contact id, same decision): so a retry whose earlier attempt
    had been committed was answered as that attempt's duplicate, and a retry
    answered as new had nothing committed before it."""
    con = await asyncpg.connect(database_url)
    try:
        rows = await con.fetch(
            """SELECT adapter, external_id, contact_id, decision::text AS decision,
                      context_degraded
                 FROM omniroute.contacts
                WHERE external_id LIKE $1 || '-%'""",
            platform.run,
        )
    finally:
        await con.close()
    records: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        records.setdefault((row["adapter"], row["external_id"]), []).append(row)
    acked = [d for d in platform.deliveries if d.answer is not None]
    lost = mismatched = first_try_dup = 0
    for d in acked:
        assert d.answer is not None
        found = records.get((d.adapter, d.external_id), [])
        if not found:
            lost += 1
            continue
        row = found[0]
        if (
            str(row["contact_id"]) != d.answer["contact_id"]
            or orjson.loads(row["decision"]) != d.answer["decision"]
        ):
            mismatched += 1
        if d.attempts == 1 and d.answer["duplicate"]:
            first_try_dup += 1
    return Verdict(
        deliveries=len(platform.deliveries),
        acknowledged=len(acked),
        unacknowledged=sum(d.answer is None and d.rejected is None for d in platform.deliveries),
        rejected=sum(d.rejected is not None for d in platform.deliveries),
        retried=sum(d.attempts > 1 for d in platform.deliveries),
        duplicates_answered=sum(bool(d.answer and d.answer["duplicate"]) for d in acked),
        records=len(rows),
        lost=lost,
        doubled=sum(len(found) > 1 for found in records.values()),
        mismatched=mismatched,
        duplicate_on_first_try=first_try_dup,
        degraded=sum(bool(r["context_degraded"]) for r in rows),
    )


def write_config(
    directory: Path,
    *,
    port: int,
    database_url: str,
    secrets: Mapping[str, str],
    rules: Sequence[Path],
    watch: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """An ``omniroute.yaml`` for a subprocess (JSON is valid YAML)."""
    config: dict[str, Any] = {
        "http": {"host": "127.0.0.1", "port": port, "shutdown_timeout": 2},
        "database": {"url": database_url, "pool_max": 10, "command_timeout": 3},
        "rules": {"paths": [str(p) for p in rules], "watch": watch},
        "adapters": [{"name": n, "kind": n, "secrets": [s]} for n, s in secrets.items()],
        "log": {"level": "warning", "format": "json"},
        **(extra or {}),
    }
    path = directory / f"omniroute-{port}.yaml"
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


# -- rules folders ------------------------------------------------------------


def copy_rules(directory: Path) -> Path:
    """A private copy of the repository's ``rules/`` folder."""
    target = directory / "rules"
    shutil.copytree(ROOT / "rules", target, dirs_exist_ok=True)
    return target


def _last_rules_file(rules: Path) -> Path:
    files = sorted(p for p in rules.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise FileNotFoundError(f"no rules files in {rules.name}/")
    return files[-1]


def edit_rules(rules: Path, marker: str) -> None:
    """A valid edit: a comment appended to a rules file changes the version."""
    path = _last_rules_file(rules)
    path.write_text(path.read_text() + f"\n# edited: {marker}\n")


def break_rules(rules: Path) -> None:
    """A broken edit: a rules file that is no longer valid YAML (a new file
    when the folder has none)."""
    try:
        path = _last_rules_file(rules)
        text = path.read_text()
    except FileNotFoundError:
        path, text = rules / "99-edit.yaml", ""
    path.write_text(text + "\nqueues: [unclosed\n  - : :\n")


def engine_reads_the_files() -> bool:
    """Whether ``load_ruleset`` versions the files' content (a placeholder
    engine returns one fixed version for any folder)."""
    from router.errors import RulesError
    from router.rules import load_ruleset

    with tempfile.TemporaryDirectory() as tmp:
        a, b = copy_rules(Path(tmp) / "a"), copy_rules(Path(tmp) / "b")
        try:
            edit_rules(b, "probe")
            return bool(load_ruleset([a]).version != load_ruleset([b]).version)
        except (FileNotFoundError, RulesError):
            return False


@dataclass
class Omniroute:
    """``omniroute serve`` as a subprocess on a fixed port, logging to a file."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DATABASE_URL", None)  # the config names the database
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "router.commands.cli",
                    "serve",
                    "--config",
                    str(self.config),
                ],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"omniroute exited with {code}: {self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"omniroute not ready after {timeout} s: {self.tail()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush, in-flight requests cut."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
