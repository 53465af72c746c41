"""The quick check of JSON values PostgreSQL can store agrees with the
string-by-string one (the quick check may only say "unsure"); so does the
quick look at all of a contact's texts at once; an empty object is within
the JSON limits at once."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg.pgproto.pgproto as pgproto
from hypothesis import given
from hypothesis import strategies as st

from router.models import (
    _CONTACT_TEXTS,
    Contact,
    Identifier,
    json_problem,
    storable_json,
    storable_text,
    unstorable_fields,
    unstorable_paths,
    uuid7,
    uuid_text,
)

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


def fields_one_by_one(contact: Contact) -> list[str]:
    """``unstorable_fields`` as it looked at every field on its own."""
    found = [
        name
        for name in _CONTACT_TEXTS
        if (v := getattr(contact, name)) is not None and not storable_text(v)
    ]
    for n, ident in enumerate(contact.identifiers):
        found += [
            f"identifiers.{n}.{part}"
            for part in ("kind", "value")
            if not storable_text(getattr(ident, part))
        ]
    if contact.attributes and not storable_json(contact.attributes):
        found += unstorable_paths(contact.attributes, "attributes")
    return found


@given(
    st.lists(texts, min_size=4, max_size=4),
    st.lists(st.tuples(texts, texts), max_size=3),
    st.dictionaries(texts, texts, max_size=2),
)
def test_all_texts_at_once_finds_what_each_field_alone_finds(
    parts: list[str], identifiers: list[tuple[str, str]], attributes: dict[str, Any]
) -> None:
    # a high surrogate ending one text and a low one starting the next stay unpaired
    contact = Contact.model_construct(
        channel="chat",
        provider="p",
        external_id=parts[0] or "x",
        thread_id=parts[1],
        identifiers=tuple(Identifier.model_construct(kind=k, value=v) for k, v in identifiers),
        sender_name=None,
        subject=parts[2],
        text=parts[3],
        language=None,
        sent_at=None,
        attributes=attributes,
    )
    assert unstorable_fields(contact) == fields_one_by_one(contact)


def test_split_surrogates_and_empty_objects() -> None:
    contact = Contact.model_construct(
        channel="chat", provider="p", external_id="x\ud83d", text="\ude00y", identifiers=()
    )
    assert unstorable_fields(contact) == ["external_id", "text"]
    assert json_problem({}) is None and json_problem([]) is None


@given(st.uuids())
def test_a_uuids_text_is_what_str_gives(value: uuid.UUID) -> None:
    assert uuid_text(value) == str(value)
    driver = pgproto.UUID(value.bytes)  # the database driver's subclass
    assert uuid_text(driver) == str(driver) == str(value)


def test_a_contact_ids_text_is_what_str_gives() -> None:
    for _ in range(100):
        value = uuid7()
        assert uuid_text(value) == str(value)
