"""What one attempt sends: the HTTP request of an event for a destination,
by the destination's kind, and which failed answers are worth retrying.

* ``webhook``: the event as JSON, signed per Standard Webhooks (``signing``);
  every failure is retried (the receiver is ours to fix).
* ``twilio-taskrouter``: a Task (``taskrouter``).
* ``zendesk``: an update of the contact's ticket (``zendesk``).

For the provider kinds a 4xx answer other than 429 is final: the request
itself is wrong (bad credentials, an unknown workflow or ticket) and sending
it again cannot help, so the event is dead at once with the answer as its
``last_error``; 429, 5xx, timeouts and refused connections are retried.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.outbound import signing, taskrouter, zendesk
from router.settings import (
    DestinationSettings,
    TaskRouterDestination,
    WebhookDestination,
)


@dataclass(slots=True)
class Outbound:
    """One HTTP request to make (never changed once made)."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def basic(user: str, password: str) -> str:
    """An ``Authorization`` header value with Basic credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def build(dest: DestinationSettings, delivery_id: str, event: str) -> Outbound | None:
    """The request of one event (its JSON text as stored) for ``dest``;
    ``None`` when there is nothing to send for it (a zendesk event of a
    contact without a ticket). A webhook sends the text as it is, so the
    event is not parsed and dumped again."""
    if isinstance(dest, WebhookDestination):
        body = event.encode()
        headers = signing.headers(delivery_id, int(time.time()), body, dest.secrets)
        return Outbound("POST", dest.url, body, headers)
    payload: dict[str, Any] = orjson.loads(event)
    if isinstance(dest, TaskRouterDestination):
        url, form = taskrouter.task(dest, payload)
        return Outbound(
            "POST",
            url,
            form,
            {
                "content-type": "application/x-www-form-urlencoded",
                "authorization": basic(dest.account_sid, dest.auth_token),
            },
        )
    update = zendesk.ticket_update(dest, payload)
    if update is None:
        return None
    url, body = update
    return Outbound(
        "PUT",
        url,
        body,
        {
            "content-type": "application/json",
            "authorization": basic(f"{dest.email}/token", dest.api_token),
        },
    )


def final(dest: DestinationSettings, status: int) -> bool:
    """Whether a failed answer ``status`` makes the event dead at once."""
    if isinstance(dest, WebhookDestination):
        return False
    return 400 <= status < 500 and status != 429
