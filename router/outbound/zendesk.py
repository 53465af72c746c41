"""Zendesk Support: the ticket a contact came from gets the decision.

``PUT {base_url}/api/v2/tickets/{ticket_id}.json`` with JSON
``{"ticket": {"group_id", "priority", "additional_tags"}}``, Basic auth
``{email}/token:{api_token}`` (an API token of an agent).

* ``group_id``: the queue's group from ``groups``; left out for a queue not
  in the map (the ticket keeps its group).
* ``priority``: the decision's 0-100 priority in Zendesk's four levels,
  ``PRIORITIES`` below.
* ``additional_tags``: the decision's tags, **added** to the ticket's own.
  ``tags`` would replace every tag on the ticket (those of agents, triggers
  and other integrations) with ours; ``additional_tags`` keeps them and is
  idempotent, so a redelivered event changes nothing more.

The ticket id is the ``ticket_id`` of the event's data, set for contacts of
the ``zendesk`` adapter whose conversation names its ticket; an event
without one has nothing to update and is marked delivered without a request.
The update is idempotent (the same group, priority and tags again), so
at-least-once delivery is harmless.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.settings import ZendeskDestination

#: (lowest priority of the band, Zendesk priority), highest band first.
PRIORITIES = ((75, "urgent"), (50, "high"), (25, "normal"), (0, "low"))


def priority(value: int) -> str:
    """Zendesk's priority for a 0-100 one: 0-24 low, 25-49 normal, 50-74
    high, 75-100 urgent."""
    for lowest, name in PRIORITIES:
        if value >= lowest:
            return name
    return "low"


def ticket_id(data: dict[str, Any]) -> int | None:
    """The ticket of an event's data, when it names a valid one."""
    value = data.get("ticket_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value) or None
    return None


def ticket_update(dest: ZendeskDestination, payload: dict[str, Any]) -> tuple[str, bytes] | None:
    """The URL and JSON body of the ticket update; ``None`` without a ticket."""
    data = payload["data"]
    ticket = ticket_id(data)
    if ticket is None:
        return None
    decision = data["decision"]
    update: dict[str, Any] = {"priority": priority(int(decision["priority"]))}
    group = dest.groups.get(decision["queue"])
    if group is not None:
        update["group_id"] = group
    tags = list(decision.get("tags") or ())
    if tags:
        update["additional_tags"] = tags
    url = f"{dest.api_url}/api/v2/tickets/{ticket}.json"
    return url, orjson.dumps({"ticket": update})
