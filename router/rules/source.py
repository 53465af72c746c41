"""Rules files as read: YAML with the line and column of every key and value,
and the problems found in them, each pointing at its place.

A location is a *path* into the document (``("rules", 3, "when",
"customer.tier")``); :class:`Source` turns it into ``line:col``, falling back
to the nearest enclosing place when the exact one does not exist.

Files are read as YAML 1.2 (``yes`` is text, ``0o17`` a number, dates stay
text) by one of two readers that give the same data and places:

* the fast reader composes the document with libyaml (PyYAML's C parser) and
  keeps the composed nodes, which know where they start; a place is looked up
  only when asked for (a rule's line, a problem). It takes the common case:
  plain and quoted text, whole numbers, true/false/null, anchors;
* the exact reader, ruamel.yaml's round trip, reads everything else (explicit
  tags, merge keys, unusual numbers, duplicate keys, directives, tabs), every
  text libyaml rejects (so syntax errors are reported as ruamel words them),
  and gives the places of empty values, where the two parsers' marks differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

try:  # PyYAML built with libyaml (its wheels are)
    from yaml import YAMLError as _LibyamlError
    from yaml._yaml import CParser
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    FAST = True
except ImportError:  # pragma: no cover - without libyaml every file takes the exact reader
    FAST = False

Path = tuple[str | int, ...]
Position = tuple[int, int]


class _Places(Protocol):
    def find(self, path: Path) -> tuple[Position | None, Position | None]:
        """(place of the key, place of the value) at ``path``; None where there is none."""
        ...


@dataclass
class _Table:
    """Places recorded while reading: key and value positions by path."""

    keys: dict[Path, Position] = field(default_factory=dict)
    values: dict[Path, Position] = field(default_factory=dict)

    def find(self, path: Path) -> tuple[Position | None, Position | None]:
        return self.keys.get(path), self.values.get(path)


@dataclass
class Source:
    """One rules file: its name, shown path, text, plain data and the places in it."""

    name: str
    shown: str
    text: str
    data: Any = None
    places: _Places = field(default_factory=_Table)

    def position(self, path: Path, *, at_key: bool = False) -> Position:
        """1-based line and column of ``path`` (its key when ``at_key``)."""
        key, value = self.places.find(path)
        exact = key if at_key else value
        if exact is not None:
            return exact
        while path:
            path = path[:-1]
            key, value = self.places.find(path)
            if key is not None:
                return key
            if value is not None:
                return value
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


# -- the exact reader: ruamel.yaml round trip ----------------------------------------------


class _Constructor(RoundTripConstructor):
    """Round-trip loading with dates and times kept as text: an impossible date
    (2026-13-01) is then a located problem of the field, not a crash."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _plain(node: Any, path: Path, table: _Table) -> Any:
    """Plain Python data (dict, list, str, int, float, bool, None) from ruamel's
    round-trip nodes, recording positions on the way. Dates and times become
    ISO text; the models parse them where a time is expected."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = key.isoformat() if isinstance(key, date) else str(key)
            here = (*path, name)
            where = (node.lc.data or {}).get(key)  # none for a key merged in with <<
            if where is not None:
                table.keys[here] = (where[0] + 1, where[1] + 1)
                table.values[here] = (where[2] + 1, where[3] + 1)
            out[name] = _plain(value, here, table)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for n, value in enumerate(node):
            where = (node.lc.data or {}).get(n)  # none when a tag made the list
            if where is not None:
                table.values[(*path, n)] = (where[0] + 1, where[1] + 1)
            items.append(_plain(value, (*path, n), table))
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


def read_exact(text: str) -> tuple[Any, _Table]:
    """Data and places by the exact reader; raises ruamel's YAMLError (or ValueError)."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    tree = yaml.load(text)
    table = _Table()
    return (_plain(tree, (), table) if tree is not None else {}), table


# -- the fast reader: libyaml ---------------------------------------------------------------


class _Unusual(Exception):
    """The text has something only the exact reader reads the same way."""


#: tags the composer gives: plain scalars are typed below, all others are text
_PLAIN, _QUOTED, _MAP, _SEQ = "?", "!", "map", "seq"
#: what YAML 1.2 (as ruamel reads it) may take for other than text: bool, null, int,
#: float, merge and value keys; whatever matches is typed here or read exactly
_NOT_TEXT = re.compile(
    r"""^(?:true|True|TRUE|false|False|FALSE|~|null|Null|NULL||<<|=
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$""",
    re.VERBOSE,
)
_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("~", "null", "Null", "NULL", ""), None),
}
_WHOLE = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]+$")
#: for the exact reader: a directive (%YAML 1.1 types values otherwise, %TAG names tags),
#: and what libyaml takes but ruamel reports (rightly): a tab after ``key:``, a comment
#: right after a block scalar's ``|`` or ``>``
_EXACT_ONLY = re.compile(r"^%|\t|[|>][-+0-9]*#", re.MULTILINE)

