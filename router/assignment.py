"""Which agent gets which waiting contact: the choice, pure (no I/O).

The assigner (``router.assigner``) reads the waiting contacts of the queues
declared with ``assign:`` and the agents that may take work, calls
:func:`choose`, and asks the store to make the offers (the database then
re-checks presence, capacity and channel maximums under the agent's row
lock: what is chosen here is a proposal, never trusted for capacity).

Order: highest priority first (with the queue's aging, if declared), then
longest waiting. For each contact the agents are ranked by the queue's mode
(``most_available``: most free units; ``longest_idle``: longest without
work; ``round_robin``: longest since its last offer), and the first agent
that is eligible takes it: available, never passed over for this contact
(rejected it or let an offer expire), holding every required skill at the
required level (``billing:3``: level 3 or more; ``billing``: any level),
with the units free and under the channel's maximum.

Each pair carries an explanation: the contact's place in the order, the
agents ranked above the chosen one with why each was passed over, the chosen
one, and the next few ranked lower.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Mode = Literal["most_available", "longest_idle", "round_robin"]
MODES: tuple[Mode, ...] = ("most_available", "longest_idle", "round_robin")
#: Skill levels (Amazon Connect's proficiencies): 1 (some) to 5 (expert).
LEVEL_MIN, LEVEL_MAX = 1, 5
#: Agents ranked lower than the chosen one that an explanation names.
RANKED_LOWER_SHOWN = 3
#: Agents passed over that an explanation names (the rest are counted by reason).
PASSED_SHOWN = 10
#: Presences during which a contact waits for its preferred agent.
WORTH_WAITING = ("available", "busy")

_new = object.__new__


def parse_skill(text: str) -> tuple[str, int]:
    """``"billing:3"`` -> ``("billing", 3)``; ``"billing"`` -> ``("billing", 1)``."""
    name, sep, level = text.rpartition(":")
    if sep and level.isdigit():
        return name, int(level)
    return text, LEVEL_MIN


def skill_name(text: str) -> str:
    return parse_skill(text)[0]


def required(skills: Iterable[str]) -> dict[str, int]:
    """The level each named skill needs (the highest written for it)."""
    out: dict[str, int] = {}
    for text in skills:
        name, level = parse_skill(text)
        out[name] = max(level, out.get(name, 0))
    return out


@dataclass(frozen=True, slots=True)
class Aging:
    """Priority grows by ``by`` every ``every_seconds`` of waiting, up to ``max``."""

    every_seconds: int
    by: int = 1
    max: int = 100

    def priority(self, priority: int, waited: float) -> int:
        if self.every_seconds <= 0 or waited <= 0:
            return priority
        grown = priority + self.by * int(waited // self.every_seconds)
        return max(priority, min(grown, self.max))


@dataclass(frozen=True, slots=True)
class Policy:
    """A queue's ``assign:`` block, compiled."""

    mode: Mode = "most_available"
    #: seconds an offer waits for accept or reject (``None``: the configured default)
    offer_timeout: float | None = None
    #: seconds the preferred agent is waited for before the queue
    preferred_wait: float = 0.0
    aging: Aging | None = None

    def priority(self, priority: int, waited: float) -> int:
        return priority if self.aging is None else self.aging.priority(priority, waited)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "offer_timeout": self.offer_timeout,
            "preferred_wait": self.preferred_wait,
            "aging": None
            if self.aging is None
            else {
                "every_seconds": self.aging.every_seconds,
                "by": self.aging.by,
                "max": self.aging.max,
            },
        }


@dataclass(frozen=True, slots=True)
class Waiting:
    """A waiting contact that no agent holds."""

    contact_id: uuid.UUID
    queue: str
    channel: str
    priority: int
    skills: tuple[str, ...]
    received_at: datetime
    preferred_agent: str | None = None
    #: offered only to the preferred agent until then (``None``: no window)
    preferred_until: datetime | None = None
    #: agents that rejected it or let an offer expire: never offered it again
    passed_over: frozenset[str] = frozenset()


#: the setters of Waiting's fields, in their order (its slots' descriptors)
_WAITING_FIELDS = tuple(Waiting.__dict__[name].__set__ for name in Waiting.__dataclass_fields__)
_NOBODY: frozenset[str] = frozenset()


