"""A destination's circuit in one instance (pure: times are passed in).

* **closed**: attempts run as usual; failed attempts in a row (across
  events) are counted, a success resets the count.
* **open**: after ``after`` failures in a row the destination is paused for
  ``base`` seconds, doubled for each pause in a row, up to ``cap``; nothing
  is sent to it meanwhile (its events wait in the outbox, none is lost).
* **half-open**: when the pause is over one attempt is let through (a
  probe): a success closes the circuit and resets the pause, a failure opens
  it again for twice as long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class Circuit:
    #: failures in a row that open it (``None``: never)
    after: int | None
    base: float
    cap: float
    #: failed attempts in a row
    failures: int = 0
    #: pauses in a row without a success in between
    opens: int = 0
    #: when the current pause ends (seconds since the epoch; 0: none yet)
    paused_until: float = 0.0

    def state(self, now: float) -> State:
        if self.opens == 0:
            return "closed"
        return "open" if now < self.paused_until else "half-open"

    def slots(self, now: float, concurrency: int) -> int:
        """How many attempts may be in flight now: all of ``concurrency``
        when closed, none when open, one (the probe) when half-open."""
        state = self.state(now)
        return concurrency if state == "closed" else 0 if state == "open" else 1

    def succeeded(self) -> None:
        self.failures = 0
        self.opens = 0
        self.paused_until = 0.0

    def failed(self, now: float) -> float | None:
        """Count a failed attempt; the pause's length when it opens the circuit."""
        self.failures += 1
        state = self.state(now)
        if state == "open":  # an attempt started before the pause: already counted as down
            return None
        if state == "half-open" or (self.after is not None and self.failures >= self.after):
            pause = min(self.cap, self.base * 2.0 ** min(self.opens, 62))
            self.opens += 1
            self.paused_until = now + pause
            return pause
        return None
