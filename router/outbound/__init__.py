"""Decisions delivered: which destinations receive which events
(``destinations``), the request of an attempt by destination kind
(``outgoing``: a webhook signed per Standard Webhooks by ``signing``, a
Twilio TaskRouter task by ``taskrouter``, a Zendesk ticket update by
``zendesk``), the dispatcher every instance runs (``dispatcher``) and its
HTTP client (``client``)."""

from router.outbound.client import Client
from router.outbound.destinations import Destinations
from router.outbound.dispatcher import Dispatcher

__all__ = ["Client", "Destinations", "Dispatcher"]
