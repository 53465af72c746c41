"""The batcher behind group commit: concurrent items share a flush, each
caller gets its own result, failures stay with the items that caused them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from router.errors import StoreUnavailable
from router.store.batching import Batcher


async def test_concurrent_items_share_flushes_and_get_their_own_results() -> None:
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher("t", flush, max_inflight=2)
    batcher.start()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(100)))
    await batcher.stop()
    assert results == [i * 10 for i in range(100)]
    assert len(sizes) < 20 and sum(sizes) == 100


async def test_items_wait_for_the_batch_in_flight_unless_a_whole_batch_waits() -> None:
    """Group commit: what arrives while a batch is in flight goes in the next
    one, together, when it is done; a full batch does not wait."""
    sizes: list[int] = []
    release = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        await release.wait()
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, max_batch=4, max_inflight=3)
    batcher.start()
    first = asyncio.create_task(batcher.submit(0))
    while not sizes:
        await asyncio.sleep(0)
    waiting = [asyncio.create_task(batcher.submit(i)) for i in range(1, 4)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert sizes == [1]  # three waiting: not a whole batch, they wait
    more = [asyncio.create_task(batcher.submit(i)) for i in range(4, 10)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert sizes == [1, 4, 4]  # whole batches go at once, up to max_inflight
    release.set()
    assert await asyncio.gather(first, *waiting, *more) == list(range(10))
    await batcher.stop()
    assert sizes == [1, 4, 4, 1] and not batcher._pending


async def test_a_bad_item_fails_alone() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("thirteen")
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush)
    batcher.start()
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
    await batcher.stop()
    assert isinstance(outcomes[13], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 13] == [n for n in range(20) if n != 13]


async def test_database_unavailable_fails_the_whole_batch_at_once() -> None:
    calls: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        # the store's own methods translate a lost connection into this
        calls.append(len(items))
        await asyncio.sleep(0.01)
        raise StoreUnavailable("database unavailable; retry later")

    batcher: Batcher[int, int] = Batcher("t", flush, max_inflight=1)
    batcher.start()
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(10)), return_exceptions=True)
    await batcher.stop()
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert len(calls) < 10  # not retried item by item


async def test_stop_flushes_what_is_queued() -> None:
    done: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.02)
        done.extend(items)
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, max_inflight=1)
    batcher.start()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert sorted(done) == list(range(10))
    assert [t.result() for t in tasks] == list(range(10))


async def test_a_cancelled_caller_leaves_the_batch_of_the_others() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    flushed: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        flushed.append(list(items))
        started.set()
        await release.wait()
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher("t", flush, max_inflight=1)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(1))
    await started.wait()  # the first batch is in flight; the next two queue behind it
    cancelled = asyncio.ensure_future(batcher.submit(2))
    kept = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    first_cancelled = first.cancel()  # in flight: its item is still written
    release.set()
    assert await kept == 30
    await batcher.stop()
    assert first_cancelled and first.cancelled() and cancelled.cancelled()
    # the cancelled callers' items were flushed with the others, not lost halfway
    assert flushed == [[1], [2, 3]]


async def test_the_next_batch_is_sent_before_the_finished_ones_callers_go_on() -> None:
    """While the callers of a finished batch carry on (rules, the record: CPU
    on the event loop), the database already works on the next batch."""
    events: list[str] = []
    release = asyncio.Event()

    async def flush(items: Sequence[str]) -> list[str]:
        events.append("sent " + ",".join(items))
        if items == ["a"]:
            await release.wait()
        return list(items)

    batcher: Batcher[str, str] = Batcher("t", flush, max_inflight=1)
    batcher.start()

    async def caller(item: str) -> None:
        await batcher.submit(item)
        events.append("resumed " + item)

    first = asyncio.create_task(caller("a"))
    while not events:
        await asyncio.sleep(0)
    second = asyncio.create_task(caller("b"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert events == ["sent a"]  # b waits for the batch in flight
    release.set()
    await asyncio.gather(first, second)
    await batcher.stop()
    assert events == ["sent a", "sent b", "resumed a", "resumed b"]


async def test_a_stopped_batcher_flushes_each_item_on_its_own() -> None:
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush)
    batcher.start()
    await batcher.stop()
    assert await asyncio.gather(*(batcher.submit(i) for i in range(3))) == [0, 1, 2]
    assert sizes == [1, 1, 1]


async def test_with_linger_items_of_different_loop_turns_go_together() -> None:
    """An idle batcher with ``linger`` holds its first item for that long, so
    that items submitted a little later (other loop turns) share its batch;
    then the next idle item waits again."""
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, linger=0.5)
    batcher.start()
    t0 = asyncio.get_running_loop().time()
    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(batcher.submit(i)))
        await asyncio.sleep(0.01)  # a later turn of the loop, well within the linger
    assert sizes == []  # held
    assert await asyncio.gather(*tasks) == list(range(5))
    assert sizes == [5]
    assert asyncio.get_running_loop().time() - t0 >= 0.49
    assert await batcher.submit(5) == 5  # idle again: it lingers again, alone
    assert sizes == [5, 1]
    await batcher.stop()


async def test_with_linger_a_whole_batch_goes_at_once() -> None:
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, max_batch=4, linger=30.0)
    batcher.start()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(6)]
    results = await asyncio.wait_for(asyncio.gather(*tasks[:4]), 5)
    assert results == [0, 1, 2, 3] and sizes == [4]  # not held for the linger
    await asyncio.sleep(0.05)
    assert not tasks[4].done()  # the rest is no whole batch: it lingers (or the stop sends it)
    await asyncio.wait_for(batcher.stop(), 5)
    assert [t.result() for t in tasks[4:]] == [4, 5] and sizes == [4, 2]


async def test_stop_does_not_wait_for_the_linger() -> None:
    sizes: list[int] = []

    async def flush(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, linger=30.0)
    batcher.start()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert sizes == []
    await asyncio.wait_for(batcher.stop(), 5)
    assert [t.result() for t in tasks] == [0, 1, 2] and sizes == [3]


async def test_with_linger_a_batch_goes_when_its_first_item_has_waited_it() -> None:
    """Items queued behind a batch in flight go when it is done once the
    first of them has waited the linger; not before."""
    sent: list[tuple[int, float]] = []
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def flush(items: Sequence[int]) -> list[int]:
        sent.append((len(items), loop.time()))
        if items[0] == 0:
            await release.wait()
        return list(items)

    batcher: Batcher[int, int] = Batcher("t", flush, linger=0.3)
    batcher.start()
    first = asyncio.create_task(batcher.submit(0))
    while not sent:
        await asyncio.sleep(0.01)
    t1 = loop.time()
    behind = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.02)
    release.set()
    assert await first == 0
    await asyncio.sleep(0.02)
    assert len(sent) == 1  # done, but the next batch's first item has not waited 0.3 s
    assert await asyncio.gather(*behind) == [1, 2]
    assert [n for n, _ in sent] == [1, 2] and sent[1][1] - t1 >= 0.29
    # a batch whose first item has waited longer than the linger goes at once
    release.clear()
    held = asyncio.create_task(batcher.submit(0))
    while len(sent) < 3:
        await asyncio.sleep(0.01)
    late = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0.35)
    release.set()
    await held
    for _ in range(5):
        await asyncio.sleep(0)
    assert late.done() and len(sent) == 4
    await batcher.stop()
