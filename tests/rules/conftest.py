from rules_support import rules

__all__ = ["rules"]
