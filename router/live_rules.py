"""The active ruleset: loaded at start, reloaded when the files change. An edit
that does not load never replaces the active ruleset; the error is logged
with file, line and rule, and counted.

It also counts how often each rule of the active version matched (the rule
that decided, and ``continue`` rules that added to a decision), from the
moment that version was loaded in this process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog
import watchfiles

from router.errors import RulesError
from router.metrics import Metrics
from router.rules import Evaluation, Ruleset, load_ruleset

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
