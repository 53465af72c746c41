"""Decisions delivered: which destinations receive which events
(``destinations``), how a webhook is signed (``signing``, Standard Webhooks),
and the dispatcher every instance runs (``dispatcher``)."""

from router.outbound.destinations import Destinations
from router.outbound.dispatcher import Dispatcher

__all__ = ["Destinations", "Dispatcher"]
