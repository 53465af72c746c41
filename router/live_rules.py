"""The active ruleset: loaded at start, reloaded when the files change
(``rules.source: files``) or switched to the published version whenever one
is published (``rules.source: database``). An edit that does not load, or
whose own tests fail, never replaces the active ruleset; the problems (file,
line and rule, or the failing tests) are logged, counted and shown by
``/readyz`` and ``GET /v1/rules``.

It also counts how often each rule of the active version matched (the rule
that decided, and ``continue`` rules that added to a decision), from the
moment that version was loaded in this process.

``Versions`` keeps the last few versions compiled that explain asked for
(earlier versions, read back from the ``rulesets`` table)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog
import watchfiles

from router.errors import RulesError, RulesTestsFailed, StoreUnavailable, Unexplainable
from router.jobs import Listening, keep_listening
from router.metrics import Metrics
from router.rules import Evaluation, Ruleset, load_ruleset, load_ruleset_sources
from router.rules.testing import require_passing

log = structlog.get_logger("omniroute.rules")

OnLoad = Callable[[Ruleset], Awaitable[None]]
#: where a ruleset is checked: its tests refused there are counted by this label
At = Literal["start", "reload", "publish", "follow"]
#: seconds between looks at the published version besides the notifications
#: (a notification missed while the listening connection was away is caught up)
FOLLOW_POLL = 30.0


def checked(ruleset: Ruleset, metrics: Metrics, at: At) -> Ruleset:
    """``ruleset`` if its own tests pass, else ``RulesTestsFailed`` (counted)."""
    try:
        return require_passing(ruleset)
    except RulesTestsFailed:
        metrics.rules_tests_refused.labels(at=at).inc()
        raise


def load_checked(sources: Mapping[str, str], metrics: Metrics, at: At) -> Ruleset:
    """The ruleset of ``sources`` (file name -> text), loaded and its tests
    passed; ``RulesError`` (or ``RulesTestsFailed``) naming every problem."""
    return checked(load_ruleset_sources(sources), metrics, at)


class LiveRules:
    def __init__(
        self,
        paths: Sequence[Path],
        metrics: Metrics,
        *,
        source: Literal["files", "database"] = "files",
    ) -> None:
        self.paths = list(paths)
        self.metrics = metrics
        #: where the active version comes from (``rules.source``)
        self.source = source
        self._active: Ruleset | None = None
        self.loaded_at: datetime | None = None
        self.last_error: list[str] = []
        #: matches per rule name of the active version, and since when they are counted
        self.matches: Counter[str] = Counter()
        self.counting_since: datetime | None = None
        #: the published version this instance could not serve (database source)
        self._refused_version: str | None = None
        self._switching = asyncio.Lock()

    @property
    def active(self) -> Ruleset:
        if self._active is None:
            raise RuntimeError("no ruleset loaded")
        return self._active

    @property
    def ready(self) -> bool:
        return self._active is not None

    def load(self, at: At = "start") -> Ruleset:
        """Load the files and make them active; raise ``RulesError`` (keeping the
        active set) if they are invalid or their tests fail (``RulesTestsFailed``)."""
        return self.activate(self.read_files(at))

    def read_files(self, at: At = "start") -> Ruleset:
        """The files' ruleset, checked and tested, without making it active."""
        return checked(load_ruleset(self.paths), self.metrics, at)

    def activate(self, ruleset: Ruleset) -> Ruleset:
        """Make ``ruleset`` (checked and tested) the active version."""
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

    def refused(self, exc: RulesError, *, candidate: str | None = None) -> None:
        """A new version was refused: keep serving the active one, say why."""
        self.last_error = exc.problems
        self.metrics.rules_reload_failures.inc()
        log.error(
            "rules_reload_refused",
            active=self._active.version if self._active else None,
            candidate=candidate,
            reason="tests failed" if isinstance(exc, RulesTestsFailed) else "does not load",
            problems=exc.problems,
        )

    async def reload(self, on_load: OnLoad) -> None:
        before = self._active.version if self._active else None
        try:
            ruleset = await asyncio.to_thread(self.load, "reload")
        except RulesError as exc:
            self.refused(exc)
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

    async def switch(
        self,
        published: Callable[[], Awaitable[str | None]],
        sources: Callable[[str], Awaitable[dict[str, str] | None]],
        on_load: OnLoad,
    ) -> None:
        """Serve the published version (``rules.source: database``) if it is not
        served yet; a version that does not load or whose tests fail here is
        refused like a bad edit (the active one keeps serving). One switch at a
        time, so that a slower one never activates an older version last."""
        async with self._switching:
            await self._switch(published, sources, on_load)

    async def _switch(
        self,
        published: Callable[[], Awaitable[str | None]],
        sources: Callable[[str], Awaitable[dict[str, str] | None]],
        on_load: OnLoad,
    ) -> None:
        version = await published()
        if version is None or version == self._refused_version:
            return  # (a refused version is refused once, not at every look)
        if self._active is not None and self._active.version == version:
            return
        files = await sources(version)
        if files is None:
            return
        try:
            ruleset = await asyncio.to_thread(load_checked, files, self.metrics, "follow")
        except RulesError as exc:
            self._refused_version = version
            self.refused(exc, candidate=version)
            return
        self.activate(ruleset)
        await on_load(ruleset)

    async def follow(
        self,
        listening: Listening,
        published: Callable[[], Awaitable[str | None]],
        sources: Callable[[str], Awaitable[dict[str, str] | None]],
        on_load: OnLoad,
        stop: asyncio.Event,
    ) -> None:
        """Switch to each newly published version until ``stop`` is set: woken by
        the publication's notification (``listening``), and every ``FOLLOW_POLL``
        seconds in case one was missed (a watching job)."""
        wake = asyncio.Event()
        listener = asyncio.create_task(
            keep_listening(listening, wake, stop, name="rules"), name="rules:listen"
        )
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    await self.switch(published, sources, on_load)
                except StoreUnavailable:
                    pass
                except Exception:
                    log.exception("rules_follow_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FOLLOW_POLL):
                        await wake.wait()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


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
