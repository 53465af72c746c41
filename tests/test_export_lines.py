"""NDJSON lines put together from the literals PostgreSQL writes: whatever
the chunking, the same lines; a cut or malformed stream is an error, never a
short file."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.store.export import EXPORT_COLUMNS, QUOTED_BY_TEMPLATE, NdjsonLines

LITERALS = [b'"a"', b"null", b"12", b"true", b'["x","y"]', b'"tab\\t \\"q\\" \\u0002 %s \xc3\xa9"']


def row(seed: int) -> bytes:
    values = [
        f"{name}-{seed}".encode()
        if name in QUOTED_BY_TEMPLATE
        else LITERALS[(seed + i) % len(LITERALS)]
        for i, name in enumerate(EXPORT_COLUMNS)
    ]
    return b"\x02".join(values) + b"\n"


STREAM = b"".join(row(n) for n in range(40))


def whole() -> bytes:
    lines = NdjsonLines()
    out = lines.feed(STREAM)
    lines.close()
    return out


def test_each_row_becomes_one_object_with_the_views_keys() -> None:
    out = whole().splitlines()
    assert len(out) == 40
    first = orjson.loads(out[0])
    assert tuple(first) == EXPORT_COLUMNS
    assert first["contact_id"] == "contact_id-0" and first["received_at"] is None
    assert first["provider"] == "provider-0" and first["thread_id"] == "a"
    assert first["external_id"] == 'tab\t "q" \x02 %s é'


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_any_chunking_gives_the_same_lines(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    lines = NdjsonLines()
    out = b"".join(lines.feed(STREAM[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    lines.close()
    assert out == whole()


def test_a_stream_cut_inside_a_row_is_an_error() -> None:
    lines = NdjsonLines()
    assert lines.feed(STREAM[:-5]).count(b"\n") == 39
    with pytest.raises(ValueError, match="inside a row"):
        lines.close()


def test_a_row_with_other_columns_is_an_error() -> None:
    with pytest.raises(ValueError, match="columns"):
        NdjsonLines().feed(b'"a"\x02"b"\n')
