"""The choice of agents, pure (``router.assignment``): order, modes, skills
with levels, capacity and channel maximums, passed-over agents, the
preferred agent, aging, and the explanation; properties over generated
agents and contacts (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router.assignment import (
    Agent,
    Aging,
    Policy,
    Waiting,
    choose,
    parse_skill,
    required,
    why_not,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
UNITS = {"voice": 100, "chat": 34, "social": 25, "email": 20}


def agent(name: str, **kw: Any) -> Agent:
    base: dict[str, Any] = {
        "skills": {},
        "capacity": 100,
        "load": 0,
        "presence": "available",
        "idle_since": NOW - timedelta(minutes=5),
    }
    return Agent(agent_id=name, **{**base, **kw})


def contact(n: int = 0, **kw: Any) -> Waiting:
    base: dict[str, Any] = {
        "queue": "q",
        "channel": "chat",
        "priority": 50,
        "skills": (),
        "received_at": NOW - timedelta(seconds=60 - n),
    }
    return Waiting(contact_id=uuid.UUID(int=n + 1), **{**base, **kw})


def pick(
    waiting: list[Waiting], agents: list[Agent], policy: Policy | None = None
) -> list[tuple[int, str]]:
    pairs = choose(
        waiting,
        agents,
        policies={"q": policy or Policy()},
        units=lambda c: UNITS[c],
        now=NOW,
        default_timeout=120,
    )
    return [(p.contact.contact_id.int - 1, p.agent_id) for p in pairs]


def test_skill_levels_as_written() -> None:
    assert parse_skill("billing") == ("billing", 1)
    assert parse_skill("billing:3") == ("billing", 3)
    assert required(["billing", "billing:3", "de"]) == {"billing": 3, "de": 1}


def test_most_available_takes_the_most_free_units() -> None:
    agents = [agent("a", load=34), agent("b"), agent("c", load=68)]
    assert pick([contact()], agents) == [(0, "b")]


def test_longest_idle_and_round_robin() -> None:
    agents = [
        agent("a", idle_since=NOW - timedelta(minutes=1), last_offer_at=NOW - timedelta(hours=1)),
        agent("b", idle_since=NOW - timedelta(minutes=9), last_offer_at=NOW - timedelta(seconds=1)),
    ]
    assert pick([contact()], agents, Policy(mode="longest_idle")) == [(0, "b")]
    agents = [
        agent("a", idle_since=NOW - timedelta(minutes=1), last_offer_at=NOW - timedelta(hours=1)),
        agent("b", idle_since=NOW - timedelta(minutes=9), last_offer_at=NOW - timedelta(seconds=1)),
    ]
    assert pick([contact()], agents, Policy(mode="round_robin")) == [(0, "a")]
    # round robin goes round: three contacts, three agents, one each
    three = [agent(n, last_offer_at=None) for n in "xyz"]
    got = pick([contact(i) for i in range(3)], three, Policy(mode="round_robin"))
    assert sorted(a for _, a in got) == ["x", "y", "z"]


def test_priority_then_longest_waiting() -> None:
    waiting = [contact(0, priority=10), contact(1, priority=90), contact(2, priority=90)]
    # one agent with room for one chat: the highest priority, longest waiting one
    assert pick(waiting, [agent("a", capacity=34)]) == [(1, "a")]


def test_aging_lets_a_long_wait_overtake() -> None:
    old = contact(0, priority=10, received_at=NOW - timedelta(minutes=10))
    new = contact(1, priority=15, received_at=NOW - timedelta(seconds=5))
    one = [agent("a", capacity=34)]
    assert pick([old, new], one) == [(1, "a")]
    aging = Policy(aging=Aging(every_seconds=60, by=1, max=100))
    assert pick([old, new], [agent("a", capacity=34)], aging) == [(0, "a")]
    assert Aging(60, 5, 30).priority(10, 3600) == 30  # capped at max
    assert Aging(60, 5, 30).priority(50, 3600) == 50  # never lowers


def test_skills_at_the_level_or_above() -> None:
    needs = contact(skills=("billing:3", "de"))
    agents = [
        agent("low", skills={"billing": 2, "de": 5}),
        agent("nolang", skills={"billing": 5}),
        agent("ok", skills={"billing": 3, "de": 1}, load=50),
    ]
    assert pick([needs], agents) == [(0, "ok")]
    assert why_not(agents[0], needs, required(needs.skills), 34) == (
        "lacks skill billing:3 (has level 2)"
    )
    assert why_not(agents[1], needs, required(needs.skills), 34) == "lacks skill de"


def test_capacity_channel_maximum_presence_and_passed_over() -> None:
    agents = [
        agent("full", load=80),
        agent("chatty", channel_max={"chat": 1}, by_channel={"chat": 1}, load=34),
        agent("away", presence="away"),
        agent("no", load=0),
    ]
    c = contact(passed_over=frozenset({"no"}))
    assert pick([c], agents) == []
    reasons = {a.agent_id: why_not(a, c, {}, 34) for a in agents}
    assert reasons == {
        "full": "needs 34 units, 20 free",
        "chatty": "at its chat maximum (1 of 1)",
        "away": "away, not available",
        "no": "rejected this contact or let its offer expire",
    }


def test_voice_takes_a_whole_agent() -> None:
    waiting = [contact(0, channel="voice"), contact(1, channel="chat")]
    got = pick(waiting, [agent("a"), agent("b", load=34)])
    assert got == [(0, "a"), (1, "b")]


def test_preferred_agent_first_within_its_wait() -> None:
    until = NOW + timedelta(seconds=30)
    c = contact(preferred_agent="pat", preferred_until=until)
    agents = [agent("pat", load=50), agent("free")]
    assert pick([c], agents) == [(0, "pat")]
    # busy or full: it waits for it
    assert pick([c], [agent("pat", presence="busy"), agent("free")]) == []
    assert pick([c], [agent("pat", load=90), agent("free")]) == []
    # offline, unknown, passed over, or the wait is over: the queue
    assert pick([c], [agent("pat", presence="offline"), agent("free")]) == [(0, "free")]
    assert pick([c], [agent("free")]) == [(0, "free")]
    over = contact(preferred_agent="pat", preferred_until=until, passed_over=frozenset({"pat"}))
    assert pick([over], [agent("pat"), agent("free")]) == [(0, "free")]
    ended = contact(preferred_agent="pat", preferred_until=NOW - timedelta(seconds=1))
    assert pick([ended], [agent("pat", load=30), agent("free")]) == [(0, "free")]


def test_the_explanation_says_why_this_agent() -> None:
    c = contact(skills=("billing:2",))
    agents = [
        agent("top", skills={"billing": 1}),
        agent("mid", skills={"billing": 2}, load=20),
        agent("next", skills={"billing": 4}, load=40),
        agent("last", skills={"billing": 4}, load=60),
    ]
    [pair] = choose(
        [c], agents, policies={"q": Policy()}, units=UNITS.__getitem__, now=NOW,
        default_timeout=120,
    )  # fmt: skip
    e = pair.explanation
    assert pair.agent_id == "mid" and pair.timeout == 120
    assert e["chosen"]["agent"] == "mid" and e["chosen"]["free"] == 80
    assert e["chosen"]["why"] == "first eligible by most free units, then longest idle"
    assert [(p["agent"], p["why"]) for p in e["passed_over"]] == [
        ("top", "lacks skill billing:2 (has level 1)")
    ]
    assert [p["agent"] for p in e["ranked_lower"]] == ["next", "last"]
    assert e["contact"]["queue"] == "q" and e["contact"]["units"] == 34


# -- properties -----------------------------------------------------------------------

SKILLS = ("a", "b", "c")


@st.composite
def agents_(draw: st.DrawFn) -> list[Agent]:
    out = []
    channels = st.sets(st.sampled_from(list(UNITS)))
    seconds = st.integers(0, 600)
    for n in range(draw(st.integers(0, 8))):
        by_channel = {ch: draw(st.integers(0, 2)) for ch in draw(channels)}
        last = draw(st.none() | st.just(NOW - timedelta(seconds=draw(seconds))))
        out.append(
            agent(
                f"g{n}",
                skills={s: draw(st.integers(1, 5)) for s in draw(st.sets(st.sampled_from(SKILLS)))},
                capacity=draw(st.sampled_from([0, 34, 50, 100, 200])),
                load=draw(st.sampled_from([0, 20, 34, 68, 100])),
                presence=draw(st.sampled_from(["available", "available", "busy", "offline"])),
                by_channel=by_channel,
                channel_max={ch: draw(st.integers(0, 3)) for ch in draw(channels)},
                idle_since=NOW - timedelta(seconds=draw(seconds)),
                last_offer_at=last,
            )
        )
    return out


@st.composite
def contacts_(draw: st.DrawFn, agent_ids: int = 8) -> list[Waiting]:
    out = []
    for n in range(draw(st.integers(0, 15))):
        skills = tuple(
            f"{s}:{draw(st.integers(1, 5))}" if draw(st.booleans()) else s
            for s in draw(st.sets(st.sampled_from(SKILLS), max_size=2))
        )
        out.append(
            contact(
                n,
                queue=draw(st.sampled_from(["q", "r"])),
                channel=draw(st.sampled_from(list(UNITS))),
                priority=draw(st.integers(0, 100)),
                skills=skills,
                received_at=NOW - timedelta(seconds=draw(st.integers(0, 900))),
                passed_over=frozenset(
                    f"g{i}" for i in draw(st.sets(st.integers(0, agent_ids - 1), max_size=3))
                ),
            )
        )
    return out


MODES = st.sampled_from(["most_available", "longest_idle", "round_robin"])


@settings(max_examples=200, deadline=None)
@given(agents_(), contacts_(), MODES, MODES)
def test_choice_never_breaks_a_limit_and_leaves_nothing_it_could_give(
    agents: list[Agent], waiting: list[Waiting], mode_q: Any, mode_r: Any
) -> None:
    start = {a.agent_id: (a.load, dict(a.by_channel)) for a in agents}
    policies = {"q": Policy(mode=mode_q), "r": Policy(mode=mode_r, aging=Aging(60, 2, 100))}
    pairs = choose(
        waiting, agents, policies=policies, units=UNITS.__getitem__, now=NOW, default_timeout=5
    )
    by_id = {a.agent_id: a for a in agents}
    assert len({p.contact.contact_id for p in pairs}) == len(pairs)  # each contact once
    load = {k: v[0] for k, v in start.items()}
    counts = {k: dict(v[1]) for k, v in start.items()}
    for p in pairs:
        a = by_id[p.agent_id]
        assert a.presence == "available" and p.agent_id not in p.contact.passed_over
        for name, level in required(p.contact.skills).items():
            assert a.skills.get(name, 0) >= level
        load[p.agent_id] += p.units
        counts[p.agent_id][p.contact.channel] = counts[p.agent_id].get(p.contact.channel, 0) + 1
        assert load[p.agent_id] <= a.capacity
        most = a.channel_max.get(p.contact.channel)
        assert most is None or counts[p.agent_id][p.contact.channel] <= most
    for a in agents:  # the agents' loads moved by exactly what was handed out
        assert a.load == load[a.agent_id]
    # a contact left without an agent had none it could go to, even now
    paired = {p.contact.contact_id for p in pairs}
    for c in waiting:
        if c.contact_id not in paired:
            needs = required(c.skills)
            assert all(why_not(a, c, needs, UNITS[c.channel]) for a in agents)
