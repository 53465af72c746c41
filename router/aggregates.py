"""The arithmetic of the reporting summary, pure (no I/O): distinct-customer
sketches, latency histograms and rates. The SQL side that fills them is in
``router/store/sql/functions/customer_sketch.sql`` and ``router/store/rollups.py``.

Sketches are HyperLogLog registers kept as OR-able bitmaps: 512 registers of
16 bits, register ``r`` having bit ``k`` set when some customer hashed into
``r`` had ``k`` trailing zero bits in the rest of its hash. OR-ing two
sketches gives the sketch of the union, which PostgreSQL's built-in
``bit_or`` does over any number of rollup rows; the highest set bit of a
register is the HyperLogLog register value. Standard error 1.04/sqrt(512),
about 4.6 %; small counts are almost exact (linear counting).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

REGISTERS = 512
REGISTER_BITS = 16
SKETCH_BYTES = REGISTERS * REGISTER_BITS // 8
_UNPACK = struct.Struct(f">{REGISTERS}H")
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)
_POW = [2.0**-k for k in range(REGISTER_BITS + 1)]
#: 2 ** -(highest set bit) of every register value: one lookup per register.
_WEIGHT = [_POW[v.bit_length()] for v in range(1 << REGISTER_BITS)]

#: Latency histogram: bucket 0 is below 0.1 ms, bucket i in 1..50 is
#: [THRESHOLDS[i - 1], THRESHOLDS[i]) -- ten buckets per decade -- and bucket
#: 51 is 10 s and more: PostgreSQL's ``width_bucket(ms, THRESHOLDS)``.
THRESHOLDS: tuple[float, ...] = tuple(0.1 * 10 ** (k / 10) for k in range(51))
#: How many buckets the routing-time histogram has (a rollup row's ``lat_0`` ..
#: ``lat_51``); not to be mixed up with the seconds of ``/metrics``.
ROUTING_MS_BUCKET_COUNT = len(THRESHOLDS) + 1


def bucket_bounds(i: int) -> tuple[float, float]:
    """The [low, high) milliseconds of latency bucket ``i``."""
    low = THRESHOLDS[i - 1] if i > 0 else 0.0
    high = THRESHOLDS[i] if i < len(THRESHOLDS) else math.inf
    return low, high


def percentiles(counts: Sequence[int], qs: Sequence[float]) -> list[float | None]:
    """The ``qs`` quantiles (0..1, ascending) of a latency histogram,
    interpolated geometrically inside their bucket (at most one bucket, ~26 %,
    off; usually far closer). ``None`` without data; 10 s for anything in the
    top bucket."""
    total = sum(counts)
    if total == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    seen = 0
    i = 0
    for q in qs:
        rank = q * total
        while i < len(counts) - 1 and seen + counts[i] < rank:
            seen += counts[i]
            i += 1
        n = counts[i]
        low, high = bucket_bounds(i)
        fraction = (rank - seen) / n if n else 1.0
        if math.isinf(high):
            out.append(low)
        elif i == 0:
            out.append(round(low + (high - low) * fraction, 3))
        else:
            out.append(round(low * float((high / low) ** fraction), 3))
    return out


def merge_sketches(sketches: Iterable[bytes | None]) -> bytes | None:
    """The sketch of the union (bitwise OR); ``None`` if all are ``None``."""
    merged = 0
    found = False
    for s in sketches:
        if s is not None:
            merged |= int.from_bytes(s, "big")
            found = True
    return merged.to_bytes(SKETCH_BYTES, "big") if found else None


def estimate_distinct(sketch: bytes | None) -> int:
    """Distinct customers in a sketch (HyperLogLog with linear counting for
    small counts). Registers cap at 16, so estimates saturate in the tens of
    millions per row."""
    if sketch is None:
        return 0
    registers = _UNPACK.unpack(sketch)
    empty = registers.count(0)
    harmonic = sum(map(_WEIGHT.__getitem__, registers))
    estimate = _ALPHA * REGISTERS * REGISTERS / harmonic
    if estimate <= 2.5 * REGISTERS and empty:
        estimate = REGISTERS * math.log(REGISTERS / empty)
    return int(round(estimate))


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places; ``None`` when ``whole`` is 0."""
    return round(part / whole, 4) if whole else None
