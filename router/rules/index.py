"""The rule index: a contact tries only the rules it can match.

Many conditions compare a field with one value or a set of values
(``customer.tier: [vip, gold]``, ``contact.language: {in: [de, fr]}``), and
every test of ``contact.channel`` can hold for a known set of channels. Such a
condition says, before any contact arrives, for which values of its field it
can hold (:class:`~router.rules.conditions.IndexKey`).

For each field that enough rules test this way, the index keeps a table:
value -> the rules (a bit mask over the rules, in their order) that accept the
value, plus the rules that do not test the field; values no rule names get
only the latter. A contact reads each indexed field once and ANDs the masks;
what is left are the rules whose indexed conditions all hold, which it tries
in their original order, running only their other conditions. The list for
a mask is built once and remembered, so a typical contact costs a few
dictionary lookups however many rules there are.

Only the top-level conditions of ``when`` (which must all hold) are used, never
one inside ``any`` or ``not``: a rule the index leaves out has a condition
that fails, so the decision, ``continue`` rules and rollouts are exactly those
of trying every rule in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from router.rules.conditions import Test, all_of
from router.rules.fields import Getter, Input

if TYPE_CHECKING:
    from router.rules.engine import Rule

#: a field is indexed when at least this many rules test it for equality
MIN_RULES = 2
#: at most this many fields are indexed (those tested by the most rules)
MAX_FIELDS = 8
#: remembered candidate lists; the memory is cleared when it holds more
MEMO_SIZE = 4096

#: a rule to try and its conditions that the index did not already decide
Entry = tuple["Rule", Test | None]


class RuleIndex:
    """The enabled rules of a ruleset, indexed by their equality tests."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        accepted: list[dict[str, frozenset[Any]]] = []
        keys: dict[str, Getter] = {}
        for rule in self.rules:
            mine: dict[str, frozenset[Any]] = {}
            for check in rule.checks:
                if check.index is not None:
                    name, values = check.index.field, check.index.values
                    keys.setdefault(name, check.index.key)
                    mine[name] = mine[name] & values if name in mine else values
            accepted.append(mine)
        counts = Counter(name for mine in accepted for name in mine)
        #: the indexed fields, most tested first
        self.fields = tuple(name for name, n in counts.most_common(MAX_FIELDS) if n >= MIN_RULES)
        self._tables = tuple((keys[name], *_table(name, accepted)) for name in self.fields)
        indexed = set(self.fields)
        self._entries: tuple[Entry, ...] = tuple(
            (rule, _rest(rule, indexed)) for rule in self.rules
        )
        self._everything = (1 << len(self.rules)) - 1
        self._memo: dict[int, tuple[Entry, ...]] = {}

    def candidates(self, i: Input) -> tuple[Entry, ...]:
        """The rules ``i`` can match, in order, each with its remaining test."""
        mask = self._everything
        for key, table, others in self._tables:
            try:
                mask &= table.get(key(i), others)
            except TypeError:  # an unhashable value (a list, a mapping) equals no listed value
                mask &= others
        found = self._memo.get(mask)
        if found is None:
            found = self._expand(mask)
        return found

    def _expand(self, mask: int) -> tuple[Entry, ...]:
        found: list[Entry] = []
        rest = mask
        while rest:
            lowest = rest & -rest
            found.append(self._entries[lowest.bit_length() - 1])
            rest ^= lowest
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[mask] = entries = tuple(found)
        return entries


def _table(name: str, accepted: Sequence[dict[str, frozenset[Any]]]) -> tuple[dict[Any, int], int]:
    """Value -> mask of the rules accepting it, and the mask of rules not testing ``name``."""
    others = sum(1 << n for n, mine in enumerate(accepted) if name not in mine)
    table: dict[Any, int] = {}
    for n, mine in enumerate(accepted):
        for value in mine.get(name, ()):
            table[value] = table.get(value, others) | 1 << n
    return table, others


def _rest(rule: Rule, indexed: set[str]) -> Test | None:
    """The rule's test without the checks the index decides (None: nothing left)."""
    tests = [c.test for c in rule.checks if c.index is None or c.index.field not in indexed]
    return all_of(tests) if tests else None
