"""Recognition: who a contact is, across channels. Identifier normalization,
resolution to one customer, the customer context the rules see, the optional
external context provider, and the customer profiles a CRM keeps. It calls
the store; the store never calls it."""

from router.recognition.identity import Normalizer
from router.recognition.resolution import Lookup, Recognized
from router.recognition.service import Recognition

__all__ = ["Lookup", "Normalizer", "Recognition", "Recognized"]
