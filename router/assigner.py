"""The assignment job of one instance (docs/agents.md, "Assignment").

It runs a round (``Store.offers.assign_round``) whenever the database says
one may offer something: an agent may take new work (``agent:<id>``: made
available, capacity raised, work released by an outcome, a rejection or an
expiry) or contacts arrived for an assigned queue (``contacts``), on the
``omniroute_assign`` channel; and as a safety sweep every ``sweep`` seconds,
or sooner when an offer is due to expire (the offers' timer, claimed with
``SKIP LOCKED``). Rounds repeat while they make offers. Every instance runs
it, at the same time: rounds claim contacts and agents with ``SKIP LOCKED``
(what another round holds is left to it; that round goes on while it makes
offers), and the agents' row locks, the checks under them and the capacity
trigger keep any of them from over-assigning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

import structlog

from router.assignment import Agent, Aging, Pair, Policy, Waiting, choose
from router.errors import StoreUnavailable
from router.jobs import keep_listening
from router.metrics import Metrics
from router.models import CHANNELS
from router.rules import Ruleset
from router.settings import AgentSettings
from router.store import Store
from router.store.offers import OfferedOutbox

log = structlog.get_logger("omniroute.assign")

#: Seconds between safety sweeps when nothing wakes the job.
SWEEP_SECONDS = 2.0
#: Waiting contacts considered per queue in one round.
ROUND_LIMIT = 500


def policies(ruleset: Ruleset) -> dict[str, Policy]:
    """The queues declared with ``assign:``, each with its policy."""
    out = {}
    for queue in ruleset.queues.values():
        spec = queue.assign
        if spec is None:
            continue
        aging = spec.aging
        out[queue.name] = Policy(
            mode=spec.mode,
            offer_timeout=None if spec.offer_timeout is None else float(spec.offer_timeout),
            preferred_wait=float(spec.preferred_wait),
            aging=None if aging is None else Aging(aging.every, aging.by, aging.max),
        )
    return out


class Assigner:
    def __init__(
        self,
        store: Store,
        ruleset: Callable[[], Ruleset],
        settings: AgentSettings,
        *,
        outbox: OfferedOutbox | None = None,
        metrics: Metrics | None = None,
        sweep: float = SWEEP_SECONDS,
        limit: int = ROUND_LIMIT,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._ruleset = ruleset
        self._settings = settings
        self._outbox = outbox
        self._sweep = sweep
        self._limit = limit
        self._policies: tuple[str, dict[str, Policy]] | None = None
        #: when the soonest open offer expires, as last read (offers other
        #: instances make are seen at the next sweep at the latest)
        self._due: datetime | None = None
        #: the fewest units a contact takes: agents with less free take nothing
        self._smallest = max(1, min(settings.units_of(c) for c in CHANNELS))

    def policies(self) -> dict[str, Policy]:
        ruleset = self._ruleset()
        if self._policies is None or self._policies[0] != ruleset.version:
            self._policies = (ruleset.version, policies(ruleset))
        return self._policies[1]

    def _choose(
        self,
        policies: dict[str, Policy],
        waiting: Sequence[Waiting],
        agents: Sequence[Agent],
        now: datetime,
        most: int,
    ) -> list[Pair]:
        return choose(
            waiting,
            agents,
            policies=policies,
            units=self._settings.units_of,
            now=now,
            default_timeout=self._settings.offer_timeout,
            most=most,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``: at every notification, at every offer's
        expiry, and every ``sweep`` seconds."""
        wake = asyncio.Event()
        listener = asyncio.create_task(
            keep_listening(self._store.offers.listening, wake, stop, name="assign")
        )
        try:
            swept = 0.0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                woken = wake.is_set()
                wake.clear()
                wait = self._sweep
                sweep = not woken or loop.time() - swept >= self._sweep
                if sweep:
                    swept = loop.time()
                try:
                    wait = await self.once(sweep=sweep)
                except StoreUnavailable as exc:
                    log.warning("assign_failed", error=str(exc))
                except Exception:  # the job must outlive any one failure
                    log.exception("assign_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        waits = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
                        try:
                            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for w in waits:
                                w.cancel()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def once(self, *, sweep: bool = False) -> float:
        """Expire the due offers (when one is due, or at a sweep), then run
        rounds while they make offers; the seconds until the next one should
        run at the latest."""
        now = datetime.now(UTC)
        if sweep or self._due is None or self._due <= now:
            while True:
                expired = await self._store.offers.expire_due(limit=self._limit)
                if self._metrics is not None:
                    for offer in expired:
                        self._metrics.offers(offer.queue, result="expired")
                if len(expired) < self._limit:
                    break
            self._due = await self._store.offers.next_expiry()
        made = False
        current = self.policies()
        if current:
            pick = partial(self._choose, current)
            while True:
                done = await self._store.offers.assign_round(
                    policies=current,
                    choose=pick,
                    limit=self._limit,
                    smallest=self._smallest,
                    outbox=self._outbox,
                )
                if done.made and self._metrics is not None:
                    for queue, n in Counter(m.queue for m in done.made).items():
                        self._metrics.offers(queue, made=n)
                if done.made:
                    log.info(
                        "offers_made",
                        count=len(done.made),
                        refused=done.refused,
                        agents=done.agents,
                        waiting=done.waiting,
                    )
                if not done.made:
                    break
                made = True
        if made:
            self._due = await self._store.offers.next_expiry()
        if self._due is None:
            return self._sweep
        return max(0.01, min(self._sweep, (self._due - datetime.now(UTC)).total_seconds() + 0.005))
