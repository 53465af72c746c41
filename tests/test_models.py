"""The quick check of JSON values PostgreSQL can store agrees with the
string-by-string one (the quick check may only say "unsure")."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from router.models import storable_json, unstorable_paths

texts = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0xDFFF, exclude_categories=())
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_the_quick_check_never_passes_what_cannot_be_stored(value: Any) -> None:
    if storable_json(value):
        assert unstorable_paths(value) == []


def test_the_quick_check_passes_ordinary_values_and_catches_nul_and_surrogates() -> None:
    assert storable_json({"order": "A-1", "items": [1, 2.5, None, True], "é": "ünïcode ✓"})
    assert not storable_json({"note": "a\x00b"})
    assert not storable_json({"note": "\ud800"})
    assert not storable_json({"a\x00": 1})
    # unsure, so the caller looks at every string: the text backslash-u0000 is storable
    assert not storable_json({"note": "\\u0000"})
    assert unstorable_paths({"note": "\\u0000"}) == []
