"""Deciding a stored contact again.

A routed contact's record keeps what the rules saw: the normalized contact and
the customer context (as JSON snapshots) and the moment it was received.
:func:`redecide` reads the snapshots back as models and evaluates a ruleset on
them at that moment, so that the only difference from the first decision is
the rules. Replay (``omniroute rules simulate --replay``) uses it with
candidate rules; explain (``GET /v1/contacts/{id}?explain=true``) with the
version that decided, traced.

A record whose personal data was erased (in whole, or the part of an erased
customer's in another's record) is refused: what the rules saw is no longer
all there, and deciding it again could mislead.

Pure: models and rules only. The callers fetch the records and the rulesets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from router.errors import Erased, NotRedecidable, Unreadable
from router.models import Contact, CustomerContext
from router.rules import Evaluation, Ruleset

__all__ = ["Erased", "NotRedecidable", "Unreadable", "redecide", "refuse_erased"]


def refuse_erased(contact: Mapping[str, Any]) -> None:
    """Raise :class:`Erased` when the stored contact snapshot shows an erasure."""
    if contact.get("erased"):
        raise Erased("the contact's personal data was erased")
    if contact.get("redacted"):
        raise Erased("personal data of an erased customer was removed from the contact")


def redecide(
    ruleset: Ruleset,
    *,
    contact: Mapping[str, Any],
    context: Mapping[str, Any],
    received_at: datetime,
    explain: bool = True,
) -> Evaluation:
    """Decide the stored contact again with ``ruleset`` at ``received_at``.

    ``contact`` and ``context`` are the record's snapshots as stored (JSON
    objects). Raises :class:`Erased` or :class:`Unreadable`; ``explain`` as in
    :meth:`Ruleset.decide <router.rules.Ruleset.decide>`."""
    refuse_erased(contact)
    try:
        seen = Contact.model_validate(contact)
        customer = CustomerContext.model_validate(context)
    except ValidationError as exc:
        raise Unreadable(f"the stored snapshot no longer reads: {exc.errors()[0]['msg']}") from None
    return ruleset.decide(seen, customer, received_at, explain=explain)
