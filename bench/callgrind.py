"""Instruction counts of a benchmark's child process under valgrind's
callgrind (package ``valgrind``), counting only inside ``sys.call_tracing``:
the child runs each counted piece as ``sys.call_tracing(piece, ())`` after a
warm-up. Hash randomization is off, so that two runs of the same code count
within a few tenths of a per cent. Standard library only, like sources.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


def run(argv: Sequence[str], out: Path, *, dumps: bool) -> subprocess.CompletedProcess[str]:
    """``argv`` (the child's command) under callgrind, its profile in ``out``;
    with ``dumps``, one profile after each counted call (``out.1``, ``out.2``...)."""
    return subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=sys_call_tracing",
            *(["--dump-after=sys_call_tracing"] if dumps else []),
            f"--callgrind-out-file={out}",
            *argv,
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        check=True,
        text=True,
    )


def total(profile: Path) -> int:
    """The instructions a callgrind profile counted."""
    line = next(line for line in profile.read_text().splitlines() if line.startswith("totals:"))
    return int(line.split()[1])


def per_piece(
    argv: Sequence[str],
    out: Path,
    pieces: Sequence[str],
    per: int,
    keep: Path | None,
    prefix: str,
) -> dict[str, float]:
    """Instructions per item (``per`` items a piece) of each of ``pieces``,
    counted in that order by the child; with ``keep``, each piece's profile
    moved there (callgrind_annotate reads them)."""
    run(argv, out, dumps=True)
    figures = {}
    for n, piece in enumerate(pieces, start=1):
        dump = Path(f"{out}.{n}")
        figures[piece] = total(dump) / per
        if keep:
            dump.replace(keep / f"callgrind-{prefix}-{piece}.out")
    return figures
