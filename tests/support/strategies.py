"""Hypothesis strategies for the adapters' robustness tests: recorded payloads
with values replaced or removed, random JSON documents and bytes, and form
fields with some changed."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_DELETE = object()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _apply(doc: Any, edits: list[tuple[tuple[Any, ...], Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for path, value in edits:
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def mutated(doc: Any) -> st.SearchStrategy[Any]:
    """``doc`` with a few values replaced by random JSON or removed."""
    paths = _paths(doc)
    edit = st.tuples(st.sampled_from(paths), json_values | st.just(_DELETE))
    return st.lists(edit, min_size=1, max_size=4).map(lambda edits: _apply(doc, edits))


def json_bodies(doc: Any) -> st.SearchStrategy[bytes]:
    """Mutations of a fixture, random JSON documents and random bytes."""
    return st.one_of(
        mutated(doc).map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=200),
    )


def form_pairs(pairs: list[tuple[str, str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Form fields with some values replaced, removed or added."""
    keys = [k for k, _ in pairs]
    edit = st.tuples(st.sampled_from(keys), st.none() | st.text(max_size=40))

    def apply(
        edits: list[tuple[str, str | None]], extra: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        out = dict(pairs)
        for key, value in edits:
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return list(out.items()) + extra

    extra = st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=3)
    return st.builds(apply, st.lists(edit, max_size=5), extra)
