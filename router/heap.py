"""The garbage collector of a long-running process.

Reference counting frees almost everything a request makes; the cyclic
collector runs besides, every ``threshold0`` new container objects, and now
and then over the whole heap. In a serving process most of that heap is
what start-up made (modules, the models' validators, the compiled rules,
the pool), and a full collection walking it stalls every request in flight
for tens of milliseconds. :func:`settle` is called once the process serves:
start-up's objects are collected once and frozen (never walked again; they
live as long as the process), and the youngest generation is collected
less often, when more of what a batch of requests made is already gone."""

from __future__ import annotations

import gc

#: container objects allocated (less those freed) between two collections of
#: the youngest generation (Python's default: 700)
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Freeze what start-up made and space out the young collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
