"""The live feed's hand-out, without a database: rows in id order with no
hole (a row after a missing id waits for it, or for the gap to age), slow
subscribers ended, every subscription ended at close."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from router.feed import Feed
from router.store.live import Change


class FakeLog:
    """``store.live`` over a dict of rows by id: what has committed."""

    def __init__(self) -> None:
        self.rows: dict[int, Change] = {}

    def add(self, *ids: int) -> None:
        for i in ids:
            self.rows[i] = Change(i, datetime.now(UTC), uuid.uuid4(), "routed", "q", "chat", {})

    async def last_id(self) -> int:
        return max(self.rows, default=0)

    async def changes(self, *, after: int, upto: int | None, limit: int) -> list[Change]:
        ids = sorted(i for i in self.rows if i > after and (upto is None or i <= upto))
        return [self.rows[i] for i in ids[:limit]]


def feed(log: FakeLog, **options: Any) -> Feed:
    store = type("S", (), {"live": log})()
    return Feed(cast(Any, store), **options)


async def ids(sub: Any) -> list[int]:
    got = await sub.next(0.01)
    return [] if not got else [c.id for c in got]


async def test_rows_are_handed_out_in_order_without_holes() -> None:
    log = FakeLog()
    f = feed(log, gap_wait=0.3)
    sub = f.subscribe()
    await f._read()  # starts at the end: 0
    assert sub.start == 0
    log.add(1, 2, 4)  # 3 has not committed yet
    await f._read()
    assert await ids(sub) == [1, 2] and f.position == 2
    log.add(3)
    await f._read()
    assert await ids(sub) == [3, 4]
    log.add(6)  # 5 rolled back: a hole for good
    await f._read()
    assert await ids(sub) == []
    await asyncio.sleep(0.35)
    await f._read()
    assert await ids(sub) == [6]


async def test_a_slow_subscriber_is_ended_and_close_ends_all() -> None:
    log = FakeLog()
    f = feed(log, buffer=2)
    slow, other = f.subscribe(), f.subscribe()
    await f._read()
    log.add(1, 2)
    await f._read()
    assert await ids(other) == [1, 2]
    log.add(3)
    await f._read()
    assert slow.ended == "slow" and await slow.next(0.01) == []
    assert await ids(other) == [3]
    f.close()
    assert other.ended == "shutdown" and await other.next(0.01) == []
    assert f.subscribe().ended == "shutdown"
