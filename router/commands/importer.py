"""``omniroute customers import FILE.ndjson``: bulk onboarding of a CRM export.

Each line is a JSON object like the body of ``POST /v1/customers``. Lines are
validated and normalized here, then written in batches (COPY). Progress is
kept per file in the database, so running the same command again after an
interruption resumes where it stopped. Rejected lines go to
``FILE.rejected.ndjson`` with their line number and reasons."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
from pydantic import ValidationError

from router.bodies import ProfileIn
from router.errors import field_errors
from router.models import unstorable_paths, uuid7
from router.recognition.identity import Normalizer, normalize_given
from router.store import Store, imports

BATCH = 20_000
UNSTORABLE = "contains a NUL character or an unpaired surrogate, which cannot be stored"


@dataclass
class Report:
    imported: int = 0
    rejected: int = 0
    skipped: int = 0  # already imported by an earlier run
    seconds: float = 0.0


def file_key(path: Path) -> str:
    """Identifies a file by its size and the hash of its first MiB."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    return f"{path.stat().st_size}:{hashlib.sha256(head).hexdigest()[:32]}"


def parse_line(
    number: int, raw: bytes, normalizer: Normalizer
) -> tuple[imports.LineRecord, list[imports.IdentityRecord]] | list[dict[str, str]]:
    """The line's records ready to import, or its errors."""
    try:
        body = ProfileIn.model_validate_json(raw)
    except ValidationError as exc:
        return [f.as_dict() for f in field_errors(exc)]
    if b"\\u" in raw:  # only an escape can put a NUL (or a lone surrogate) in JSON text
        unstorable = unstorable_paths(body.model_dump(exclude_unset=True))
        if unstorable:
            return [{"field": f, "reason": UNSTORABLE} for f in unstorable]
    given = body.given_identifiers()
    if not given:
        return [{"field": "crm_id", "reason": "give crm_id or identities"}]
    ranked, errors = normalize_given(given, normalizer)
    if errors:
        return errors
    attributes = orjson.dumps(body.attributes).decode() if body.attributes is not None else None
    line = (number, uuid7(), body.name, body.tier, body.language, body.segment, attributes)
    return line, [(number, rank, i.kind, i.value, i.verified) for rank, i in enumerate(ranked)]


def _batches(f: IO[bytes], skip: int, size: int) -> Iterator[list[tuple[int, bytes]]]:
    """Raw non-empty lines after the first ``skip``, ``size`` at a time."""
    batch: list[tuple[int, bytes]] = []
    for number, raw in enumerate(f, start=1):
        if number > skip and raw.strip():
            batch.append((number, raw))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def parse_batch(raw: list[tuple[int, bytes]], normalizer: Normalizer) -> imports.Batch:
    """Parse a batch (in a worker process: validation is CPU-bound)."""
    out = imports.Batch([], [], [], raw[-1][0] if raw else 0)
    for number, line in raw:
        parsed = parse_line(number, line, normalizer)
        if isinstance(parsed, list):
            out.rejected.append(orjson.dumps({"line": number, "errors": parsed}) + b"\n")
        else:
            out.lines.append(parsed[0])
            out.identities.extend(parsed[1])
    return out


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()

    def show(self, done_bytes: int, lines: int) -> None:
        if not self.tty:
            return
        rate = lines / max(time.monotonic() - self.started, 1e-9)
        share = done_bytes / self.total if self.total else 1
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {lines:>10,} lines {rate:>9,.0f}/s")
        sys.stderr.flush()

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


async def run(store: Store, path: Path, *, normalizer: Normalizer, batch: int = BATCH) -> Report:
    """Import the file, resuming after the lines an earlier run committed.

    A worker process parses the next batch while this one writes the current."""
    report = Report()
    started = time.monotonic()
    key = file_key(path)
    done = await store.imports.progress(key, path.name)
    report.skipped = done
    rejected_path = path.with_name(path.name + ".rejected.ndjson")
    progress = Progress(path.stat().st_size)
    loop = asyncio.get_running_loop()
    writing: asyncio.Task[None] | None = None

    async def write(parsed: imports.Batch, position: int) -> None:
        if parsed.rejected:
            rejected_out.writelines(parsed.rejected)
            rejected_out.flush()
        await store.imports.apply_batch(key, parsed)
        report.imported += len(parsed.lines)
        report.rejected += len(parsed.rejected)
        progress.show(position, report.imported + report.rejected)

    with (
        ProcessPoolExecutor(max_workers=1) as workers,
        path.open("rb") as f,
        rejected_path.open("ab") as rejected_out,
    ):
        try:
            for raw in _batches(f, done, batch):
                parsed = await loop.run_in_executor(workers, parse_batch, raw, normalizer)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write(parsed, f.tell()))
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
        progress.end()
    await store.imports.finish(key)
    if rejected_path.stat().st_size == 0:
        rejected_path.unlink()
    report.seconds = time.monotonic() - started
    return report