def waiting_from(row: Iterable[Any]) -> Waiting:
    """A ``Waiting`` of its fields' values in their order (``skills`` and
    ``passed_over`` any collections), equal to the one its constructor makes:
    a round reads hundreds, and the constructor of a frozen class sets each
    field through ``object.__setattr__``, a few times slower."""
    contact_id, queue, channel, priority, skills, at, preferred, until, passed = row
    c = _new(Waiting)
    f = _WAITING_FIELDS
    f[0](c, contact_id)
    f[1](c, queue)
    f[2](c, channel)
    f[3](c, priority)
    f[4](c, tuple(skills))
    f[5](c, at)
    f[6](c, preferred)
    f[7](c, until)
    f[8](c, frozenset(passed) if passed else _NOBODY)
    return c


@dataclass(slots=True)
class Agent:
    """An agent as the choice sees it; ``load``, ``by_channel`` and
    ``last_offer_at`` move as the choice hands out work."""

    agent_id: str
    skills: Mapping[str, int]
    capacity: int
    load: int
    presence: str
    idle_since: datetime
    last_offer_at: datetime | None = None
    by_channel: dict[str, int] = field(default_factory=dict)
    channel_max: Mapping[str, int] = field(default_factory=dict)
    #: bumped at every change (stale heap entries are recognized by it)
    version: int = 0

    def free(self) -> int:
        return self.capacity - self.load

    def idle_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.idle_since).total_seconds()) if self.load == 0 else 0.0

    def rank(self, mode: Mode) -> tuple[Any, ...]:
        """Smaller is better."""
        if mode == "most_available":
            return (-self.free(), self.load > 0, self.idle_since, self.agent_id)
        if mode == "longest_idle":
            since = self.idle_since if self.load == 0 else (self.last_offer_at or self.idle_since)
            return (self.load > 0, since, self.agent_id)
        return (
            self.last_offer_at is not None,
            self.last_offer_at or self.idle_since,
            self.agent_id,
        )

    def facts(self, needs: Mapping[str, int], now: datetime) -> dict[str, Any]:
        """What an explanation shows of the agent: the levels of the skills
        the contact needs, load, capacity, free units, contacts per channel,
        idle time."""
        return {
            "agent": self.agent_id,
            "skills": {name: self.skills.get(name, 0) for name in needs},
            "load": self.load,
            "capacity": self.capacity,
            "free": self.free(),
            "by_channel": dict(self.by_channel),
            "idle_seconds": round(self.idle_seconds(now), 1),
        }


@dataclass(frozen=True, slots=True)
class Pair:
    """An offer to make: ``contact`` to ``agent_id``, taking ``units``."""

    contact: Waiting
    agent_id: str
    units: int
    timeout: float
    explanation: dict[str, Any]


_PAIR_FIELDS = tuple(Pair.__dict__[name].__set__ for name in Pair.__dataclass_fields__)


def why_not(agent: Agent, contact: Waiting, needs: Mapping[str, int], units: int) -> str | None:
    """Why ``agent`` may not take ``contact`` now (``None``: it may)."""
    if agent.presence != "available":
        return f"{agent.presence}, not available"
    if agent.agent_id in contact.passed_over:
        return "rejected this contact or let its offer expire"
    for name, level in needs.items():
        has = agent.skills.get(name, 0)
        if has < level:
            want = name if level == LEVEL_MIN else f"{name}:{level}"
            return f"lacks skill {want}" + (f" (has level {has})" if has else "")
    if agent.load + units > agent.capacity:
        return f"needs {units} units, {max(0, agent.free())} free"
    most = agent.channel_max.get(contact.channel)
    held = agent.by_channel.get(contact.channel, 0)
    if most is not None and held >= most:
        return f"at its {contact.channel} maximum ({held} of {most})"
    return None


def has_room(agent: Agent, channel: str, units: int) -> bool:
    """May ``agent`` hold one more contact of ``channel`` (``units`` of it)?
    Its free units and its maximum for the channel, nothing else."""
    most = agent.channel_max.get(channel)
    return agent.free() >= units and (most is None or agent.by_channel.get(channel, 0) < most)


def channels_with_room(
    agents: Iterable[Agent], channels: Iterable[str], units: Callable[[str], int]
) -> list[str]:
    """The ``channels`` (in their order) of which one of ``agents`` may hold
    one more contact: the only ones whose waiting contacts a round of these
    agents can offer."""
    crowd = list(agents)
    return [c for c in channels if any(has_room(a, c, units(c)) for a in crowd)]


_RANKING: dict[str, str] = {
    "most_available": "most free units, then longest idle",
    "longest_idle": "longest without work",
    "round_robin": "longest since its last offer",
}


#: why the chosen agent, when no preferred agent is
_FIRST = {mode: f"first eligible by {text}" for mode, text in _RANKING.items()}


def ranking(mode: Mode) -> str:
    return _RANKING[mode]