if FAST:

    class _Composer(CParser):
        """libyaml's composer, tagging scalars plain or quoted (typed by :func:`_scalar`)."""

        def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode:
                return _PLAIN if implicit[0] else _QUOTED
            return _MAP if kind is MappingNode else _SEQ

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass


def _scalar(node: Any) -> Any:
    value: str = node.value
    tag = node.tag
    if tag is _QUOTED:
        return value
    if tag is not _PLAIN:  # an explicit tag
        raise _Unusual
    if _NOT_TEXT.match(value) is None:
        return value
    if value in _CONSTANTS:
        return _CONSTANTS[value]
    if _WHOLE.match(value):
        return int(value)
    if _DECIMAL.match(value):
        return float(value)
    raise _Unusual


def _data(node: Any) -> Any:
    """Plain data from composed nodes (anchored nodes are read again at each alias)."""
    kind = type(node)
    if kind is not ScalarNode and node.tag is not _MAP and node.tag is not _SEQ:
        raise _Unusual  # an explicit tag on a mapping or list
    if kind is MappingNode:
        out: dict[str, Any] = {}
        for key, value in node.value:
            name = _scalar(key) if type(key) is ScalarNode else None
            if type(name) is not str or name in out or name == "<<":
                raise _Unusual  # a key that is not text, a duplicate or a merge
            out[name] = _data(value)
        return out
    if kind is SequenceNode:
        return [_data(item) for item in node.value]
    return _scalar(node)


@dataclass
class _Nodes:
    """Places found in the composed nodes when asked for. An empty value (``key:``
    with nothing after it) is placed by the exact reader: there libyaml's marks differ
    from ruamel's, and the places must not depend on which reader read the file."""

    tree: Any
    text: str
    _exact: _Table | None = None

    def find(self, path: Path) -> tuple[Position | None, Position | None]:
        if not path:
            return None, None
        node, key = self.tree, None
        for part in path:
            key = None
            if type(node) is MappingNode and isinstance(part, str):
                for key_node, value in node.value:
                    if key_node.value == part:
                        node, key = value, key_node
                        break
                else:
                    return None, None
            elif type(node) is SequenceNode and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return None, None
                node = node.value[part]
            else:
                return None, None
        if (
            type(node) is ScalarNode
            and node.value == ""
            and node.start_mark.index == node.end_mark.index
        ):
            return self._exactly(path)
        start = node.start_mark
        return _mark(key), (start.line + 1, start.column + 1)

    def _exactly(self, path: Path) -> tuple[Position | None, Position | None]:
        if self._exact is None:
            try:
                self._exact = read_exact(self.text)[1]
            except (YAMLError, ValueError):
                self._exact = _Table()
        return self._exact.find(path)


def _mark(node: Any) -> Position | None:
    return None if node is None else (node.start_mark.line + 1, node.start_mark.column + 1)


def read_fast(text: str) -> tuple[Any, _Nodes] | None:
    """Data and places by the fast reader, or None when the exact reader must read it."""
    if not FAST or _EXACT_ONLY.search(text):
        return None
    try:
        composer = _Composer(text)
        try:
            tree = composer.get_single_node()
        finally:
            composer.dispose()
        return (_data(tree) if tree is not None else {}), _Nodes(tree, text)
    except (_Unusual, _LibyamlError, ValueError, RecursionError):
        return None


def parse(
    name: str, shown: str, text: str, *, exact: bool = False
) -> tuple[Source, tuple[int, int, str] | None]:
    """The parsed source, and (line, col, reason) if the text is not valid YAML.
    ``exact`` reads with the exact reader only (the tests compare the two)."""
    source = Source(name=name, shown=shown, text=text)
    fast = None if exact else read_fast(text)
    if fast is not None:
        source.data, source.places = fast
        return source, None
    try:
        source.data, source.places = read_exact(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return source, (line, col, f"invalid YAML: {reason}")
    except (YAMLError, ValueError) as exc:
        return source, (1, 1, f"invalid YAML: {exc}")
    except TypeError:  # ruamel hashing a mapping or list written as a key
        return source, (1, 1, "invalid YAML: a key is a mapping or a list")
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
