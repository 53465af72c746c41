"""The replica's lag arithmetic (``router.store.replica``), pure: an idle
primary does not make a caught-up replica look behind, a write after a long
idle time does not either, the smaller of the two bounds wins, and the end of
the primary's WAL is where its last record ends."""

from __future__ import annotations

from router.store.replica import Positions, lag_seconds, wal_end

BLOCK, SEGMENT = 8192, 16 * 1024 * 1024


def test_a_replica_at_the_primarys_position_is_not_behind() -> None:
    # idle for an hour: the last replayed commit is an hour old
    assert lag_seconds(behind_bytes=0, since_seen=None, since_commit=3600.0) == 0.0
    # the replica replayed past the position read first from the primary
    assert lag_seconds(behind_bytes=-120, since_seen=None, since_commit=3600.0) == 0.0


def test_the_smaller_bound_wins() -> None:
    assert lag_seconds(behind_bytes=500, since_seen=1.0, since_commit=3600.0) == 1.0
    assert lag_seconds(behind_bytes=500, since_seen=12.0, since_commit=0.02) == 0.02
    assert lag_seconds(behind_bytes=500, since_seen=None, since_commit=4.0) == 4.0
    assert lag_seconds(behind_bytes=None, since_seen=None, since_commit=4.0) == 4.0
    assert lag_seconds(behind_bytes=500, since_seen=None, since_commit=None) is None
    # clocks of two hosts: never below zero
    assert lag_seconds(behind_bytes=500, since_seen=None, since_commit=-0.5) == 0.0


def test_positions_remember_when_the_primary_was_last_at_each() -> None:
    seen = Positions()
    for t in range(0, 3600, 1):  # an idle hour at one position
        seen.add(float(t), 1000)
    seen.add(3600.0, 5000)  # then a write
    seen.add(3601.0, 9000)
    # a replica at 1000 misses only what was written after t=3599
    assert seen.last_seen_at_or_before(1000) == 3599.0
    assert seen.last_seen_at_or_before(4999) == 3599.0
    assert seen.last_seen_at_or_before(5000) == 3600.0
    assert seen.last_seen_at_or_before(999_999) == 3601.0
    assert seen.last_seen_at_or_before(999) is None


def test_positions_are_bounded_and_ignore_going_back() -> None:
    seen = Positions(keep=3)
    for t, lsn in enumerate((10, 20, 30, 40, 35)):
        seen.add(float(t), lsn)
    assert seen.last_seen_at_or_before(15) is None  # 10 was forgotten
    assert seen.last_seen_at_or_before(20) == 1.0
    assert seen.last_seen_at_or_before(100) == 3.0


def test_the_wal_ends_at_the_insert_position_or_the_page_boundary_before_it() -> None:
    # within a page: the insert position is where the last record ended
    assert wal_end(5 * BLOCK + 1000, block=BLOCK, segment=SEGMENT) == 5 * BLOCK + 1000
    # nothing on the page yet: the insert position is past the page's header,
    # the last record (and its replay) ended at the boundary
    assert wal_end(5 * BLOCK + 24, block=BLOCK, segment=SEGMENT) == 5 * BLOCK
    # a segment's first page has the long header
    assert wal_end(3 * SEGMENT + 40, block=BLOCK, segment=SEGMENT) == 3 * SEGMENT
    assert wal_end(3 * SEGMENT + 48, block=BLOCK, segment=SEGMENT) == 3 * SEGMENT + 48
    assert wal_end(3 * SEGMENT + BLOCK + 40, block=BLOCK, segment=SEGMENT) == (
        3 * SEGMENT + BLOCK + 40
    )
