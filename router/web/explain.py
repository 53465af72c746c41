"""``GET /v1/contacts/{id}?explain=true``: why a stored contact went where it went.

The record's snapshots (the contact and the customer context the rules saw)
are decided again, with a trace, by the ruleset version that decided them, at
the moment the contact was received: every rule tried, in order, and the first
condition that failed, up to the rule that decided. The version is the active
one or is read from the ``rulesets`` table and compiled; the last few compiled
versions are kept in memory.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from pydantic import ValidationError

from router.errors import RulesError, Unexplainable
from router.models import Contact, CustomerContext
from router.rules import Ruleset, load_ruleset_sources
from router.store import Snapshot, Store
from router.web.runtime import Runtime

#: compiled ruleset versions kept in memory
CACHE_SIZE = 8


class Versions:
    """Compiled ruleset versions by version, the least recently used dropped first.

    A version is a content hash, so a compiled version never goes stale."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._compiled: OrderedDict[str, Ruleset] = OrderedDict()

    async def get(self, store: Store, version: str) -> Ruleset:
        """Ruleset ``version``; raises Unexplainable when it is not stored or no longer loads."""
        found = self._compiled.get(version)
        if found is not None:
            self._compiled.move_to_end(version)
            return found
        sources = await store.rulesets.sources(version)
        if sources is None:
            raise Unexplainable(f"ruleset version {version} is not stored")
        try:
            ruleset = await asyncio.to_thread(load_ruleset_sources, sources)
        except RulesError as exc:
            first = exc.problems[0] if exc.problems else exc.message
            raise Unexplainable(f"ruleset version {version} no longer loads: {first}") from None
        self._compiled[version] = ruleset
        while len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
        return ruleset


VERSIONS = Versions()


async def explanation(rt: Runtime, snapshot: Snapshot) -> dict[str, Any]:
    """``{"explanation": [...]}`` for the record's ``snapshot``, or
    ``{"explanation_error": why}`` when it cannot be re-evaluated."""
    try:
        return {"explanation": await _explain(rt, snapshot)}
    except Unexplainable as exc:
        return {"explanation_error": exc.message}


async def _explain(rt: Runtime, snapshot: Snapshot) -> list[dict[str, Any]]:
    if snapshot.contact.get("erased"):
        raise Unexplainable("the contact's personal data was erased")
    if snapshot.contact.get("redacted"):
        # what the rules saw is no longer all there: re-deciding could mislead
        raise Unexplainable("personal data of an erased customer was removed from the contact")
    version = snapshot.decision["ruleset"]
    if rt.rules.ready and rt.rules.active.version == version:
        ruleset = rt.rules.active
    else:
        ruleset = await VERSIONS.get(rt.store, version)
    try:
        contact = Contact.model_validate(snapshot.contact)
        context = CustomerContext.model_validate(snapshot.context)
    except ValidationError as exc:
        raise Unexplainable(
            f"the stored snapshot no longer reads: {exc.errors()[0]['msg']}"
        ) from None
    evaluation = ruleset.decide(contact, context, snapshot.received_at)
    where = {rule.name: (rule.file, rule.line) for rule in ruleset.rules}
    return [
        {
            "rule": entry["rule"],
            "file": where[entry["rule"]][0] if entry["rule"] is not None else None,
            "line": where[entry["rule"]][1] if entry["rule"] is not None else None,
            "matched": entry["matched"],
            "why": entry["why"],
            "rollout": entry.get("rollout"),
            "continue": entry.get("continue", False),
        }
        for entry in evaluation.trace
    ]
