"""From parsed rules files to one compiled :class:`Ruleset`, collecting every
problem on the way instead of stopping at the first.

Each section (a queue, a calendar, the defaults, a rule, a test) is checked on
its own, so a mistake in one rule does not hide the mistakes in the next.
Several files make one ruleset: queues, calendars and tests from all of them;
``defaults`` in exactly one; rules in file-name order, then file order.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Protocol, TypeVar, Union

from pydantic import BaseModel, ValidationError

from router.rules.actions import ActionCompiler, ChannelDefault, Queue
from router.rules.calendars import Calendar, compile_calendar, zone
from router.rules.conditions import Check, ConditionCompiler
from router.rules.engine import Rule, Ruleset, rollout_for
from router.rules.fields import Catalog
from router.rules.schema import (
    CalendarSpec,
    CaseSpec,
    DefaultsSpec,
    QueueSpec,
    RouteSpec,
    RulesFile,
    RuleSpec,
)
from router.rules.source import Path, Problems, Source
from router.rules.testing import Case, compile_case

M = TypeVar("M", bound=BaseModel)


class Reporter(Protocol):
    def __call__(self, path: Path, message: str, at_key: bool = False) -> None: ...


def _leaves(annotation: Any) -> list[Any]:
    """The member types of an annotation, through Annotated, unions and Optional."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _leaves(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in _leaves(arg)]
    return [annotation]


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` below ``model``, if any."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for leaf in (leaf for c in current for leaf in _leaves(c)):
            origin = typing.get_origin(leaf)
            if isinstance(leaf, type) and issubclass(leaf, BaseModel) and isinstance(part, str):
                for name, info in leaf.model_fields.items():
                    if part in (name, info.alias):
                        following.append(info.annotation)
            elif origin is list and isinstance(part, int):
                following.append(typing.get_args(leaf)[0])
            elif origin is dict and isinstance(part, str):
                following.append(typing.get_args(leaf)[1])
        current = following
    for leaf in (leaf for c in current for leaf in _leaves(c)):
        if isinstance(leaf, type) and issubclass(leaf, BaseModel):
            return leaf
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


class _Compiler:
    def __init__(self, sources: Sequence[Source], problems: Problems) -> None:
        self.sources = sources
        self.problems = problems

    # -- validation of the file format ------------------------------------------

    def validate(self, model: type[M], data: Any, source: Source, path: Path) -> M | None:
        """``data`` as ``model``, or None after reporting every problem in it."""
        try:
            return model.model_validate({} if data is None else data)
        except ValidationError as exc:
            for error in exc.errors():
                self._pydantic_problem(model, error, source, path)
            return None

    def _pydantic_problem(
        self, model: type[BaseModel], error: Any, source: Source, path: Path
    ) -> None:
        raw_loc = tuple(error["loc"])
        tagged = any(isinstance(p, str) and p.startswith("<") for p in raw_loc)
        loc = tuple(p for p in raw_loc if not (isinstance(p, str) and p.startswith("<")))
        kind, at_key = error["type"], False
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = _keys_of(owner) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.75)
            did = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown key {loc[-1]!r}{did} (allowed: {', '.join(allowed)})"
            at_key = True
        elif kind == "missing":
            message = f"missing {loc[-1]!r}"
            loc = loc[:-1]
        elif tagged and kind.endswith("_type"):
            other = "a list" if kind == "list_type" else "a mapping"
            message = f"{loc[-1]}: expected text or {other}" if loc else f"expected text or {other}"
        else:
            text = str(error["msg"]).removeprefix("Value error, ")
            message = f"{loc[-1]}: {text}" if loc and isinstance(loc[-1], str) else text
        self.problems.add(source, (*path, *loc), message, at_key=at_key)

    def section(self, source: Source, key: str, want: type) -> Any:
        value = source.data.get(key)
        if value is None:
            return want()
        if not isinstance(value, want):
            shape = "a mapping" if want is dict else "a list"
            self.problems.add(source, (key,), f"{key}: expected {shape}")
            return want()
        return value

    # -- the whole ruleset ---------------------------------------------------------

    def compile(self, version: str, sources_text: dict[str, str]) -> Ruleset | None:
        queue_specs: dict[str, tuple[Source, QueueSpec]] = {}
        calendar_specs: dict[str, tuple[Source, CalendarSpec]] = {}
        defaults: tuple[Source, DefaultsSpec] | None = None
        rules: list[tuple[Source, int, RuleSpec | None]] = []
        cases: list[tuple[Source, int, CaseSpec]] = []
        allowed = _keys_of(RulesFile)
        for source in self.sources:
            if not isinstance(source.data, dict):
                self.problems.add(
                    source, (), f"a rules file is a mapping with keys {', '.join(allowed)}"
                )
                continue
            for key in source.data:
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
                    did = f"; did you mean {close[0]!r}?" if close else ""
                    self.problems.add(
                        source,
                        (key,),
                        f"unknown key {key!r}{did} (allowed: {', '.join(allowed)})",
                        at_key=True,
                    )
            for name, data in self.section(source, "queues", dict).items():
                spec = self.validate(QueueSpec, data, source, ("queues", name))
                if self._unique(queue_specs, name, source, ("queues", name), "queue"):
                    # an invalid queue is still declared: no follow-on errors
                    queue_specs[name] = (source, spec or QueueSpec())
            for name, data in self.section(source, "calendars", dict).items():
                cal = self.validate(CalendarSpec, data, source, ("calendars", name))
                if self._unique(calendar_specs, name, source, ("calendars", name), "calendar"):
                    if cal is not None:
                        calendar_specs[name] = (source, cal)
            if source.data.get("defaults") is not None:
                found = self.validate(DefaultsSpec, source.data["defaults"], source, ("defaults",))
                if defaults is not None:
                    self.problems.add(
                        source,
                        ("defaults",),
                        f"defaults are already given in {defaults[0].shown}",
                        at_key=True,
                    )
                elif found is not None:
                    defaults = (source, found)
            for n, data in enumerate(self.section(source, "rules", list)):
                rules.append((source, n, self.validate(RuleSpec, data, source, ("rules", n))))
            for n, data in enumerate(self.section(source, "tests", list)):
                case = self.validate(CaseSpec, data, source, ("tests", n))
                if case is not None:
                    cases.append((source, n, case))

        timezone_name = defaults[1].timezone if defaults else "UTC"
        tz = zone(timezone_name)
        if tz is None and defaults is not None:
            self.problems.add(
                defaults[0],
                ("defaults", "timezone"),
                f"unknown time zone {timezone_name!r} (e.g. Europe/Berlin, UTC)",
            )
        tz = tz or zone("UTC")
        assert tz is not None
        catalog = Catalog(tz)

        queues = {
            name: Queue(name, spec.description, tuple(spec.skills), spec.assign)
            for name, (_, spec) in queue_specs.items()
        }
        calendars: dict[str, Calendar | None] = {}
        for name, (source, cal) in calendar_specs.items():
            report = self._reporter(source, ("calendars", name))
            calendars[name] = compile_calendar(name, cal, report)

        channel_defaults: dict[str, ChannelDefault] | None = None
        if defaults is None:
            if self.sources:
                self.problems.add(
                    self.sources[0],
                    (),
                    "no defaults: one file must have a defaults: section with at least a queue",
                )
        else:
            actions = ActionCompiler(catalog, queues, self._reporter(defaults[0]))
            channel_defaults = actions.compile_defaults(defaults[1], ("defaults",))

        compiled = self._rules(rules, catalog, queues, calendars, tz)
        rule_names = {r.name for r in compiled}
        compiled_cases: list[Case] = []
        for source, n, case in cases:
            found_case = compile_case(
                case,
                source,
                ("tests", n),
                catalog=catalog,
                timezone=tz,
                queues=queues,
                rules=rule_names,
                report=self._reporter(source),
            )
            if found_case is not None:
                compiled_cases.append(found_case)

        if self.problems.errors or channel_defaults is None:
            return None
        return Ruleset(
            version=version,
            sources=sources_text,
            warnings=self.problems.warning_lines(),
            queues=queues,
            calendars={k: v for k, v in calendars.items() if v is not None},
            defaults=channel_defaults,
            timezone=timezone_name,
            rules=compiled,
            cases=compiled_cases,
        )

    def _reporter(self, source: Source, prefix: Path = ()) -> Reporter:
        def report(path: Path, message: str, at_key: bool = False) -> None:
            self.problems.add(source, (*prefix, *path), message, at_key=at_key)

        return report

    def _unique(
        self, seen: dict[str, tuple[Source, Any]], name: str, source: Source, path: Path, what: str
    ) -> bool:
        if name in seen:
            first = seen[name][0]
            line, _ = first.position(path, at_key=True)
            self.problems.add(
                source,
                path,
                f"{what} {name!r} is already declared at {first.shown}:{line}",
                at_key=True,
            )
            return False
        return True

    def _rules(
        self,
        specs: list[tuple[Source, int, RuleSpec | None]],
        catalog: Catalog,
        queues: dict[str, Queue],
        calendars: dict[str, Calendar | None],
        tz: Any,
    ) -> list[Rule]:
        compiled: list[Rule] = []
        memo: dict[Any, tuple[Check, ...]] = {}
        seen: dict[str, tuple[Source, int]] = {}
        always: Rule | None = None
        shadows: dict[str, Rule] = {}
        for source, n, spec in specs:
            path: Path = ("rules", n)
            report = self._reporter(source)
            line = source.position(path)[0]
            raw = source.value_at(path)
            name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(name, str) and name in seen:
                first, first_line = seen[name]
                report(
                    (*path, "name"),
                    f"the name is already used by the rule at {first.shown}:{first_line}"
                    " (names identify rules in traces and rollouts)",
                )
                continue
            if isinstance(name, str):
                seen[name] = (source, line)
            # conditions are checked even when the rest of the rule is invalid
            when = raw.get("when") if isinstance(raw, dict) else None
            conditions = ConditionCompiler(catalog, calendars, tz, report, memo=memo)
            checks: list[Check] | None = []
            if isinstance(when, dict) and when:
                checks = conditions.compile_when(when, (*path, "when"))
            actions = ActionCompiler(catalog, queues, report)
            if spec is None:
                self._route_of_invalid_rule(raw, path, actions)
                continue
            route = actions.compile_route(spec.route, (*path, "route"), cont=spec.continue_)
            if checks is None or route is None:
                continue
            described = {
                key: raw.get(key)
                for key in ("description", "enabled", "when", "rollout", "continue", "route")
                if isinstance(raw, dict) and key in raw
            }
            rule = Rule(
                name=spec.name,
                file=source.name,
                path=source.shown,
                line=line,
                checks=tuple(checks),
                route=route,
                cont=spec.continue_,
                rollout=rollout_for(spec.name, spec.rollout) if spec.rollout is not None else None,
                enabled=spec.enabled,
                source=described,
            )
            compiled.append(rule)
            if not rule.enabled:
                continue
            same = json.dumps(spec.when or {}, sort_keys=True)
            self._shadowing(rule, source, path, always, shadows.get(same))
            if not rule.cont and rule.rollout is None:
                if not rule.checks and always is None:
                    always = rule
                shadows.setdefault(same, rule)
        return compiled

    @staticmethod
    def _route_of_invalid_rule(raw: Any, path: Path, actions: ActionCompiler) -> None:
        """Check the route of a rule that failed validation, when the route itself is valid
        (its own shape errors are already reported)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("route"), dict):
            return
        try:
            route = RouteSpec.model_validate(raw["route"])
        except ValidationError:
            return
        actions.compile_route(route, (*path, "route"), cont=raw.get("continue") is True)

    def _shadowing(
        self, rule: Rule, source: Source, path: Path, always: Rule | None, same: Rule | None
    ) -> None:
        """Warn when an earlier rule always matches or has the same conditions (``same``)."""
        earlier = always or same
        if earlier is None:
            return
        how = "always matches" if earlier is always else "has the same conditions"
        self.problems.add(
            source,
            (*path, "name"),
            f"never reached: rule {earlier.name!r} ({earlier.path}:{earlier.line})"
            f" comes first and {how}",
            warning=True,
        )


def compile_ruleset(
    sources: Sequence[Source], *, version: str, texts: dict[str, str], problems: Problems
) -> Ruleset | None:
    """The compiled ruleset, or None when ``problems`` holds errors."""
    return _Compiler(sources, problems).compile(version, texts)
