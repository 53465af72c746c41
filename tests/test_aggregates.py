"""The summary's arithmetic: distinct-count sketches (built by PostgreSQL,
estimated in Python) and latency percentiles."""

from __future__ import annotations

import pytest

from router.aggregates import (
    ROUTING_MS_BUCKET_COUNT,
    THRESHOLDS,
    estimate_distinct,
    merge_sketches,
    percentiles,
    rate,
)
from tests.support.api import Api
from tests.support.seed import pool


async def test_sketches_estimate_distinct_customers(api: Api, database_url: str) -> None:
    # fixed ids (an estimate's error is chance: the same ids give the same figures)
    async with pool(database_url) as p:
        for n in (1, 5, 1000, 50_000):
            row = await p.fetchrow(
                """SELECT bit_or(customer_sketch(id)) AS s FROM (
                       SELECT md5('c' || i)::uuid AS id FROM generate_series(1, $1) AS i) u""",
                n,
            )
            estimate = estimate_distinct(row["s"].bytes)
            assert abs(estimate - n) <= max(1, 0.15 * n), (n, estimate)  # ~3 standard errors
        halves = await p.fetch(
            """SELECT bit_or(customer_sketch(id)) AS s FROM (
                   SELECT md5('h' || i)::uuid AS id, i % 2 AS half
                     FROM generate_series(1, 20000) AS i) u GROUP BY half"""
        )
        merged = merge_sketches(r["s"].bytes for r in halves)
        assert abs(estimate_distinct(merged) - 20_000) <= 3000
        assert await p.fetchval("SELECT customer_sketch(NULL) IS NULL")
    assert estimate_distinct(None) == 0
    assert merge_sketches([None, None]) is None


def test_percentiles_from_the_histogram() -> None:
    counts = [0] * ROUTING_MS_BUCKET_COUNT
    assert percentiles(counts, [0.5]) == [None]
    counts[11] = 10  # [1.0, 1.26) ms
    [median] = percentiles(counts, [0.5])
    assert median is not None and 1.0 <= median < THRESHOLDS[11]
    counts[ROUTING_MS_BUCKET_COUNT - 1] = 90  # 10 s and over
    low, high = percentiles(counts, [0.05, 0.99])
    assert high == 10_000.0
    assert low == pytest.approx(1.0 * (THRESHOLDS[11] / 1.0) ** 0.5, 1e-3)


def test_rates() -> None:
    assert rate(1, 3) == 0.3333
    assert rate(0, 0) is None
