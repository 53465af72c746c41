"""Actions: what a matching rule (or the defaults) decides, compiled once.

A :class:`Route` turns the routing input plus what earlier ``continue`` rules
added (tags, skills, a priority boost) into a :class:`~router.models.Decision`.
Values a rule leaves unset come from the defaults of the contact's channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.models import CHANNELS, Decision, OverflowStep, trusted
from router.rules.fields import Catalog, Getter, Input, Kind
from router.rules.schema import AssignSpec, DefaultsSpec, FromField, OverflowSpec, RouteSpec

Path = tuple[str | int, ...]
Report = Callable[[Path, str, bool], None]

PRIORITY_MIN, PRIORITY_MAX = 0, 100
#: what a ``continue: true`` rule may do
CONTINUE_KEYS = frozenset({"tags", "skills", "priority_boost"})


@dataclass(frozen=True, slots=True)
class Queue:
    """A declared queue."""

    name: str
    description: str | None = None
    skills: tuple[str, ...] = ()
    #: omniroute assigns its contacts to agents (``None``: the platform does)
    assign: AssignSpec | None = None


@dataclass(frozen=True, slots=True)
class ChannelDefault:
    """The defaults that apply to one channel."""

    queue: str
    priority: int
    sla_seconds: int | None
    skills: tuple[str, ...]


def _clamp(priority: int) -> int:
    return PRIORITY_MIN if priority < PRIORITY_MIN else min(priority, PRIORITY_MAX)


def unique(*parts: Sequence[str]) -> tuple[str, ...]:
    """The items of ``parts`` in order, each once."""
    filled = [part for part in parts if part]
    if len(filled) == 1:  # most decisions: the skills or tags of one place
        only = filled[0]
        if type(only) is tuple and len(set(only)) == len(only):
            return only
        return tuple(dict.fromkeys(only))
    return tuple(dict.fromkeys(item for part in filled for item in part))


@dataclass(frozen=True, slots=True)
class Overflow:
    """An overflow step; ``boost`` is added to the decision's priority when set."""

    after_seconds: int
    queue: str | None
    drop_skills: tuple[str, ...]
    priority: int | None
    boost: int | None

    def step(self, priority: int) -> OverflowStep:
        raised = self.priority if self.boost is None else _clamp(priority + self.boost)
        # compiled values, of the fields' types (built for every decision whose
        # steps depend on its priority)
        return trusted(
            OverflowStep,
            {
                "after_seconds": self.after_seconds,
                "queue": self.queue,
                "drop_skills": self.drop_skills,
                "priority": raised,
            },
        )


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled ``route`` block. An empty Route means "the defaults"."""

    queue: str | None = None
    queue_from: Getter | None = None
    queue_fallback: str | None = None
    priority: int | None = None
    boost: int = 0
    skills: tuple[str, ...] = ()
    sla_seconds: int | None = None
    tags: tuple[str, ...] = ()
    agent: str | None = None
    agent_from: Getter | None = None
    overflow: tuple[Overflow, ...] = ()
    #: the overflow steps when none depends on the priority (built once)
    static_overflow: tuple[OverflowStep, ...] | None = field(default=())

    def decide(
        self,
        i: Input,
        base: ChannelDefault,
        queues: Mapping[str, Queue],
        *,
        boost: int,
        tags: Sequence[str],
        skills: Sequence[str],
        rule: str | None,
        ruleset: str,
    ) -> Decision:
        queue = self.queue
        if self.queue_from is not None:
            taken = self.queue_from(i)
            queue = taken if isinstance(taken, str) and taken in queues else self.queue_fallback
        if queue is None:
            queue = base.queue
        priority = _clamp(
            (base.priority if self.priority is None else self.priority) + self.boost + boost
        )
        agent = self.agent
        if self.agent_from is not None:
            taken = self.agent_from(i)
            if isinstance(taken, str | int) and not isinstance(taken, bool) and str(taken):
                agent = str(taken)
        overflow = self.static_overflow
        if overflow is None:
            overflow = tuple(step.step(priority) for step in self.overflow)
        # every value is of the field's type already (compiled, or checked above)
        return trusted(
            Decision,
            {
                "queue": queue,
                "priority": priority,
                "skills": unique(queues[queue].skills, self.skills or base.skills, skills),
                "sla_seconds": base.sla_seconds if self.sla_seconds is None else self.sla_seconds,
                "tags": unique(tags, self.tags) if tags else self.tags,
                "preferred_agent": agent,
                "overflow": overflow,
                "rule": rule,
                "ruleset": ruleset,
            },
        )


class ActionCompiler:
    """Compiles ``route`` blocks and defaults against the declared queues."""

    def __init__(self, catalog: Catalog, queues: Mapping[str, Queue], report: Report) -> None:
        self.catalog = catalog
        self.queues = queues
        self.report = report

    def _queue(self, name: str, path: Path) -> bool:
        if name in self.queues:
            return True
        known = ", ".join(sorted(self.queues)) or "none declared"
        self.report(
            path, f"queue {name!r} is not declared under queues: (declared: {known})", False
        )
        return False

    def _from(self, spec: FromField, path: Path) -> Getter | None:
        found = self.catalog.lookup(spec.from_)
        if found is None:
            names = ", ".join(self.catalog.names())
            self.report(
                (*path, "from"), f"unknown field {spec.from_!r} (valid fields: {names})", False
            )
            return None
        if found.kind not in (Kind.TEXT, Kind.ANY):
            self.report((*path, "from"), f"{spec.from_} is a {found.kind.value}, not text", False)
            return None
        return found.getter

    def compile_route(self, spec: RouteSpec, path: Path, *, cont: bool) -> Route | None:
        ok = True
        if cont:
            for key in sorted(spec.model_fields_set - CONTINUE_KEYS):
                self.report(
                    (*path, key),
                    f"a rule with continue: true only adds tags, skills and priority_boost;"
                    f" {key!r} belongs in a rule that decides",
                    True,
                )
                ok = False
        queue = queue_fallback = None
        queue_from: Getter | None = None
        if isinstance(spec.queue, str):
            ok &= self._queue(spec.queue, (*path, "queue"))
            queue = spec.queue
        elif isinstance(spec.queue, FromField):
            queue_from = self._from(spec.queue, (*path, "queue"))
            ok &= queue_from is not None
            queue_fallback = spec.queue.fallback
            if queue_fallback is not None:
                ok &= self._queue(queue_fallback, (*path, "queue", "fallback"))
        agent: str | None = None
        agent_from: Getter | None = None
        if isinstance(spec.preferred_agent, str):
            agent = spec.preferred_agent
        elif isinstance(spec.preferred_agent, FromField):
            agent_from = self._from(spec.preferred_agent, (*path, "preferred_agent"))
            ok &= agent_from is not None
            agent = spec.preferred_agent.fallback
        overflow = self._overflow(spec.overflow, (*path, "overflow"))
        if overflow is None or not ok:
            return None
        static = (
            tuple(step.step(0) for step in overflow)
            if all(step.boost is None for step in overflow)
            else None
        )
        return Route(
            queue=queue,
            queue_from=queue_from,
            queue_fallback=queue_fallback,
            priority=spec.priority,
            boost=spec.priority_boost or 0,
            skills=unique(spec.skills),
            sla_seconds=spec.sla,
            tags=unique(spec.tags),
            agent=agent,
            agent_from=agent_from,
            overflow=overflow,
            static_overflow=static,
        )

    def _overflow(self, specs: Sequence[OverflowSpec], path: Path) -> tuple[Overflow, ...] | None:
        steps: list[Overflow] = []
        ok = True
        last = -1
        for n, spec in enumerate(specs):
            if spec.queue is not None:
                ok &= self._queue(spec.queue, (*path, n, "queue"))
            if spec.priority is not None and spec.priority_boost is not None:
                self.report((*path, n), "give priority or priority_boost, not both", False)
                ok = False
            if spec.after <= last:
                self.report((*path, n, "after"), "overflow steps must come in time order", False)
                ok = False
            last = spec.after
            steps.append(
                Overflow(
                    spec.after,
                    spec.queue,
                    tuple(spec.drop_skills),
                    spec.priority,
                    spec.priority_boost,
                )
            )
        return tuple(steps) if ok else None

    def compile_defaults(self, spec: DefaultsSpec, path: Path) -> dict[str, ChannelDefault] | None:
        """The defaults per channel; every channel must end up with a declared queue."""
        result: dict[str, ChannelDefault] = {}
        ok = True
        if spec.queue is not None:
            ok &= self._queue(spec.queue, (*path, "queue"))
        for channel in CHANNELS:
            own = getattr(spec, channel)
            queue = own.queue if own is not None and own.queue is not None else spec.queue
            if own is not None and own.queue is not None:
                ok &= self._queue(own.queue, (*path, channel, "queue"))
            if queue is None:
                self.report(
                    path,
                    f"no default queue for {channel}: set defaults.queue or {channel}.queue",
                    False,
                )
                ok = False
                continue

            def pick(name: str, own: Any = own) -> Any:
                value = None if own is None else getattr(own, name)
                return getattr(spec, name) if value is None else value

            result[channel] = ChannelDefault(
                queue=queue,
                priority=pick("priority"),
                sla_seconds=pick("sla"),
                skills=tuple(pick("skills")),
            )
        return result if ok else None
