"""A circuit breaker: after ``failures`` failures in a row, calls are skipped
for ``reset_seconds``; then one trial call decides whether to close again."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failures: int = 5
    reset_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)
    _failed: int = 0
    _opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self._opened_at >= self.reset_seconds else "open"

    def allow(self) -> bool:
        """May a call be made now? (In half-open state, one trial at a time.)"""
        state = self.state
        if state == "half-open":
            self._opened_at = self.clock()  # the trial holds the circuit until it reports
            return True
        return state == "closed"

    def success(self) -> None:
        self._failed = 0
        self._opened_at = None

    def failure(self) -> None:
        self._failed += 1
        if self._failed >= self.failures:
            self._opened_at = self.clock()
