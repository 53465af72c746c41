"""Rules files as read: YAML with the line and column of every key and value,
and the problems found in them, each pointing at its place.

A location is a *path* into the document (``("rules", 3, "when",
"customer.tier")``); :class:`Source` turns it into ``line:col``, falling back
to the nearest enclosing place when the exact one does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

Path = tuple[str | int, ...]
Position = tuple[int, int]


@dataclass
class Source:
    """One rules file: its name, shown path, text, plain data and positions."""

    name: str
    shown: str
    text: str
    data: Any = None
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path, *, at_key: bool = False) -> Position:
        """1-based line and column of ``path`` (its key when ``at_key``)."""
        table = self.keys if at_key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
        return (1, 1)

    def value_at(self, path: Path) -> Any:
        """The plain value at ``path``, or None."""
        node = self.data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        return node


class _Constructor(RoundTripConstructor):
    """Round-trip loading with dates and times kept as text: an impossible date
    (2026-13-01) is then a located problem of the field, not a crash."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _plain(node: Any, path: Path, source: Source) -> Any:
    """Plain Python data (dict, list, str, int, float, bool, None) from ruamel's
    round-trip nodes, recording positions on the way. Dates and times become
    ISO text; the models parse them where a time is expected."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = key.isoformat() if isinstance(key, date) else str(key)
            here = (*path, name)
            line, col = node.lc.key(key)
            source.keys[here] = (line + 1, col + 1)
            vline, vcol = node.lc.value(key)
            source.values[here] = (vline + 1, vcol + 1)
            out[name] = _plain(value, here, source)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for n, value in enumerate(node):
            line, col = node.lc.item(n)
            source.values[(*path, n)] = (line + 1, col + 1)
            items.append(_plain(value, (*path, n), source))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, datetime | date):
        return node.isoformat()
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def parse(name: str, shown: str, text: str) -> tuple[Source, tuple[int, int, str] | None]:
    """The parsed source, and (line, col, reason) if the text is not valid YAML."""
    source = Source(name=name, shown=shown, text=text)
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return source, (line, col, f"invalid YAML: {reason}")
    except (YAMLError, ValueError) as exc:
        return source, (1, 1, f"invalid YAML: {exc}")
    source.data = _plain(tree, (), source) if tree is not None else {}
    return source, None


@dataclass
class Problems:
    """Every problem found while loading, each as ``file:line:col: [what]: message``."""

    errors: list[tuple[str, int, int, str]] = field(default_factory=list)
    warnings: list[tuple[str, int, int, str]] = field(default_factory=list)

    def add(
        self,
        source: Source,
        path: Path,
        message: str,
        *,
        at_key: bool = False,
        warning: bool = False,
    ) -> None:
        line, col = source.position(path, at_key=at_key)
        what = subject(source, path)
        text = f"{what}: {message}" if what else message
        (self.warnings if warning else self.errors).append((source.shown, line, col, text))

    def at(self, shown: str, line: int, col: int, message: str) -> None:
        """A problem at a known place (YAML syntax, unreadable file)."""
        self.errors.append((shown, line, col, message))

    @staticmethod
    def _lines(items: list[tuple[str, int, int, str]]) -> list[str]:
        return [
            f"{shown}:{line}:{col}: {text}"
            for shown, line, col, text in sorted(items, key=lambda p: (p[0], p[1], p[2]))
        ]

    def error_lines(self) -> list[str]:
        return self._lines(self.errors)

    def warning_lines(self) -> list[str]:
        return self._lines(self.warnings)


def subject(source: Source, path: Path) -> str:
    """What a path is part of: ``rule 'vip'``, ``queue 'x'``, ``test 'y'``, ``defaults``."""
    if len(path) >= 2 and path[0] in ("rules", "tests") and isinstance(path[1], int):
        name = source.value_at((path[0], path[1], "name"))
        kind = "rule" if path[0] == "rules" else "test"
        return f"{kind} {name!r}" if isinstance(name, str) else f"{kind} #{path[1] + 1}"
    if len(path) >= 2 and path[0] in ("queues", "calendars"):
        return f"{str(path[0])[:-1]} {path[1]!r}"
    if path and path[0] == "defaults":
        return "defaults"
    return ""
