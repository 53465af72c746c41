"""Conditions: a ``when`` block compiled once into small test functions.

A ``when`` mapping holds entries that must all be true. An entry is

* ``field: value`` (equal), ``field: [a, b]`` (one of), or
  ``field: {operator: operand, …}`` (every operator must hold);
* ``all: [...]``, ``any: [...]`` (or a mapping of alternatives), ``not: {...}``;
* ``within: calendar`` / ``outside: calendar``.

Every problem is reported with its path (the loader turns paths into
file:line:col); a condition with problems compiles to nothing. A missing value
never matches a positive test (and so satisfies ``ne``, ``not_in`` and
``not``); no test raises on any routing input.
"""

from __future__ import annotations

import difflib
import functools
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from router.models import Contact, CustomerContext
from router.rules.calendars import Calendar
from router.rules.fields import Catalog, Field, Getter, Input, Kind
from router.rules.schema import parse_duration

Test = Callable[[Input], bool]
Path = tuple[str | int, ...]
#: report(path, message, at_key): at_key points at the key rather than its value
Report = Callable[[Path, str, bool], None]

_UNMATCHABLE = object()
_GROUPS = ("all", "any", "not")
_CALENDAR_TESTS = ("within", "outside")
_ALL_KINDS = frozenset(Kind)
_TEXTUAL = frozenset({Kind.TEXT, Kind.ANY})
_EQUATABLE = frozenset({Kind.TEXT, Kind.NUMBER, Kind.BOOL, Kind.ANY})
_ORDERED = frozenset({Kind.NUMBER, Kind.TIME, Kind.ANY})
_COLLECTIONS = frozenset({Kind.TEXT, Kind.LIST, Kind.ANY})
_SYMBOLS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class IndexKey:
    """For the rule index: a check holds only when ``key(input)`` is one of ``values``."""

    field: str
    key: Getter
    values: frozenset[Any]


@dataclass(frozen=True, slots=True)
class Check:
    """A compiled condition and how it reads in a trace."""

    test: Test
    text: str
    #: set when the check is an equality or set test (see :mod:`router.rules.index`)
    index: IndexKey | None = None


class Invalid(Exception):
    """An operator's operand does not fit (message says why)."""


