"""``omniroute agents import FILE``: agents in bulk, from NDJSON or CSV.

Each NDJSON line is an object like the body of ``PUT /v1/agents/{id}`` with
its ``agent_id``. A CSV file has a header line naming the columns
``agent_id`` (required), ``name``, ``capacity``, ``skills`` and
``channel_max``; a list cell holds ``key:value`` pairs separated by ``|``
(``billing:3|spanish:2``, ``chat:3|email:5``); an empty cell takes the
default. Every line is an upsert of its own (its own transaction): running
the file again changes nothing, a bad line is reported with its line number
and field and leaves no trace, and the good lines are applied."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from router.bodies import AgentLine
from router.errors import FieldError, field_errors
from router.models import unstorable_paths
from router.store import Store
from router.store.agents import AgentProfile

Format = Literal["ndjson", "csv"]
FORMATS: dict[str, Format] = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
CSV_COLUMNS = ("agent_id", "name", "capacity", "skills", "channel_max")
UNSTORABLE = "contains a NUL character or an unpaired surrogate, which cannot be stored"


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    errors: list[FieldError]

    def lines(self, path: Path) -> list[str]:
        return [f"{path.name}:{self.line}: {e.field}: {e.reason}" for e in self.errors]


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def format_of(path: Path, given: str | None) -> Format | None:
    """The file's format: ``given``, or by its extension; ``None`` when unknown."""
    if given is not None:
        return "csv" if given == "csv" else "ndjson"
    return FORMATS.get(path.suffix.lower())


def _profile(data: Any) -> AgentProfile | list[FieldError]:
    try:
        line = AgentLine.model_validate(data)
    except ValidationError as exc:
        return field_errors(exc)
    unstorable = unstorable_paths(line.model_dump())
    if unstorable:
        return [FieldError(f, UNSTORABLE) for f in unstorable]
    return AgentProfile(
        agent_id=line.agent_id,
        name=line.name,
        skills=dict(line.skills),
        capacity=line.capacity,
        channel_max={str(k): v for k, v in line.channel_max.items()},
    )


def _pairs(column: str, cell: str) -> dict[str, Any] | FieldError:
    """``a:1|b:2`` -> ``{"a": 1, "b": 2}`` (values that are not integers are
    left as text for the validation to name)."""
    out: dict[str, Any] = {}
    for part in cell.split("|"):
        if not part.strip():
            continue
        key, sep, value = part.rpartition(":")
        if not sep or not key.strip():
            return FieldError(column, f"{part!r} is not key:value (pairs separated by |)")
        value = value.strip()
        out[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return out


def _csv_data(row: dict[str, str | None]) -> dict[str, Any] | list[FieldError]:
    data: dict[str, Any] = {}
    errors: list[FieldError] = []
    for column, raw in row.items():
        cell = (raw or "").strip()
        if column is None or not cell:
            continue  # (a cell past the header: named by csv as None)
        if column in ("skills", "channel_max"):
            pairs = _pairs(column, cell)
            if isinstance(pairs, FieldError):
                errors.append(pairs)
            else:
                data[column] = pairs
        elif column == "capacity":
            data[column] = int(cell) if cell.lstrip("-").isdigit() else cell
        else:
            data[column] = cell
    return errors or data


def parse(path: Path, fmt: Format) -> Iterator[tuple[int, AgentProfile | list[FieldError]]]:
    """(line number, profile or errors) of every non-empty line."""
    if fmt == "ndjson":
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield number, [FieldError("line", f"invalid JSON: {exc}")]
                    continue
                yield number, _profile(data)
        return
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if "agent_id" not in header or unknown:
        reason = (
            f"unknown columns {', '.join(unknown)}" if unknown else "no agent_id column"
        ) + f" (columns: {', '.join(CSV_COLUMNS)})"
        yield 1, [FieldError("header", reason)]
        return
    for row in reader:
        number = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            yield number, [FieldError("line", "more cells than the header names")]
            continue
        data = _csv_data(row)
        yield number, data if isinstance(data, list) else _profile(data)


async def run(store: Store, path: Path, fmt: Format) -> Report:
    """Upsert every good line (one transaction each); report the bad ones."""
    report = Report()
    for number, parsed in parse(path, fmt):
        if isinstance(parsed, list):
            report.rejected.append(Rejected(number, parsed))
            continue
        done = await store.agents.upsert(parsed)
        if done.created:
            report.created += 1
        elif done.changed:
            report.updated += 1
        else:
            report.unchanged += 1
    return report