_EPOCH = datetime(1970, 1, 1)


def _seconds(at: datetime) -> float:
    """``at`` as a number ordered as ``at`` is: seconds since the epoch,
    distinct for distinct microseconds (a double's step there is under a
    microsecond until 2106)."""
    if at.utcoffset() is None:
        return (at - _EPOCH).total_seconds()
    return at.timestamp()


class _Pool:
    """The agents that may take work, a heap per mode (stale entries
    skipped). An entry is the agent's rank as numbers (``Agent.rank`` with
    its times as seconds and its id as its place in id order, so that
    comparing two never reaches a datetime or a string), the agent's place,
    and its version."""

    def __init__(self, agents: Sequence[Agent], smallest: int, now: datetime) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self._smallest = smallest
        self._now = _seconds(now)
        self.by_place = [self.agents[name] for name in sorted(self.agents)]
        self._place = {a.agent_id: n for n, a in enumerate(self.by_place)}
        self._idle = [_seconds(a.idle_since) for a in self.by_place]
        self._last = [
            None if a.last_offer_at is None else _seconds(a.last_offer_at) for a in self.by_place
        ]
        self._heaps: dict[Mode, list[tuple[Any, ...]]] = {}

    def entry(self, agent: Agent, n: int, mode: Mode) -> tuple[Any, ...]:
        busy = agent.load > 0
        if mode == "most_available":
            return (agent.load - agent.capacity, busy, self._idle[n], n, agent.version)
        last = self._last[n]
        if mode == "longest_idle":
            since = self._idle[n] if agent.load == 0 or last is None else last
            return (busy, since, n, agent.version)
        return (last is not None, self._idle[n] if last is None else last, n, agent.version)

    def heap(self, mode: Mode) -> list[tuple[Any, ...]]:
        heap = self._heaps.get(mode)
        if heap is None:
            heap = self._heaps[mode] = [
                self.entry(a, n, mode) for n, a in enumerate(self.by_place) if self.useful(a)
            ]
            heapq.heapify(heap)
        return heap

    def useful(self, agent: Agent) -> bool:
        return agent.presence == "available" and agent.capacity - agent.load >= self._smallest

    def take(self, agent: Agent, channel: str, units: int, now: datetime) -> None:
        agent.load += units
        agent.by_channel[channel] = agent.by_channel.get(channel, 0) + 1
        agent.last_offer_at = now
        agent.version += 1
        n = self._place[agent.agent_id]
        self._last[n] = self._now
        if self.useful(agent):
            for mode, heap in self._heaps.items():
                heapq.heappush(heap, self.entry(agent, n, mode))


