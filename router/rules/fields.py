"""The fields a condition may test, found by walking the routing-input models.

``contact.*`` comes from :class:`~router.models.Contact`, ``customer.*`` from
:class:`~router.models.CustomerContext` (``customer_id`` is ``customer.id``),
and ``time.*`` from the moment of routing. Fields added to those models later
become usable in rules without touching this module; free-form mappings
(``attributes``, and any other ``dict[str, Any]``) accept any key below them.

Each field compiles to a *getter*: a small function from the routing input to
the value, returning None wherever a step on the way is missing.
"""

from __future__ import annotations

import enum
import operator
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Literal, Union

from pydantic import BaseModel

from router.models import Contact, CustomerContext

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Kind(enum.Enum):
    """What a field holds; it decides which operators make sense."""

    TEXT = "text"
    NUMBER = "number"
    BOOL = "true/false"
    TIME = "time"
    LIST = "list"
    OBJECT = "group of fields"
    ANY = "free-form value"


class Input:
    """The routing input of one decision, as the compiled conditions read it.

    ``cache`` holds values worth computing once per decision (case-folded
    texts), shared by all conditions that read the same field.
    """

    __slots__ = ("contact", "customer", "now", "cache")

    def __init__(self, contact: Contact, customer: CustomerContext, now: datetime) -> None:
        self.contact = contact
        self.customer = customer
        self.now = now
        self.cache: dict[str, Any] = {}


Getter = Callable[[Input], Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One testable field: its dotted path, kind, allowed values and getter."""

    path: str
    kind: Kind
    getter: Getter
    choices: tuple[str, ...] = ()
    item_kind: Kind | None = None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...], Kind | None]:
    """The kind of a (non-model) annotation, its literal choices, its item kind."""
    annotation, _ = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return Kind.TEXT, tuple(values), None
        return Kind.ANY, (), None
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = _kind(args[0])[0] if args and not _is_model(args[0]) else Kind.OBJECT
        return Kind.LIST, (), item
    if origin in (dict, Mapping) or annotation in (dict, Any):
        return Kind.ANY, (), None
    if annotation is bool:
        return Kind.BOOL, (), None
    if annotation in (int, float):
        return Kind.NUMBER, (), None
    if annotation is datetime:
        return Kind.TIME, (), None
    if annotation in (str, uuid.UUID, date):
        return Kind.TEXT, (), None
    return Kind.ANY, (), None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_free_form(annotation: Any) -> bool:
    annotation, _ = _unwrap(annotation)
    return typing.get_origin(annotation) in (dict, Mapping) or annotation is dict


def _attr(parent: Getter, name: str) -> Getter:
    def get(i: Input) -> Any:
        owner = parent(i)
        return None if owner is None else getattr(owner, name, None)

    return get


def _key(parent: Getter, name: str) -> Getter:
    def get(i: Input) -> Any:
        owner = parent(i)
        return owner.get(name) if isinstance(owner, dict) else None

    return get


def _text(getter: Getter) -> Getter:
    def get(i: Input) -> Any:
        value = getter(i)
        return None if value is None else str(value)

    return get


class Catalog:
    """Every field of the routing input, by dotted path."""

    def __init__(self, timezone: tzinfo) -> None:
        self.fields: dict[str, Field] = {}
        #: paths below which any key is accepted (free-form mappings)
        self.free_form: dict[str, Getter] = {}

        def contact(i: Input) -> Any:
            return i.contact

        def customer(i: Input) -> Any:
            return i.customer

        self._walk("contact", Contact, contact, depth=0)
        self._walk("customer", CustomerContext, customer, depth=0)
        if "customer.customer_id" in self.fields:
            self.fields["customer.id"] = Field(
                "customer.id", Kind.TEXT, _text(self.fields.pop("customer.customer_id").getter)
            )
        self.fields.pop("contact.identifiers", None)

        def identifier_kinds(i: Input) -> list[str]:
            return [identifier.kind for identifier in i.contact.identifiers]

        self._add(Field("contact.identifier_kinds", Kind.LIST, identifier_kinds, (), Kind.TEXT))
        self._add_time(timezone)

    def _add(self, field: Field) -> None:
        self.fields[field.path] = field

    def _add_time(self, zone: tzinfo) -> None:
        def now(i: Input) -> datetime:
            return i.now

        def weekday(i: Input) -> str:
            return WEEKDAYS[i.now.astimezone(zone).weekday()]

        def hour(i: Input) -> int:
            return i.now.astimezone(zone).hour

        def today(i: Input) -> str:
            return i.now.astimezone(zone).date().isoformat()

        self._add(Field("time.now", Kind.TIME, now))
        self._add(Field("time.weekday", Kind.TEXT, weekday, WEEKDAYS))
        self._add(Field("time.hour", Kind.NUMBER, hour))
        self._add(Field("time.date", Kind.TEXT, today))

    def _walk(self, prefix: str, model: type[BaseModel], getter: Getter, *, depth: int) -> None:
        for name, info in model.model_fields.items():
            path = f"{prefix}.{name}"
            # the roots (contact, customer) are never None: one C-level lookup
            field_getter = operator.attrgetter(path) if depth == 0 else _attr(getter, name)
            inner, _ = _unwrap(info.annotation)
            if _is_model(inner) and depth < 4:
                self._add(Field(path, Kind.OBJECT, field_getter))
                self._walk(path, inner, field_getter, depth=depth + 1)
                continue
            if _is_free_form(inner):
                self.free_form[path] = field_getter
                self._add(Field(path, Kind.OBJECT, field_getter))
                continue
            kind, choices, item_kind = _kind(inner)
            if kind is Kind.TEXT and inner is uuid.UUID:
                field_getter = _text(field_getter)
            self._add(Field(path, kind, field_getter, choices, item_kind))

    def lookup(self, path: str) -> Field | None:
        """The field at ``path``; keys below a free-form mapping are free-form values."""
        found = self.fields.get(path)
        if found is not None:
            return found
        for prefix, getter in self.free_form.items():
            if path.startswith(prefix + ".") and len(path) > len(prefix) + 1:
                rest = path[len(prefix) + 1 :].split(".")
                if any(not part for part in rest):
                    return None
                for part in rest:
                    getter = _key(getter, part)
                return Field(path, Kind.ANY, getter)
        return None

    def names(self) -> list[str]:
        """Every field path, sorted, with ``.*`` for free-form mappings."""
        listed = [p for p in self.fields if p not in self.free_form]
        listed += [p + ".*" for p in self.free_form]
        return sorted(listed)

    def paths_of_kind(self, kind: Kind) -> list[str]:
        return [p for p, f in self.fields.items() if f.kind is kind]
