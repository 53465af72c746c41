"""The project's code at a git revision, for benchmarks that measure an older
revision side by side with this tree (``--before REV``). Standard library
only: the benchmarks import it in processes that run the older code."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def source_of(rev: str, workdir: Path) -> Path:
    """The code at git revision ``rev`` (``router`` and ``adapters``), unpacked
    in ``workdir``: put it first on ``PYTHONPATH`` to run it."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "router", "adapters"],
        capture_output=True,
        check=True,
    ).stdout
    target = workdir / f"src-{rev.replace('/', '_')}"
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target