def choose(
    waiting: Sequence[Waiting],
    agents: Sequence[Agent],
    *,
    policies: Mapping[str, Policy],
    units: Callable[[str], int],
    now: datetime,
    default_timeout: float,
    most: int | None = None,
) -> list[Pair]:
    """The offers to make now: contacts in order (priority with aging, then
    arrival), each to the best eligible agent of its queue's mode; ``most``
    pairs at most (the first ones). Agents' loads in ``agents`` move as
    work is handed out."""
    if not waiting or not agents:
        return []
    plain = Policy()
    costs: dict[str, int] = {}
    # each contact with what its place in the order needs (its policy, how
    # long it waited, its priority with aging), sorted by (priority with
    # aging, arrival, id); n keeps equal keys in their order, as sorted does
    decorated = []
    for n, contact in enumerate(waiting):
        policy = policies.get(contact.queue)
        waited = (now - contact.received_at).total_seconds()
        grown = contact.priority if policy is None else policy.priority(contact.priority, waited)
        decorated.append((-grown, contact.received_at, contact.contact_id, n, contact, waited))
        if contact.channel not in costs:
            costs[contact.channel] = units(contact.channel)
    decorated.sort()
    pool = _Pool(agents, min(costs.values()), now)
    by_place = pool.by_place
    heappop, heappush = heapq.heappop, heapq.heappush
    # the requirements of each list of skills: levels, and as a key
    needed: dict[tuple[str, ...], tuple[dict[str, int], tuple[tuple[str, int], ...]]] = {}
    # what an explanation shows of an agent, by (place, version, skills)
    shown = _Shown(now)
    # (mode, channel, requirements) nobody can take in this round: loads only
    # grow while choosing, so what is impossible once stays impossible
    impossible: set[tuple[Mode, str, tuple[tuple[str, int], ...]]] = set()
    pairs: list[Pair] = []
    for _, _, _, _, contact, waited in decorated:
        if most is not None and len(pairs) >= most:
            break
        policy = policies.get(contact.queue) or plain
        skills = contact.skills
        need = needed.get(skills)
        if need is None:
            levels = required(skills)
            need = needed[skills] = (levels, tuple(sorted(levels.items())))
        needs, key_needs = need
        channel = contact.channel
        cost = costs[channel]
        passed_over = contact.passed_over
        note: str | None = None
        if contact.preferred_agent is not None and contact.preferred_until is not None:
            preferred = _preferred(contact, pool, now)
            if preferred is not None:
                agent, why = preferred
                if agent is None:
                    continue  # waits for its preferred agent until the window ends
                if why_not(agent, contact, needs, cost) is not None:
                    continue
                pool.take(agent, channel, cost, now)
                place = _place(contact, policy, cost, waited)
                pairs.append(
                    _pair(contact, agent, cost, policy, default_timeout, now, place, why, [], [])
                )
                continue
            note = _preferred_note(contact, pool, now)
        mode = policy.mode
        key = (mode, channel, key_needs)
        if key in impossible:
            continue  # (fewer agents still for one that some passed over)
        chosen: Agent | None = None
        facts: dict[str, Any] = {}
        lower: list[dict[str, Any]] = []
        # those ranked above the chosen one (their facts and reasons are
        # read once one is chosen: they do not move until it is taken)
        above: list[tuple[Agent, int, int]] = []
        # whether an agent was left out for having passed this contact over
        blocked = False
        heap = pool.heap(mode)
        popped = []
        # the useful agents best first (an entry whose version is the
        # agent's is useful: presence does not change while choosing, and
        # free units only when the version does); why_not's checks inline
        while heap:
            entry = heappop(heap)
            agent = by_place[entry[-2]]
            version = entry[-1]
            if version != agent.version:
                continue  # stale: a newer entry exists, or it is full
            if agent.agent_id in passed_over:
                fits, blocked = False, True
            else:
                fits = agent.load + cost <= agent.capacity
            if fits:
                held = agent.skills
                for name, level in needs.items():
                    if held.get(name, 0) < level:
                        fits = False
                        break
            if fits and agent.channel_max:
                top = agent.channel_max.get(channel)
                fits = top is None or agent.by_channel.get(channel, 0) < top
            if fits:
                # (its entry is not put back: taking it makes a newer one)
                chosen = agent
                facts = shown(agent, entry[-2], version, skills, needs, note or _FIRST[mode])
                break
            popped.append(entry)
            above.append((agent, entry[-2], version))
        if chosen is not None and heap:
            # the next eligible ones, in order, read off the heap without
            # taking them out: a frontier of the heap's entries whose
            # parents were read (the smallest of them is the next)
            size = len(heap)
            frontier = [(heap[0], 0)]
            while frontier:
                entry, i = heappop(frontier)
                i = 2 * i + 1
                if i < size:
                    heappush(frontier, (heap[i], i))
                    if i + 1 < size:
                        heappush(frontier, (heap[i + 1], i + 1))
                agent = by_place[entry[-2]]
                if entry[-1] != agent.version:
                    continue  # stale
                if agent.agent_id in passed_over or agent.load + cost > agent.capacity:
                    continue
                held = agent.skills
                for name, level in needs.items():
                    if held.get(name, 0) < level:
                        break
                else:
                    top = agent.channel_max.get(channel) if agent.channel_max else None
                    if top is not None and agent.by_channel.get(channel, 0) >= top:
                        continue
                    lower.append(shown(agent, entry[-2], entry[-1], skills, needs, "ranked lower"))
                    if len(lower) >= RANKED_LOWER_SHOWN:
                        break
        # the agents read are put back
        for entry in popped:
            heappush(heap, entry)
        if chosen is None:
            if not blocked:  # what a contact nobody passed over would find
                impossible.add(key)
            continue
        passed: list[dict[str, Any]] = []
        counted: dict[str, int] = {}
        for agent, n, version in above:
            reason = why_not(agent, contact, needs, cost)
            assert reason is not None
            if len(passed) < PASSED_SHOWN:
                passed.append(shown(agent, n, version, skills, needs, reason))
            else:
                kind = reason.split(" (")[0].split(",")[0]
                counted[kind] = counted.get(kind, 0) + 1
        pool.take(chosen, channel, cost, now)
        place = _place(contact, policy, cost, waited)
        pairs.append(
            _pair(
                contact,
                chosen,
                cost,
                policy,
                default_timeout,
                now,
                place,
                note,
                passed,
                lower,
                counted=counted,
                facts=facts,
            )
        )
    return pairs


