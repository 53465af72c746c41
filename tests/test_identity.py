"""Identifier normalization: one person written many ways is one key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.models import Identifier
from router.recognition.identity import Normalizer, configured, normalize, strength
from router.settings import IdentitySettings

US = Normalizer(
    "US",
    configured(IdentitySettings(kinds=[{"name": "loyalty", "case_insensitive": True}])).custom,
)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("email", "<mailto:ann@x.org>", "ann@x.org"),
        ("email", "not an email", None),
        ("phone", "(415) 555-0100", "+14155550100"),
        ("phone", "tel:+44 20 7946 0958", "+442079460958"),
        ("phone", "whatsapp:+14155550100", "+14155550100"),
        ("phone", "sip:+14155550100@pbx.example", "+14155550100"),
        ("phone", "anonymous", None),
        ("social", "Facebook:1234", "facebook:1234"),
        ("handle", "X:@AnnLee", "x:annlee"),
        ("loyalty", " CARD-77 ", "card-77"),
        ("crm", " C-1 ", "C-1"),
        ("fax", "123", None),  # undeclared kind
    ],
)
def test_normalize(kind: str, raw: str, expected: str | None) -> None:
    result = US.one(Identifier(kind=kind, value=raw))
    assert (result.value if result else None) == expected


#: Values of each kind written as people and platforms write them: each normalizes.
NORMALIZABLE = st.one_of(
    st.tuples(
        st.just("email"),
        st.from_regex(
            r"[ \t]*<?(mailto:)?[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,20}\.[A-Za-z]{2,6}>?[ \t]*",
            fullmatch=True,
        ),
    ),
    st.tuples(
        st.just("phone"),
        st.from_regex(r"(tel:|whatsapp:)?\+1 ?\(?415\)? ?555-?[0-9]{4}", fullmatch=True),
    ),
    st.tuples(
        st.just("social"), st.from_regex(r"[A-Za-z]{1,10}:[A-Za-z0-9]{1,20}", fullmatch=True)
    ),
    st.tuples(
        st.just("handle"), st.from_regex(r"[A-Za-z]{1,10}:@?[A-Za-z0-9_]{1,20}", fullmatch=True)
    ),
    st.tuples(st.just("crm"), st.text(max_size=40).filter(str.strip)),
)


@given(st.sampled_from(["email", "phone", "social", "handle", "crm"]), st.text(max_size=40))
def test_normalization_is_total(kind: str, raw: str) -> None:
    once = normalize(Identifier(kind=kind, value=raw), default_region="DE")
    assert once is None or once.kind == kind


@given(NORMALIZABLE)
def test_normalization_is_idempotent(kind_and_raw: tuple[str, str]) -> None:
    kind, raw = kind_and_raw
    once = normalize(Identifier(kind=kind, value=raw), default_region="DE")
    assert once is not None, raw
    twice = normalize(once, default_region="DE")
    assert twice is not None and twice.value == once.value


def test_strength_order() -> None:
    ids = [
        Identifier(kind="handle", value="x:a"),
        Identifier(kind="phone", value="+1"),
        Identifier(kind="email", value="a@b.c", verified=True),
        Identifier(kind="email", value="d@b.c"),
        Identifier(kind="crm", value="C1"),
    ]
    ranked = [(i.kind, i.verified) for i in sorted(ids, key=strength)]
    assert ranked == [
        ("crm", False),
        ("email", True),
        ("email", False),
        ("phone", False),
        ("handle", False),
    ]


def test_custom_kind_cannot_shadow_a_builtin() -> None:
    with pytest.raises(ValueError):
        IdentitySettings(kinds=[{"name": "email"}])
