"""The routing rules language: YAML rules files compiled into a pure ruleset.

``load_ruleset(paths)`` reads and compiles; ``Ruleset.decide(contact,
customer, now)`` returns an :class:`Evaluation` (decision, trace, rollout).
The language is described in ``docs/rules.md``.
"""

from router.rules.engine import Evaluation, Ruleset
from router.rules.loader import load_ruleset, load_ruleset_sources, load_ruleset_text

__all__ = ["Evaluation", "Ruleset", "load_ruleset", "load_ruleset_sources", "load_ruleset_text"]