def fold(value: Any) -> Any:
    """The equality key of a value: text case-folded, numbers as text, so that
    ``ivr_digits: 1`` matches both ``1`` and ``"1"``."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return _UNMATCHABLE


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict | set | frozenset):
        return not value
    return False


def all_of(tests: Sequence[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda i: first(i) and second(i)
    chain = tuple(tests)

    def every(i: Input) -> bool:
        for test in chain:
            if not test(i):
                return False
        return True

    return every


def any_of(tests: Sequence[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    chain = tuple(tests)

    def some(i: Input) -> bool:
        for test in chain:
            if test(i):
                return True
        return False

    return some


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def words_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """Whole words or phrases, case-folded; ``refund*`` also matches ``refunds``."""
    parts = []
    for word in words:
        star = word.endswith("*")
        pieces = word.rstrip("*").casefold().split()
        parts.append(r"\s+".join(re.escape(p) for p in pieces) + (r"\w*" if star else ""))
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


class ConditionCompiler:
    """Compiles ``when`` blocks against one catalog of fields and set of calendars."""

    def __init__(
        self,
        catalog: Catalog,
        calendars: Mapping[str, Calendar | None],
        timezone: tzinfo,
        report: Report,
        *,
        memo: dict[Any, tuple[Check, ...]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.calendars = calendars
        self.timezone = timezone
        self.report = report
        #: compiled field conditions by (field, value), shared by the rules of a ruleset:
        #: large rulesets test the same values over and over (contact.channel: email)
        self.memo = memo

    # -- structure -----------------------------------------------------------

    def compile_when(self, when: Mapping[str, Any], path: Path) -> list[Check] | None:
        """The top-level checks of a ``when`` block (all must hold), or None if invalid."""
        checks: list[Check] = []
        ok = True
        for key, value in when.items():
            found = self._entry(key, value, (*path, key))
            if found is None:
                ok = False
            else:
                checks.extend(found)
        return checks if ok else None

    def _group(self, value: Any, path: Path) -> Check | None:
        if not isinstance(value, Mapping) or not value:
            self.report(path, "expected a mapping of conditions", False)
            return None
        checks = self.compile_when(value, path)
        if checks is None:
            return None
        if len(checks) == 1:
            return checks[0]
        return Check(all_of([c.test for c in checks]), " and ".join(c.text for c in checks))

    def _entry(self, key: str, value: Any, path: Path) -> list[Check] | None:
        if key in ("all", "any"):
            if isinstance(value, Mapping) and value and key == "any":
                items = [({k: v}, (*path, k)) for k, v in value.items()]
            elif isinstance(value, list) and value:
                items = [(v, (*path, n)) for n, v in enumerate(value)]
            else:
                self.report(path, f"'{key}' needs a list of conditions", False)
                return None
            groups = [self._group(v, p) for v, p in items]
            if any(g is None for g in groups):
                return None
            parts = [g for g in groups if g is not None]
            if key == "all":
                return parts
            text = "any of (" + "; ".join(g.text for g in parts) + ")"
            return [Check(any_of([g.test for g in parts]), text)]
        if key == "not":
            group = self._group(value, path)
            if group is None:
                return None
            inner = group.test
            return [Check(lambda i: not inner(i), f"not ({group.text})")]
        if key in _CALENDAR_TESTS:
            return self._calendar(key, value, path)
        return self._field(key, value, path)

    def _calendar(self, key: str, value: Any, path: Path) -> list[Check] | None:
        if not isinstance(value, str) or value not in self.calendars:
            names = ", ".join(sorted(self.calendars)) or "none declared"
            self.report(path, f"unknown calendar {value!r} (calendars: {names})", False)
            return None
        calendar = self.calendars[value]
        if calendar is None:  # reported where it is declared
            return None
        is_open = calendar.is_open
        if key == "within":
            return [Check(lambda i: is_open(i.now), f"within {value}")]
        return [Check(lambda i: not is_open(i.now), f"outside {value}")]

    def _unknown_field(self, key: str, path: Path) -> None:
        names = self.catalog.names()
        if "." not in key:
            hint = [n for n in names if n.endswith("." + key)]
            head = f"unknown condition {key!r}"
            extra = "write all, any, not, within, outside or a field"
        else:
            hint = difflib.get_close_matches(key, names, n=1)
            head = f"unknown field {key!r}"
            extra = "valid fields"
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        self.report(path, f"{head}{did} ({extra}: {', '.join(names)})", True)

    def _field(self, key: str, value: Any, path: Path) -> list[Check] | None:
        if self.memo is None:
            return self._compile_field(key, value, path)
        known = (key, _frozen(value))
        found = self.memo.get(known)
        if found is None:
            checks = self._compile_field(key, value, path)
            if checks is None:  # problems are reported at each place, never remembered
                return None
            self.memo[known] = found = tuple(checks)
        return list(found)

    def _compile_field(self, key: str, value: Any, path: Path) -> list[Check] | None:
        field = self.catalog.lookup(key)
        if field is None:
            self._unknown_field(key, path)
            return None
        if type(value) is dict or isinstance(value, Mapping):
            if not value:
                self.report(path, "expected a value or operators like {gte: 2}", False)
                return None
            tests = [(str(op), operand, (*path, op)) for op, operand in value.items()]
        elif isinstance(value, list):
            tests = [("in", value, path)]
        else:
            tests = [("eq", value, path)]
        checks: list[Check] = []
        ok = True
        for op, operand, op_path in tests:
            builder = _OPERATORS.get(op)
            if builder is None:
                close = difflib.get_close_matches(op, _OPERATORS, n=1)
                did = f"; did you mean {close[0]!r}?" if close else ""
                self.report(
                    op_path,
                    f"unknown operator {op!r}{did} (operators: {', '.join(_OPERATORS)})",
                    True,
                )
                ok = False
                continue
            kinds, build = builder
            if field.kind not in kinds:
                self.report(
                    op_path,
                    f"{op!r} does not apply to {key}, which is a {field.kind.value}"
                    f" (it applies to: {_kind_names(kinds)})",
                    op_path != path,
                )
                ok = False
                continue
            try:
                test = build(self, field, operand)
            except Invalid as exc:
                label = key if op_path == path else f"{key} {op}"
                self.report(op_path, f"{label}: {exc}", False)
                ok = False
                continue
            symbol = _SYMBOLS.get(op, op.replace("_", " "))
            text = f"{key} {symbol} {_render(operand)}"
            checks.append(Check(test, text, self._index_key(field, op, operand, test)))
        return checks if ok else None

    # -- operand helpers -------------------------------------------------------

    @staticmethod
    def folded(field: Field) -> Getter:
        """The field's equality key; case-folded texts are cached per decision."""
        get, path = field.getter, field.path
        if field.kind is Kind.TEXT:

            def cached(i: Input) -> Any:
                cache = i.cache
                if path in cache:
                    return cache[path]
                value = get(i)
                key = value.casefold() if isinstance(value, str) else value
                cache[path] = key
                return key

            return cached
        if field.kind is Kind.LIST:
            return lambda i: _fold_items(get(i))
        return lambda i: fold(get(i))

    def scalar(self, field: Field, operand: Any) -> Any:
        """The equality key of an operand after checking it suits the field."""
        if isinstance(operand, list | dict):
            raise Invalid(f"expected a single value, not {_render(operand)}")
        if operand is None:
            return None
        if field.kind is Kind.NUMBER and (
            isinstance(operand, bool) or not isinstance(operand, int | float)
        ):
            raise Invalid(f"{field.path} is a number; {_render(operand)!r} is not")
        if field.kind is Kind.BOOL and not isinstance(operand, bool):
            raise Invalid(f"{field.path} is true or false; {_render(operand)} is not")
        if field.kind is Kind.TEXT and isinstance(operand, bool):
            raise Invalid(f"{field.path} is text; write {_render(operand)!r} in quotes")
        key = fold(operand)
        if field.choices and key not in _casefolded(field.choices):
            raise Invalid(
                f"{operand!r} is never a value of {field.path} ({', '.join(field.choices)})"
            )
        return key

    def values(self, field: Field, operand: Any) -> list[Any]:
        if not isinstance(operand, list) or not operand:
            raise Invalid("expected a list of values, e.g. [a, b]")
        return [self.scalar(field, v) for v in operand]

    def ordered(self, field: Field, operand: Any) -> Any:
        if field.kind is Kind.TIME:
            try:
                moment = datetime.fromisoformat(operand)
            except (TypeError, ValueError):
                raise Invalid(
                    f"expected a time like 2026-01-31T09:00:00Z, not {_render(operand)!r}"
                ) from None
            return moment if moment.tzinfo else moment.replace(tzinfo=self.timezone)
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise Invalid(f"expected a number, not {_render(operand)}")
        return operand

    def moment_value(self, field: Field) -> Getter:
        get = field.getter
        return lambda i: _moment(get(i))

    def ordered_value(self, field: Field) -> Getter:
        get = field.getter
        if field.kind is Kind.TIME:
            return self.moment_value(field)
        if field.kind is Kind.NUMBER:
            return get
        return lambda i: _number(get(i))

    def texts(self, operand: Any) -> list[str]:
        if isinstance(operand, str):
            operand = [operand]
        if not isinstance(operand, list) or not operand:
            raise Invalid("expected a list of words or phrases, e.g. [refund, money back]")
        if not all(isinstance(w, str | int) and not isinstance(w, bool) for w in operand):
            raise Invalid("expected words or phrases (text)")
        words = [str(w).strip() for w in operand]
        if not all(w.rstrip("*") for w in words):
            raise Invalid("an empty word never matches")
        return words

    def _index_key(self, field: Field, op: str, operand: Any, test: Test) -> IndexKey | None:
        """What the rule index may use of a compiled ``field`` ``op`` ``operand`` check:
        any test of ``contact.channel`` (found by running it on each channel),
        ``eq`` and ``in`` on every other field."""
        if field.path == "contact.channel":
            return IndexKey(field.path, field.getter, _channels(field, test))
        if op == "eq":
            key, values = _canonical(field, [self.scalar(field, operand)])
        elif op == "in":
            key, values = _canonical(field, self.values(field, operand))
        else:
            return None
        return IndexKey(field.path, key, frozenset(values))

    def flag(self, operand: Any) -> bool:
        if not isinstance(operand, bool):
            raise Invalid(f"expected true or false, not {_render(operand)}")
        return operand


