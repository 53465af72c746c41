"""What erasure looks for in another customer's record: whole identifier
values and names, in any case, never a part of a longer word."""

from __future__ import annotations

from router.redaction import MARK, Person, needles, pattern, redact, redact_record

PERSON = Person(
    identifiers=frozenset(
        {("email", "ann@x.com"), ("phone", "+14155550123"), ("social", "x:2244")}
    ),
    names=("Ann Lee", "Al"),
)


def test_needles_are_values_derived_forms_and_names() -> None:
    found = needles(PERSON.identifiers, PERSON.names)
    assert {"ann@x.com", "+14155550123", "14155550123", "x:2244", "Ann Lee"} == set(found)
    # a bare id that short, and a two-letter name, would match too much
    assert "2244" not in found and "Al" not in found


def test_whole_words_in_any_case_only() -> None:
    found = pattern(needles(PERSON.identifiers, PERSON.names))
    text = (
        "ANN@X.COM, joann@x.com, ann@x.community, 123:14155550123|+14155550123, ann lee, Ann Leeds"
    )
    assert redact(text, found) == (
        f"{MARK}, joann@x.com, ann@x.community, 123:{MARK}|{MARK}, {MARK}, Ann Leeds"
    )
    assert redact({"ann@x.com": ["Ann Lee", 1, None]}, found) == {MARK: [MARK, 1, None]}


def test_a_record_keeps_the_other_customers_part() -> None:
    row = {
        "contact": {
            "external_id": "m-ann@x.com",
            "thread_id": "+14155550123|+18005550199",
            "sender_name": "Annie",
            "text": "Annie here",
            "identifiers": [
                {"kind": "crm", "value": "c-1", "verified": True},
                {"kind": "phone", "value": "+14155550123", "verified": False},
            ],
        },
        "context": {"name": "Olga", "conversation": {"id": "+14155550123|+18005550199"}},
        "trace": None,
        "thread_id": "+14155550123|+18005550199",
    }
    done = redact_record(PERSON, row)
    assert done.contact == {
        "external_id": "m-ann@x.com",  # the idempotency key stays
        "thread_id": None,
        "text": f"{MARK} here",  # the contact's own sender name is looked for too
        "identifiers": [{"kind": "crm", "value": "c-1", "verified": True}],
        "redacted": True,
    }
    assert done.thread_id is None and done.trace is None
    assert done.context == {"name": "Olga", "conversation": {"id": f"{MARK}|+18005550199"}}