def _place(contact: Waiting, policy: Policy, cost: int, waited: float) -> dict[str, Any]:
    """The contact's place in the order, as an explanation shows it."""
    return {
        "queue": contact.queue,
        "mode": policy.mode,
        "ranking": _RANKING[policy.mode],
        "priority": contact.priority,
        "effective_priority": policy.priority(contact.priority, waited),
        "skills": list(contact.skills),
        "channel": contact.channel,
        "units": cost,
        "waited_seconds": round(waited, 1),
    }


class _Shown:
    """What an explanation shows of an agent (``Agent.facts`` and a reason,
    in its order): its state read once per version, its levels once per
    list of skills (they do not move while choosing)."""

    __slots__ = ("_levels", "_now", "_state")

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._state: dict[tuple[int, int], tuple[int, int, int, dict[str, int], float]] = {}
        self._levels: dict[tuple[int, tuple[str, ...]], dict[str, int]] = {}

    def __call__(
        self,
        agent: Agent,
        n: int,
        version: int,
        skills: tuple[str, ...],
        needs: Mapping[str, int],
        why: str,
    ) -> dict[str, Any]:
        state = self._state.get((n, version))
        if state is None:
            state = self._state[n, version] = (
                agent.load,
                agent.capacity,
                agent.free(),
                dict(agent.by_channel),
                round(agent.idle_seconds(self._now), 1),
            )
        levels = self._levels.get((n, skills))
        if levels is None:
            held = agent.skills
            levels = self._levels[n, skills] = {name: held.get(name, 0) for name in needs}
        load, capacity, free, by_channel, idle = state
        return {
            "agent": agent.agent_id,
            "skills": levels,
            "load": load,
            "capacity": capacity,
            "free": free,
            "by_channel": by_channel,
            "idle_seconds": idle,
            "why": why,
        }


def effective_priority(contact: Waiting, policies: Mapping[str, Policy], now: datetime) -> int:
    policy = policies.get(contact.queue)
    if policy is None:
        return contact.priority
    return policy.priority(contact.priority, (now - contact.received_at).total_seconds())


def _preferred(contact: Waiting, pool: _Pool, now: datetime) -> tuple[Agent | None, str] | None:
    """Inside the preferred window: the preferred agent (``None``: wait for
    it) and a note; ``None`` when the queue decides (no window, the window
    ended, the agent passed it over, or is away, offline or unknown)."""
    name = contact.preferred_agent
    if name is None or contact.preferred_until is None or now >= contact.preferred_until:
        return None
    if name in contact.passed_over:
        return None
    agent = pool.agents.get(name)
    if agent is None or agent.presence not in WORTH_WAITING:
        return None
    until = contact.preferred_until.isoformat()
    if agent.presence != "available":
        return None, f"waiting for preferred agent {name} until {until}"
    return agent, f"preferred agent {name} (offered only to it until {until})"


def _preferred_note(contact: Waiting, pool: _Pool, now: datetime) -> str:
    name = contact.preferred_agent
    assert name is not None and contact.preferred_until is not None
    if now >= contact.preferred_until:
        return f"preferred agent {name} not free within the wait; offered to the queue"
    if name in contact.passed_over:
        return f"preferred agent {name} passed it over; offered to the queue"
    agent = pool.agents.get(name)
    if agent is None:
        return f"preferred agent {name} is unknown or away; offered to the queue at once"
    return f"preferred agent {name} is {agent.presence}; offered to the queue at once"


def _pair(
    contact: Waiting,
    agent: Agent,
    cost: int,
    policy: Policy,
    default_timeout: float,
    now: datetime,
    place: dict[str, Any],
    note: str | None,
    passed: list[dict[str, Any]],
    lower: list[dict[str, Any]],
    *,
    counted: Mapping[str, int] | None = None,
    facts: dict[str, Any] | None = None,
) -> Pair:
    if facts is None:  # (with its reason)
        facts = {**agent.facts(required(contact.skills), now), "why": note or _FIRST[policy.mode]}
    explanation = {
        "contact": place,
        "preferred": note,
        "chosen": facts,
        "passed_over": passed,
        "passed_over_more": dict(counted or {}),
        "ranked_lower": lower,
    }
    timeout = policy.offer_timeout if policy.offer_timeout is not None else default_timeout
    pair = _new(Pair)  # Pair(contact, agent.agent_id, cost, timeout, explanation), faster
    f = _PAIR_FIELDS
    f[0](pair, contact)
    f[1](pair, agent.agent_id)
    f[2](pair, cost)
    f[3](pair, timeout)
    f[4](pair, explanation)
    return pair
