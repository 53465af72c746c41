"""Loading a ruleset: the one place in the rules engine that reads files.

``load_ruleset`` takes files and directories (a directory means the sorted
``*.yaml`` / ``*.yml`` files in it), reads them as one ruleset and either
returns it compiled or raises :class:`~router.errors.RulesError` listing every
problem as ``file:line:col: rule 'name': message``.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from router.errors import RulesError
from router.rules.compiler import compile_ruleset
from router.rules.engine import Ruleset
from router.rules.source import Problems, Source, parse

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Loaded:
    """The outcome of a load: the ruleset (None on errors) and every problem."""

    ruleset: Ruleset | None
    errors: list[str]
    warnings: list[str]


def version_of(texts: dict[str, str]) -> str:
    """Content hash of a ruleset: sha256 over file names and bytes, 12 hex digits."""
    digest = hashlib.sha256()
    for name in sorted(texts):
        digest.update(name.encode() + b"\x00" + texts[name].encode() + b"\x00")
    return digest.hexdigest()[:12]


def rule_files(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The rules files named by ``paths`` (sorted by file name), and problems."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = [p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()]
            if not found:
                problems.append(f"{path}:1:1: no *.yaml or *.yml files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}:1:1: no such file or directory")
    return sorted(files, key=lambda p: (p.name, str(p))), problems


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a ruleset is built: reading and compiling
    make many objects and few cycles, and the collector, run over and over as the
    objects pile up, would take about half of the time. It runs again after."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def build(named: Sequence[tuple[str, str, str]], *, exact: bool = False) -> Loaded:
    """Compile (name, shown path, text) triples as one ruleset. ``exact`` reads every
    file with the exact YAML reader (see :mod:`router.rules.source`)."""
    with _collector_paused():
        return _build(named, exact=exact)


def _build(named: Sequence[tuple[str, str, str]], *, exact: bool) -> Loaded:
    problems = Problems()
    sources: list[Source] = []
    texts: dict[str, str] = {}
    for name, shown, text in named:
        if name in texts:
            problems.at(shown, 1, 1, f"another file is also named {name!r}; names must differ")
            continue
        texts[name] = text
        source, syntax = parse(name, shown, text, exact=exact)
        if syntax is not None:
            problems.at(shown, *syntax)
            continue
        sources.append(source)
    ruleset = compile_ruleset(sources, version=version_of(texts), texts=texts, problems=problems)
    return Loaded(ruleset, problems.error_lines(), problems.warning_lines())


def load(paths: Sequence[Path]) -> Loaded:
    """Read and compile ``paths`` as one ruleset, without raising on problems."""
    files, missing = rule_files(paths)
    named: list[tuple[str, str, str]] = []
    unreadable: list[str] = []
    for file in files:
        try:
            named.append((file.name, str(file), file.read_bytes().decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            unreadable.append(f"{file}:1:1: cannot read: {exc}")
    if not files and not missing:
        missing.append("no rules files given")
    loaded = build(named)
    errors = missing + unreadable + loaded.errors
    return Loaded(None if errors else loaded.ruleset, errors, loaded.warnings)


def _raise_or_return(loaded: Loaded) -> Ruleset:
    if loaded.errors or loaded.ruleset is None:
        count = len(loaded.errors)
        raise RulesError(
            f"the rules have {count} problem{'s' if count != 1 else ''}",
            problems=loaded.errors,
        )
    return loaded.ruleset


def load_ruleset(paths: Sequence[Path]) -> Ruleset:
    """The compiled ruleset from files and directories; raises RulesError with every problem."""
    return _raise_or_return(load([Path(p) for p in paths]))


def load_ruleset_text(text: str, name: str = "<rules>") -> Ruleset:
    """The compiled ruleset from one text (``name`` stands for its file name)."""
    return load_ruleset_sources({name: text})


def load_ruleset_sources(sources: Mapping[str, str]) -> Ruleset:
    """The compiled ruleset from file name -> content (as ``Ruleset.sources`` holds it)."""
    return _raise_or_return(build([(name, name, text) for name, text in sorted(sources.items())]))
