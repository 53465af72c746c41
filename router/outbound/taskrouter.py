"""Twilio TaskRouter: a routed contact becomes a Task.

``POST {base_url}/v1/Workspaces/{WorkspaceSid}/Tasks``, form-encoded, Basic
auth with the account SID and auth token, fields:

* ``WorkflowSid``: the workflow that places the task in a task queue;
* ``Attributes``: JSON the workflow's filters read: ``queue``, ``skills``,
  ``priority``, ``sla_seconds``, ``contact_id``, ``customer_id``, ``channel``,
  ``external_id``, ``tags``;
* ``Priority``: the decision's priority (higher is served first in both);
* ``Timeout``: ``task_timeout`` seconds unassigned before TaskRouter cancels
  the task (the SLA is a target, not a lifetime: it is in the attributes);
* ``TaskChannel``: from ``task_channels`` by the contact's channel.

Twilio takes no idempotency key for creating a task, so delivery is at least
once: an attempt whose answer was lost creates a second task. Each task
carries ``contact_id`` in its attributes, so a duplicate can be found (a
workflow filter, or a look-up of the workspace's tasks) and cancelled.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import orjson

from router.settings import TaskRouterDestination


def attributes(data: dict[str, Any]) -> dict[str, Any]:
    """The task's attributes from a ``contact.routed`` event's ``data``."""
    decision = data["decision"]
    return {
        "queue": decision["queue"],
        "skills": list(decision.get("skills") or ()),
        "priority": decision["priority"],
        "sla_seconds": decision.get("sla_seconds"),
        "contact_id": data["contact_id"],
        "customer_id": data.get("customer_id"),
        "channel": data["channel"],
        "external_id": data.get("external_id"),
        "tags": list(decision.get("tags") or ()),
    }


def task(dest: TaskRouterDestination, payload: dict[str, Any]) -> tuple[str, bytes]:
    """The URL and form body that create the task of a ``contact.routed`` event."""
    data = payload["data"]
    attrs = attributes(data)
    url = f"{dest.base_url.rstrip('/')}/v1/Workspaces/{quote(dest.workspace_sid)}/Tasks"
    form = {
        "WorkflowSid": dest.workflow_sid,
        "Attributes": orjson.dumps(attrs).decode(),
        "Priority": str(max(0, int(attrs["priority"]))),
        "Timeout": str(dest.task_timeout),
        "TaskChannel": dest.task_channel(data["channel"]),
    }
    return url, urlencode(form).encode()
