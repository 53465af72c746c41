"""``router.assignment.choose`` against a straightforward reference: every
contact in order, the useful agents sorted afresh by ``Agent.rank`` (their
datetimes and ids, no heap, no cache), the explanation built as documented.
Generated agents and contacts with many ties (equal loads, equal times,
times in another offset), every mode, preferred agents, channel maximums,
passed-over agents and more agents passed over than an explanation names:
the same pairs, byte for byte the same explanations, the same loads after."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.assignment import (
    PASSED_SHOWN,
    RANKED_LOWER_SHOWN,
    WORTH_WAITING,
    Agent,
    Aging,
    Pair,
    Policy,
    Waiting,
    choose,
    effective_priority,
    required,
    waiting_from,
    why_not,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
UNITS = {"voice": 100, "chat": 34, "social": 25, "email": 20}
RANKING = {
    "most_available": "most free units, then longest idle",
    "longest_idle": "longest without work",
    "round_robin": "longest since its last offer",
}


def reference(
    waiting: Sequence[Waiting],
    agents: Sequence[Agent],
    *,
    policies: Mapping[str, Policy],
    units: Callable[[str], int],
    now: datetime,
    default_timeout: float,
    most: int | None = None,
) -> list[Pair]:
    if not waiting or not agents:
        return []
    order = sorted(
        waiting,
        key=lambda c: (-effective_priority(c, policies, now), c.received_at, c.contact_id),
    )
    smallest = min(units(c.channel) for c in waiting)
    crowd = {a.agent_id: a for a in agents}
    pairs: list[Pair] = []

    def take(agent: Agent, channel: str, cost: int) -> None:
        agent.load += cost
        agent.by_channel[channel] = agent.by_channel.get(channel, 0) + 1
        agent.last_offer_at = now

    def pair(
        contact: Waiting,
        agent: Agent,
        facts: dict[str, Any],
        policy: Policy,
        place: dict[str, Any],
        note: str | None,
        passed: list[dict[str, Any]],
        counted: dict[str, int],
        lower: list[dict[str, Any]],
    ) -> Pair:
        explanation = {
            "contact": place,
            "preferred": note,
            "chosen": {**facts, "why": note or f"first eligible by {RANKING[policy.mode]}"},
            "passed_over": passed,
            "passed_over_more": counted,
            "ranked_lower": lower,
        }
        timeout = default_timeout if policy.offer_timeout is None else policy.offer_timeout
        return Pair(contact, agent.agent_id, units(contact.channel), timeout, explanation)

    for contact in order:
        if most is not None and len(pairs) >= most:
            break
        policy = policies.get(contact.queue) or Policy()
        needs = required(contact.skills)
        cost = units(contact.channel)
        waited = (now - contact.received_at).total_seconds()
        place = {
            "queue": contact.queue,
            "mode": policy.mode,
            "ranking": RANKING[policy.mode],
            "priority": contact.priority,
            "effective_priority": policy.priority(contact.priority, waited),
            "skills": list(contact.skills),
            "channel": contact.channel,
            "units": cost,
            "waited_seconds": round(waited, 1),
        }
        name, until = contact.preferred_agent, contact.preferred_until
        note = None
        if name is not None and until is not None:
            them = crowd.get(name)
            if (
                now < until
                and name not in contact.passed_over
                and them is not None
                and them.presence in WORTH_WAITING
            ):
                if them.presence != "available" or why_not(them, contact, needs, cost):
                    continue
                why = f"preferred agent {name} (offered only to it until {until.isoformat()})"
                take(them, contact.channel, cost)  # (its facts as it is then)
                facts = them.facts(needs, now)
                pairs.append(pair(contact, them, facts, policy, place, why, [], {}, []))
                continue
            if now >= until:
                note = f"preferred agent {name} not free within the wait; offered to the queue"
            elif name in contact.passed_over:
                note = f"preferred agent {name} passed it over; offered to the queue"
            elif them is None:
                note = f"preferred agent {name} is unknown or away; offered to the queue at once"
            else:
                note = f"preferred agent {name} is {them.presence}; offered to the queue at once"
        ranked = sorted(
            (a for a in crowd.values() if a.presence == "available" and a.free() >= smallest),
            key=lambda a: a.rank(policy.mode),  # noqa: B023
        )
        chosen: Agent | None = None
        passed: list[dict[str, Any]] = []
        counted: dict[str, int] = {}
        lower: list[dict[str, Any]] = []
        for agent in ranked:
            reason = why_not(agent, contact, needs, cost)
            if chosen is None:
                if reason is None:
                    chosen, facts = agent, agent.facts(needs, now)
                elif len(passed) < PASSED_SHOWN:
                    passed.append({**agent.facts(needs, now), "why": reason})
                else:
                    kind = reason.split(" (")[0].split(",")[0]
                    counted[kind] = counted.get(kind, 0) + 1
            elif reason is None:
                lower.append({**agent.facts(needs, now), "why": "ranked lower"})
                if len(lower) >= RANKED_LOWER_SHOWN:
                    break
        if chosen is None:
            continue
        take(chosen, contact.channel, cost)
        pairs.append(pair(contact, chosen, facts, policy, place, note, passed, counted, lower))
    return pairs


# -- generated rounds -------------------------------------------------------------------

SKILLS = ("a", "b", "c")
CHANNELS = st.sets(st.sampled_from(list(UNITS)))
IDS = st.integers(0, 30).map(lambda i: f"g{i:02d}")
EAST = timezone(timedelta(hours=2))
#: few distinct times: equal times are common, some written in another offset
TIMES = st.sampled_from([NOW - timedelta(seconds=s) for s in (0, 1, 30, 300)]) | st.sampled_from(
    [(NOW - timedelta(seconds=s)).astimezone(EAST) for s in (1, 300, 301)]
)


@st.composite
def agents_(draw: st.DrawFn) -> list[Agent]:
    out = []
    for n in range(draw(st.integers(0, 24))):
        out.append(
            Agent(
                agent_id=f"g{draw(st.integers(0, 30)):02d}" if n % 2 else f"g{n:02d}",
                skills={s: draw(st.integers(1, 5)) for s in draw(st.sets(st.sampled_from(SKILLS)))},
                capacity=draw(st.sampled_from([0, 34, 100, 100, 200])),
                load=draw(st.sampled_from([0, 0, 20, 34, 34, 68])),
                presence=draw(st.sampled_from(["available"] * 4 + ["busy", "offline"])),
                idle_since=draw(TIMES),
                last_offer_at=draw(st.none() | TIMES),
                by_channel={ch: draw(st.integers(0, 2)) for ch in draw(CHANNELS)},
                channel_max={ch: draw(st.integers(0, 3)) for ch in draw(CHANNELS)},
            )
        )  # fmt: skip
    return out


@st.composite
def contacts_(draw: st.DrawFn) -> list[Waiting]:
    out = []
    for n in range(draw(st.integers(0, 20))):
        skills = tuple(
            f"{s}:{draw(st.integers(1, 5))}" if draw(st.booleans()) else s
            for s in draw(st.lists(st.sampled_from(SKILLS), max_size=2))
        )
        preferred = draw(st.none() | IDS)
        until = draw(
            st.sampled_from([None, NOW - timedelta(seconds=1), NOW + timedelta(seconds=9)])
        )
        out.append(
            Waiting(
                contact_id=uuid.UUID(int=draw(st.integers(1, 12)) if n % 3 == 0 else 100 + n),
                queue=draw(st.sampled_from(["q", "r", "s", "t"])),
                channel=draw(st.sampled_from(list(UNITS))),
                priority=draw(st.sampled_from([10, 50, 50, 90])),
                skills=skills,
                received_at=draw(TIMES),
                preferred_agent=preferred,
                preferred_until=until,
                passed_over=frozenset(draw(st.sets(IDS, max_size=14))),
            )
        )  # fmt: skip
    return out


MODES = st.sampled_from(["most_available", "longest_idle", "round_robin"])


@settings(max_examples=400, deadline=None)
@given(agents_(), contacts_(), MODES, MODES, MODES, st.none() | st.integers(1, 6))
def test_choose_is_the_reference(
    agents: list[Agent], waiting: list[Waiting], q: Any, r: Any, s: Any, most: int | None
) -> None:
    policies = {
        "q": Policy(mode=q),
        "r": Policy(mode=r, aging=Aging(60, 2, 100), offer_timeout=30),
        "s": Policy(mode=s),
    }  # (t: no policy)
    mine, theirs = copy.deepcopy(agents), copy.deepcopy(agents)
    kw: dict[str, Any] = {
        "policies": policies,
        "units": UNITS.__getitem__,
        "now": NOW,
        "default_timeout": 5,
        "most": most,
    }
    got = choose(waiting, mine, **kw)
    want = reference(waiting, theirs, **kw)
    assert [(p.contact, p.agent_id, p.units, p.timeout) for p in got] == [
        (p.contact, p.agent_id, p.units, p.timeout) for p in want
    ]
    assert [orjson.dumps(p.explanation) for p in got] == [orjson.dumps(p.explanation) for p in want]
    assert [(a.load, a.by_channel, a.last_offer_at) for a in mine] == [
        (a.load, a.by_channel, a.last_offer_at) for a in theirs
    ]


def test_a_hundred_agents_tied_but_for_their_ids() -> None:
    """Equal loads and times: the ids decide, in string order (g10 before g9)."""
    agents = [
        Agent(f"g{n}", {}, 1000, 0, "available", NOW - timedelta(minutes=1)) for n in range(100)
    ]
    waiting = [
        Waiting(uuid.UUID(int=n + 1), "q", "email", 50, (), NOW - timedelta(seconds=5))
        for n in range(30)
    ]
    kw: dict[str, Any] = {
        "policies": {"q": Policy(mode="round_robin")},
        "units": UNITS.__getitem__,
        "now": NOW,
        "default_timeout": 5,
    }
    got = choose(waiting, copy.deepcopy(agents), **kw)
    want = reference(waiting, copy.deepcopy(agents), **kw)
    assert [p.agent_id for p in got][:3] == ["g0", "g1", "g10"]
    assert [orjson.dumps(p.explanation) for p in got] == [orjson.dumps(p.explanation) for p in want]


def test_waiting_from_a_row_is_the_constructors() -> None:
    until = NOW + timedelta(seconds=9)
    for values in (
        (uuid.UUID(int=1), "q", "chat", 50, ["a:2", "b"], NOW, "g01", until, ["g02", "g03"]),
        (uuid.UUID(int=2), "r", "email", 10, [], NOW, None, None, []),
    ):
        made = waiting_from(values)
        plain = Waiting(
            *values[:4], tuple(values[4]), *values[5:8], passed_over=frozenset(values[8])
        )
        assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
        assert type(made.skills) is tuple and type(made.passed_over) is frozenset
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.queue = "x"  # type: ignore[misc]
