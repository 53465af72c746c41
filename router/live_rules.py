"""The active ruleset: loaded at start, reloaded when the files change. An edit
that does not load never replaces the active ruleset; the error is logged
with file, line and rule, and counted.

It also counts how often each rule of the active version matched (the rule
that decided, and ``continue`` rules that added to a decision), from the
moment that version was loaded in this process.

``Versions`` keeps the last few versions compiled that explain asked for
(earlier versions, read back from the ``rulesets`` table)."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog
import watchfiles

from router.errors import RulesError, Unexplainable
from router.metrics import Metrics
from router.rules import Evaluation, Ruleset, load_ruleset, load_ruleset_sources

log = structlog.get_logger("omniroute.rules")

OnLoad = Callable[[Ruleset], Awaitable[None]]


class LiveRules:
    def __init__(self, paths: Sequence[Path], metrics: Metrics) -> None:
        self.paths = list(paths)
        self.metrics = metrics
        self._active: Ruleset | None = None
        self.loaded_at: datetime | None = None
        self.last_error: list[str] = []
        #: matches per rule name of the active version, and since when they are counted
        self.matches: Counter[str] = Counter()
        self.counting_since: datetime | None = None

    @property
    def active(self) -> Ruleset:
        if self._active is None:
            raise RuntimeError("no ruleset loaded")
        return self._active

    @property
    def ready(self) -> bool:
        return self._active is not None

    def load(self) -> Ruleset:
        """Load the files; raise ``RulesError`` (keeping the active set) if they are invalid."""
        ruleset = load_ruleset(self.paths)
        previous = self._active
        self._active = ruleset
        self.loaded_at = datetime.now(UTC)
        self.last_error = []
        if previous is None or previous.version != ruleset.version:
            self.matches, self.counting_since = Counter(), self.loaded_at
        if previous is not None and previous.version != ruleset.version:
            self.metrics.ruleset_info.remove(previous.version)
        self.metrics.ruleset_info.labels(version=ruleset.version).set(self.loaded_at.timestamp())
        for warning in ruleset.warnings:
            log.warning("rules_warning", warning=warning)
        log.info("rules_loaded", version=ruleset.version, files=sorted(ruleset.sources))
        return ruleset

    def count(self, evaluation: Evaluation) -> None:
        """Count the rules that matched in ``evaluation`` (a routed contact's), when the
        active version decided it: from the trace (``continue`` rules too) or, without
        one, the deciding rule."""
        if self._active is None or evaluation.decision.ruleset != self._active.version:
            return
        if not evaluation.trace:
            if evaluation.decision.rule is not None:
                self.matches[evaluation.decision.rule] += 1
            return
        for entry in evaluation.trace:
            if entry["matched"] and entry["rule"] is not None:
                self.matches[entry["rule"]] += 1

    async def reload(self, on_load: OnLoad) -> None:
        before = self._active.version if self._active else None
        try:
            ruleset = await asyncio.to_thread(self.load)
        except RulesError as exc:
            self.last_error = exc.problems
            self.metrics.rules_reload_failures.inc()
            log.error("rules_reload_refused", active=before, problems=exc.problems)
            return
        if ruleset.version != before:
            await on_load(ruleset)

    async def watch(self, on_load: OnLoad, stop: asyncio.Event) -> None:
        """Reload on every change of the rules files until ``stop`` is set."""
        watched = [p for p in self.paths if p.exists()]
        if not watched:
            return
        async for _changes in watchfiles.awatch(*watched, stop_event=stop, debounce=300):
            await self.reload(on_load)


#: compiled ruleset versions kept in memory
CACHE_SIZE = 8


class Versions:
    """Compiled ruleset versions by version, the least recently used dropped first.

    A version is a content hash, so a compiled version never goes stale."""

    def __init__(
        self,
        sources: Callable[[str], Awaitable[dict[str, str] | None]],
        size: int = CACHE_SIZE,
    ) -> None:
        #: the files of a version, as stored (``Store.rulesets.sources``)
        self._sources = sources
        self.size = size
        self._compiled: OrderedDict[str, Ruleset] = OrderedDict()

    async def get(self, version: str) -> Ruleset:
        """Ruleset ``version``; ``Unexplainable`` when it is not stored or no longer loads."""
        found = self._compiled.get(version)
        if found is not None:
            self._compiled.move_to_end(version)
            return found
        sources = await self._sources(version)
        if sources is None:
            raise Unexplainable(f"ruleset version {version} is not stored")
        try:
            ruleset = await asyncio.to_thread(load_ruleset_sources, sources)
        except RulesError as exc:
            first = exc.problems[0] if exc.problems else exc.message
            raise Unexplainable(f"ruleset version {version} no longer loads: {first}") from None
        self._compiled[version] = ruleset
        while len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
        return ruleset
