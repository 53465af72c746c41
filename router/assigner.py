"""The assignment job of one instance (docs/agents.md, "Assignment").

It runs a round (``Store.offers.assign_round``) whenever the database says
one may offer something: an agent may take new work (``agent:<id>``: made
available, capacity raised, work released by an outcome, a rejection or an
expiry) or contacts arrived for an assigned queue (``contacts``), on the
``omniroute_assign`` channel; and as a safety sweep every ``sweep`` seconds,
or sooner when an offer is due to expire (the offers' timer, claimed with
``SKIP LOCKED``). A wake-up that only names agents runs a round limited to
them (the notifications heard meanwhile together: one round over their
union); contacts arriving, the offers' timer, the sweep and listening again
after a lost connection run a round over every agent. Rounds repeat while
they make offers, and a round that made none because another transaction
held its contacts runs again once that transaction has ended (nothing else
would wake it: the holder may leave them waiting). Every instance runs
it, at the same time: rounds claim contacts and agents with ``SKIP LOCKED``
(what another round holds is left to it; that round goes on while it makes
offers), and the agents' row locks, the checks under them and the capacity
trigger keep any of them from over-assigning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import UTC, datetime
from functools import partial

import structlog

from router.assignment import Agent, Aging, Pair, Policy, Waiting, choose
from router.errors import StoreUnavailable
from router.jobs import keep_listening
from router.metrics import Metrics
from router.rules import Ruleset
from router.settings import AgentSettings
from router.store import Store
from router.store.offers import OfferedOutbox

log = structlog.get_logger("omniroute.assign")

#: Seconds between safety sweeps when nothing wakes the job.
SWEEP_SECONDS = 2.0
#: Waiting contacts considered per queue in one round.
ROUND_LIMIT = 500
#: Times a round that made no offer, its contacts lost to other
#: transactions, is run again once the transaction holding one of them has
#: ended; and the seconds it waits for that transaction at most.
RETRIES = 4
RETRY_WAIT = 1.0


class Wakeups:
    """What the notifications heard since the last round ask for: a round
    over the agents they named (``agent:<id>``), or over every agent
    (``contacts``, anything else, or nothing heard: listening again after a
    lost connection, whatever was committed meanwhile)."""

    def __init__(self) -> None:
        self._agents: set[str] = set()
        self._everyone = False

    def heard(self, payload: str) -> None:
        kind, _, agent = payload.partition(":")
        if kind == "agent" and agent:
            self._agents.add(agent)
        else:
            self._everyone = True

    def everyone(self) -> None:
        self._everyone = True

    def take(self) -> frozenset[str] | None:
        """The agents named since the last call; ``None``: every agent."""
        agents = None if self._everyone or not self._agents else frozenset(self._agents)
        self._agents.clear()
        self._everyone = False
        return agents


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
        self._wakeups = Wakeups()

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
        listener = asyncio.create_task(keep_listening(self._listening, wake, stop, name="assign"))
        try:
            swept = 0.0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                woken = wake.is_set()
                wake.clear()
                named = self._wakeups.take()
                wait = self._sweep
                sweep = not woken or loop.time() - swept >= self._sweep
                if sweep:
                    swept = loop.time()
                try:
                    wait = await self.once(sweep=sweep, agents=None if sweep else named)
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

    @contextlib.asynccontextmanager
    async def _listening(self, wake: Callable[[], None]) -> AsyncIterator[asyncio.Event]:
        async with self._store.offers.listening(wake, heard=self._wakeups.heard) as lost:
            # (again:) what was committed while nobody listened is unknown
            self._wakeups.everyone()
            yield lost

    async def once(self, *, sweep: bool = False, agents: Collection[str] | None = None) -> float:
        """Expire the due offers (when one is due, or at a sweep), then run
        rounds while they make offers: over ``agents`` only when given (and
        no offer expired), else over every agent; the seconds until the next
        one should run at the latest."""
        now = datetime.now(UTC)
        if sweep or self._due is None or self._due <= now:
            while True:
                expired = await self._store.offers.expire_due(limit=self._limit)
                if expired:
                    agents = None  # their contacts wait again, for any agent
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
            retries = 0
            while True:
                done = await self._store.offers.assign_round(
                    policies=current,
                    choose=pick,
                    limit=self._limit,
                    units=self._settings.units_of,
                    outbox=self._outbox,
                    agents=agents,
                )
                scope = "all" if agents is None else "agents"
                if self._metrics is not None:
                    self._metrics.assign_round(scope, agents=done.agents, waiting=done.waiting)
                    for queue, n in Counter(m.queue for m in done.made).items():
                        self._metrics.offers(queue, made=n)
                if done.made:
                    log.info(
                        "offers_made",
                        count=len(done.made),
                        refused=done.refused,
                        scope=scope,
                        agents=done.agents,
                        waiting=done.waiting,
                    )
                    made, retries = True, 0
                    continue
                # nothing made, contacts lost to another transaction: it may
                # leave them (or the next ones) to these agents as it ends,
                # and nothing would wake this round again; once it has ended,
                # run again
                if not done.lost or retries >= RETRIES:
                    break
                retries += 1
                if not await self._store.offers.wait_released(done.lost[0], timeout=RETRY_WAIT):
                    break
        if made:
            self._due = await self._store.offers.next_expiry()
        if self._due is None:
            return self._sweep
        return max(0.01, min(self._sweep, (self._due - datetime.now(UTC)).total_seconds() + 0.005))
