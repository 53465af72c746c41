"""Helpers for the adapter tests: building requests and adapters, reading
fixtures, signing, and hypothesis strategies for robustness tests."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

import adapters
from adapters.base import Adapter, AdapterSpec, Parsed
from router.errors import RouterError
from router.models import WebhookRequest

PAYLOADS = Path(__file__).parent / "payloads"
URL = "https://hooks.example.com/v1/webhooks/test"


def read(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(read(name))


def make(kind: str, secrets: Iterable[str] = ("secret",), **options: Any) -> Adapter:
    spec = AdapterSpec(name=f"test-{kind}", kind=kind, secrets=tuple(secrets), options=options)
    return adapters.build(spec)


def request(
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    url: str = URL,
    query: Mapping[str, str] | None = None,
    content_type: str | None = "application/json",
) -> WebhookRequest:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if content_type and "content-type" not in lowered:
        lowered["content-type"] = content_type
    return WebhookRequest(
        method=method, url=url, headers=lowered, query=dict(query or {}), body=body
    )


def form_body(pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> bytes:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return urlencode(list(items)).encode()


def multipart(
    fields: Iterable[tuple[str, str | bytes]],
    files: Iterable[tuple[str, str, str, bytes]] = (),
    boundary: str = "xYzZY",
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type."""
    out = b""
    for name, value in fields:
        data = value.encode() if isinstance(value, str) else value
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    for name, filename, ctype, data in files:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def run(adapter: Adapter, req: WebhookRequest) -> Parsed:
    adapter.verify(req)
    return adapter.parse(req)


def robust(adapter: Adapter, req: WebhookRequest) -> None:
    """Verify and parse; only the service's own errors may escape."""
    try:
        run(adapter, req)
    except RouterError:
        pass


# -- hypothesis strategies -----------------------------------------------------

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


def unique() -> str:
    return uuid.uuid4().hex
