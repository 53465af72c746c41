"""``GET /v1/contacts/{id}?explain=true``: why a stored contact went where it went.

The record's snapshots (the contact and the customer context the rules saw)
are decided again, with a trace, by the ruleset version that decided them, at
the moment the contact was received: every rule tried, in order, and the first
condition that failed, up to the rule that decided. The version is the active
one or is read from the ``rulesets`` table and compiled; the last few compiled
versions are kept in memory (``Runtime.versions``).

For a contact of a queue omniroute assigns, ``assignment`` lists its offers
with their explanations (``router.assignment``).
"""

from __future__ import annotations

import uuid
from typing import Any

from router.errors import NotRedecidable
from router.redecide import redecide, refuse_erased
from router.runtime import Runtime
from router.store import Snapshot


async def explanation(rt: Runtime, snapshot: Snapshot) -> dict[str, Any]:
    """``{"explanation": [...]}`` for the record's ``snapshot``, or
    ``{"explanation_error": why}`` when it cannot be re-evaluated."""
    try:
        return {"explanation": await _explain(rt, snapshot)}
    except NotRedecidable as exc:
        return {"explanation_error": exc.message}


async def assignment(rt: Runtime, contact_id: uuid.UUID) -> dict[str, Any]:
    """``{"assignment": {"offers": [...]}}``: every offer made for the contact,
    oldest first, each with why that agent (the candidates ranked above it and
    why each was passed over, the next ranked lower; docs/agents.md)."""
    offers = await rt.store.offers.of_contact(contact_id)
    return {"assignment": {"offers": [o.as_json(explanation=True) for o in offers]}}


async def _explain(rt: Runtime, snapshot: Snapshot) -> list[dict[str, Any]]:
    refuse_erased(snapshot.contact)  # before a ruleset is looked up for it
    version = snapshot.decision["ruleset"]
    if rt.rules.ready and rt.rules.active.version == version:
        ruleset = rt.rules.active
    else:
        ruleset = await rt.versions.get(version)
    evaluation = redecide(
        ruleset,
        contact=snapshot.contact,
        context=snapshot.context,
        received_at=snapshot.received_at,
    )
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