def _channels(field: Field, test: Test) -> frozenset[str]:
    """The channels a ``contact.channel`` test lets through, found by running the
    test on a contact of each channel."""
    customer, now = _PROBE_CUSTOMER, _PROBE_NOW
    return frozenset(
        channel for channel in field.choices if test(Input(_probe(channel), customer, now))
    )


_PROBE_CUSTOMER = CustomerContext(customer_id=uuid.UUID(int=0), known=False)
_PROBE_NOW = datetime(2000, 1, 1, tzinfo=UTC)


@functools.cache
def _probe(channel: str) -> Contact:
    """A contact of ``channel`` and nothing else (built once: compiling runs it often)."""
    return Contact.model_validate({"provider": "probe", "external_id": "probe", "channel": channel})


def _frozen(value: Any) -> Any:
    """A hashable form of plain data that keeps 1, 1.0 and true apart."""
    if isinstance(value, dict):
        return (dict, tuple((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (list, tuple(_frozen(v) for v in value))
    return (type(value), value)


@functools.cache
def _casefolded(choices: tuple[str, ...]) -> frozenset[str]:
    return frozenset(choice.casefold() for choice in choices)


def _fold_items(value: Any) -> tuple[Any, ...] | None:
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(fold(v) for v in value)
    return None


def _kind_names(kinds: frozenset[Kind]) -> str:
    return ", ".join(k.value for k in Kind if k in kinds and k is not Kind.ANY)


# -- operators ------------------------------------------------------------------
# Each builder checks the operand and returns the compiled test.

Builder = Callable[[ConditionCompiler, Field, Any], Test]


def _canonical(field: Field, keys: Sequence[Any]) -> tuple[Getter, list[Any]]:
    """Getter and operands to compare: a field with fixed choices (``contact.channel``)
    holds them exactly as declared, so its raw value is compared without folding."""
    if field.choices:
        spelled = {choice.casefold(): choice for choice in field.choices}
        return field.getter, [spelled.get(k, k) for k in keys]
    return ConditionCompiler.folded(field), list(keys)


def _eq(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    key, (want,) = _canonical(field, [c.scalar(field, operand)])
    return lambda i: key(i) == want


def _ne(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    key, (want,) = _canonical(field, [c.scalar(field, operand)])
    return lambda i: key(i) != want


def _in(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    key, values = _canonical(field, c.values(field, operand))
    wanted = frozenset(values)
    return lambda i: key(i) in wanted


def _not_in(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    key, values = _canonical(field, c.values(field, operand))
    wanted = frozenset(values)
    return lambda i: key(i) not in wanted


def _compare(symbol: str) -> Builder:
    def build(c: ConditionCompiler, field: Field, operand: Any) -> Test:
        bound, get = c.ordered(field, operand), c.ordered_value(field)
        if symbol == "gt":
            return lambda i: (v := get(i)) is not None and v > bound
        if symbol == "gte":
            return lambda i: (v := get(i)) is not None and v >= bound
        if symbol == "lt":
            return lambda i: (v := get(i)) is not None and v < bound
        return lambda i: (v := get(i)) is not None and v <= bound

    return build


def _between(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    if not isinstance(operand, list) or len(operand) != 2:
        raise Invalid("expected [low, high], e.g. [2, 5]")
    low, high = (c.ordered(field, v) for v in operand)
    if low > high:
        raise Invalid(f"low {_render(operand[0])} is above high {_render(operand[1])}")
    get = c.ordered_value(field)
    return lambda i: (v := get(i)) is not None and low <= v <= high


def _plain_items(field: Field) -> None:
    if field.kind is Kind.LIST and field.item_kind is Kind.OBJECT:
        raise Invalid(f"{field.path} is a list of records; test it with exists or empty")


def _contains(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    _plain_items(field)
    if isinstance(operand, list | dict | bool) or operand is None or operand == "":
        raise Invalid("expected a piece of text (or, for a list, one value)")
    needle, key = fold(operand), c.folded(field)
    if field.kind is Kind.LIST:
        return lambda i: (v := key(i)) is not None and needle in v
    if field.kind is Kind.TEXT:
        return lambda i: (v := key(i)) is not None and needle in v

    def test(i: Input) -> bool:
        value = field.getter(i)
        if isinstance(value, str):
            return needle in value.casefold()
        items = _fold_items(value)
        return items is not None and needle in items

    return test


def _contains_any(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    _plain_items(field)
    words = c.texts(operand)
    pattern = words_pattern(words).search
    wanted = frozenset(fold(w) for w in words)
    key, get = c.folded(field), field.getter
    if field.kind is Kind.TEXT:
        return lambda i: (v := key(i)) is not None and pattern(v) is not None
    if field.kind is Kind.LIST:
        return lambda i: (v := key(i)) is not None and not wanted.isdisjoint(v)

    def test(i: Input) -> bool:
        value = get(i)
        if isinstance(value, str):
            return pattern(value.casefold()) is not None
        items = _fold_items(value)
        return items is not None and not wanted.isdisjoint(items)

    return test


def _affix(start: bool) -> Builder:
    def build(c: ConditionCompiler, field: Field, operand: Any) -> Test:
        if not isinstance(operand, str) or not operand:
            raise Invalid("expected a piece of text")
        affix, key = operand.casefold(), c.folded(field)
        if start:
            return lambda i: isinstance(v := key(i), str) and v.startswith(affix)
        return lambda i: isinstance(v := key(i), str) and v.endswith(affix)

    return build


def _matches(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    if not isinstance(operand, str):
        raise Invalid("expected a regular expression (text)")
    try:
        search = re.compile(operand, re.IGNORECASE).search
    except re.error as exc:
        raise Invalid(f"bad regular expression {operand!r}: {exc}") from None
    get = field.getter
    return lambda i: isinstance(v := get(i), str) and search(v) is not None


def _exists(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    want, get = c.flag(operand), field.getter
    return lambda i: (get(i) is not None) is want


def _empty(c: ConditionCompiler, field: Field, operand: Any) -> Test:
    want, get = c.flag(operand), field.getter
    return lambda i: is_empty(get(i)) is want


def _age(within: bool) -> Builder:
    def build(c: ConditionCompiler, field: Field, operand: Any) -> Test:
        try:
            span = timedelta(seconds=parse_duration(operand))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        get = c.moment_value(field)
        if within:
            return lambda i: (v := get(i)) is not None and i.now - v <= span
        return lambda i: (v := get(i)) is not None and i.now - v > span

    return build


_OPERATORS: dict[str, tuple[frozenset[Kind], Builder]] = {
    "eq": (_EQUATABLE, _eq),
    "ne": (_EQUATABLE, _ne),
    "in": (_EQUATABLE, _in),
    "not_in": (_EQUATABLE, _not_in),
    "any_of": (_COLLECTIONS, _contains_any),
    "gt": (_ORDERED, _compare("gt")),
    "gte": (_ORDERED, _compare("gte")),
    "lt": (_ORDERED, _compare("lt")),
    "lte": (_ORDERED, _compare("lte")),
    "between": (_ORDERED, _between),
    "contains": (_COLLECTIONS, _contains),
    "contains_any": (_COLLECTIONS, _contains_any),
    "starts_with": (_TEXTUAL, _affix(start=True)),
    "ends_with": (_TEXTUAL, _affix(start=False)),
    "matches": (_TEXTUAL, _matches),
    "exists": (_ALL_KINDS, _exists),
    "empty": (_ALL_KINDS, _empty),
    "within": (frozenset({Kind.TIME, Kind.ANY}), _age(within=True)),
    "older_than": (frozenset({Kind.TIME, Kind.ANY}), _age(within=False)),
}
OPERATORS = tuple(_OPERATORS)
#: the kinds of field each operator applies to
OPERATOR_KINDS: dict[str, frozenset[Kind]] = {op: kinds for op, (kinds, _) in _OPERATORS.items()}
#: the entries of a ``when`` block that are not fields
GROUPS, CALENDAR_TESTS = _GROUPS, _CALENDAR_TESTS
