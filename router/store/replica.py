"""Reporting reads off the primary: a streaming replica (hot standby) serves
the history pages, the exports and the summary while it is there and close
enough; routing and every write never read it.

``Reads`` holds the replica's pool beside the primary's and decides, per
read, which one answers (``Reads.run``):

- the replica, when its last measurement (at most ``STALE`` seconds old,
  measured again on the way otherwise) found it reachable and no more than
  ``max_lag_seconds`` behind;
- otherwise the primary (``replica_fallback: primary``, the default), or
  ``ReplicaUnavailable`` (``refuse``: 503, the reason in the message);
- a read the replica fails because the server is away (refused, reset,
  shut down), because replay cancelled it (a recovery conflict) or because
  it names a table or column the replica has not replayed yet (an upgrade)
  runs again on the primary (or is refused), unless it has sent something
  already (an export half streamed); the replica counts as away until a
  measurement reaches it again (when it was away).

How far behind it is (``lag``): replay is compared with the end of the
primary's WAL (``wal_end``: its insert position, not ``pg_current_wal_lsn()``,
which is only what it has written out: a commit made with ``synchronous_commit
= off`` is acknowledged while its record still waits in the WAL buffers, and
a replica at the written position would count as caught up without it). A
replica that has replayed everything the primary had inserted when asked is
not behind at all, however long ago the last commit was (an idle primary
writes nothing, so "now minus the last replayed commit" alone would grow
without end). Otherwise two upper bounds of the delay are taken, the smaller
one wins: the time since the primary was last seen at a position the replica
has replayed (``Positions``, sampled at every measurement), and the time since
the last commit the replica replayed.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

import asyncpg
import structlog

from router.errors import ReplicaUnavailable
from router.store import db
from router.store.config import DatabaseSettings

log = structlog.get_logger("omniroute.store.replica")

T = TypeVar("T")

#: A measurement older than this is taken again before a read relies on it.
STALE = 5.0
#: Each of a measurement's two queries (primary, replica) may take this long.
PROBE_TIMEOUT = 1.5
#: WAL positions remembered (one per measurement at which the primary moved).
POSITIONS_KEPT = 4096

#: Where the primary's WAL ends: its insert position (every record inserted,
#: acknowledged asynchronous commits too), and the sizes of a WAL page and
#: segment (``wal_end``).
PRIMARY_POSITION = """
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS inserted,
       current_setting('wal_block_size')::int AS block,
       pg_size_bytes(current_setting('wal_segment_size'))::bigint AS segment
"""
#: A WAL page's header: the short one, and the long one opening a segment.
PAGE_HEADER = 24
SEGMENT_HEADER = 40
REPLICA_STATE = """
SELECT pg_is_in_recovery() AS standby,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replayed,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
           AS since_commit
"""

#: SQLSTATEs of a read that replay cancelled on the standby (a recovery
#: conflict): the same read on the primary succeeds.
RECOVERY_CONFLICT = ("40001", "40P01")

State = Literal["off", "unknown", "ok", "lagging", "away"]
Source = Literal["replica", "primary", "refused"]


class Positions:
    """When the primary was last seen at each WAL position: positions
    increasing, the time (monotonic seconds) the latest one seen at each."""

    def __init__(self, keep: int = POSITIONS_KEPT) -> None:
        self._lsns: list[int] = []
        self._times: list[float] = []
        self._keep = keep

    def add(self, at: float, lsn: int) -> None:
        if self._lsns and lsn <= self._lsns[-1]:
            # the same position again (an idle primary): it was there until now
            if lsn == self._lsns[-1]:
                self._times[-1] = at
            return
        self._lsns.append(lsn)
        self._times.append(at)
        if len(self._lsns) > self._keep:
            del self._lsns[0], self._times[0]

    def last_seen_at_or_before(self, lsn: int) -> float | None:
        """The last time the primary was at a position ``<= lsn`` (so what it
        wrote after that time is all the replica may miss); ``None`` when
        no such position is remembered."""
        i = bisect.bisect_right(self._lsns, lsn)
        return self._times[i - 1] if i else None


def wal_end(inserted: int, *, block: int, segment: int) -> int:
    """The end of the last record of a WAL whose insert position is
    ``inserted``: the position itself, or the page boundary before it when no
    record is on that page yet (the insert position then points past the
    page's header, where replay of the last record ends at the boundary)."""
    header = SEGMENT_HEADER if inserted % segment < block else PAGE_HEADER
    return inserted - header if inserted % block == header else inserted


def lag_seconds(
    *, behind_bytes: int | None, since_seen: float | None, since_commit: float | None
) -> float | None:
    """How far behind the replica is, in seconds (an upper bound); ``None``
    when nothing tells. ``behind_bytes``: the primary's position (taken
    first) minus the replica's replay position."""
    if behind_bytes is not None and behind_bytes <= 0:
        return 0.0
    bounds = [b for b in (since_seen, since_commit) if b is not None]
    return max(0.0, min(bounds)) if bounds else None


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """The replica as last measured, and where reporting reads go because of it."""

    state: State
    #: where the reporting reads go now
    reads: Source
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    #: False when the server at ``replica_url`` is not a standby (it is
    #: read all the same: pointing it at the primary is allowed)
    standby: bool | None = None
    #: why the replica is not read (away, lagging), else ``None``
    reason: str | None = None
    measured_at: datetime | None = None
    max_lag_seconds: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "reads": self.reads,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "lag_bytes": self.lag_bytes,
            "standby": self.standby,
            "reason": self.reason,
            "max_lag_seconds": self.max_lag_seconds,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
        }


def _away_error(exc: BaseException) -> bool:
    """The replica's server is not there (as opposed to a slow read, which
    would be as slow on the primary)."""
    if isinstance(exc, TimeoutError | asyncpg.exceptions.QueryCanceledError):
        return False
    return isinstance(exc, db.UNAVAILABLE)


def _conflict(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in RECOVERY_CONFLICT


#: undefined column, table, function: what a replica answers while the DDL of
#: a migration the primary ran is not replayed yet (a rolling upgrade)
SCHEMA_BEHIND = frozenset({"42703", "42P01", "42883"})


def _schema_behind(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in SCHEMA_BEHIND


class Reads:
    """Which pool answers the reporting reads (see the module's text)."""

    def __init__(
        self, primary: asyncpg.Pool, replica: asyncpg.Pool | None, settings: DatabaseSettings
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._max_lag = settings.max_lag_seconds
        self._fallback = settings.replica_fallback
        self._positions = Positions()
        self._measuring = asyncio.Lock()
        self._measured = -STALE  # monotonic time of the last measurement
        self._status = ReplicaStatus(
            state="off" if replica is None else "unknown",
            reads="primary",
            max_lag_seconds=self._max_lag if replica is not None else None,
        )

    @property
    def configured(self) -> bool:
        return self._replica is not None

    @property
    def status(self) -> ReplicaStatus:
        """The last measurement (no I/O)."""
        return self._status

    async def run(
        self,
        read: Callable[[asyncpg.Pool], Awaitable[T]],
        *,
        started: Callable[[], bool] | None = None,
    ) -> T:
        """``read`` on the pool chosen for reporting reads; on the primary
        again when the replica fails it, unless ``started()`` says it has
        sent something already."""
        if self._replica is None:
            return await read(self._primary)
        if time.monotonic() - self._measured > STALE:
            await self.measure()
        pool = self._choose()
        if pool is not self._replica:
            return await read(pool)
        try:
            return await read(pool)
        except Exception as exc:
            if _conflict(exc):
                reason = "replay on the replica cancelled the read (a recovery conflict)"
                log.warning("replica_read_cancelled", sqlstate=getattr(exc, "sqlstate", None))
            elif _schema_behind(exc):
                reason = "the replica has not replayed the primary's last migration yet"
                log.warning("replica_schema_behind", sqlstate=getattr(exc, "sqlstate", None))
                # (its sessions need no renewal: a session on a hot standby
                # sees the replayed DDL at its next statement)
            elif _away_error(exc):
                reason = f"the replica is away ({type(exc).__name__})"
                self._away(reason)
            elif isinstance(exc, TimeoutError):
                # a slow read, or a replica that vanished without refusing:
                # a measurement tells which
                status = await self.measure()
                if status.state != "away" or status.reason is None:
                    raise
                reason = status.reason
            else:
                raise
            if started is not None and started():
                raise
            return await read(self._other(reason))

    def _choose(self) -> asyncpg.Pool:
        status = self._status
        if status.state == "ok":
            assert self._replica is not None
            return self._replica
        return self._other(status.reason or "the replica's lag is not known yet")

    def _other(self, reason: str) -> asyncpg.Pool:
        if self._fallback == "refuse":
            raise ReplicaUnavailable(
                f"reporting reads are refused while {reason} "
                "(database.replica_fallback: refuse); retry later"
            )
        return self._primary

    def _away(self, reason: str) -> None:
        self._measured = time.monotonic()
        if self._status.state != "away":
            log.warning("replica_away", reason=reason)
        self._status = ReplicaStatus(
            state="away",
            reads=self._source(reason),
            reason=reason,
            measured_at=datetime.now(UTC),
            max_lag_seconds=self._max_lag,
        )

    def _source(self, reason: str | None) -> Source:
        if reason is None:
            return "replica"
        return "refused" if self._fallback == "refuse" else "primary"

    async def measure(self) -> ReplicaStatus:
        """Measure the replica now (two short queries, never raising); a
        measurement already running is waited for instead."""
        if self._replica is None:
            return self._status
        if self._measuring.locked():
            async with self._measuring:
                return self._status
        async with self._measuring:
            await self._measure(self._replica)
            return self._status

    async def _measure(self, replica: asyncpg.Pool) -> None:
        started = time.monotonic()
        primary: int | None = None
        try:
            wal = await asyncio.wait_for(self._primary.fetchrow(PRIMARY_POSITION), PROBE_TIMEOUT)
            assert wal is not None
            primary = wal_end(wal["inserted"], block=wal["block"], segment=wal["segment"])
        except (*db.UNAVAILABLE, asyncpg.PostgresError):
            pass  # the primary away: the replica's own view
        if primary is not None:
            self._positions.add(started, primary)
        try:
            row = await asyncio.wait_for(replica.fetchrow(REPLICA_STATE), PROBE_TIMEOUT)
        except (*db.UNAVAILABLE, asyncpg.PostgresError) as exc:
            self._away(f"the replica is away ({type(exc).__name__})")
            return
        assert row is not None
        self._measured = now = time.monotonic()
        standby, replayed = bool(row["standby"]), row["replayed"]
        lag: float | None
        behind: int | None
        if not standby:
            lag, behind = 0.0, 0
        else:
            diff = None if primary is None or replayed is None else primary - replayed
            behind = None if diff is None else max(0, diff)
            seen = None if replayed is None else self._positions.last_seen_at_or_before(replayed)
            lag = lag_seconds(
                behind_bytes=diff,
                since_seen=None if seen is None else now - seen,
                since_commit=row["since_commit"],
            )
        reason: str | None = None
        state: State = "ok"
        if lag is None:
            state, reason = "unknown", "the replica's lag cannot be measured yet"
        elif lag > self._max_lag:
            state = "lagging"
            reason = (
                f"the replica is {lag:.1f} s behind, more than "
                f"database.max_lag_seconds ({self._max_lag:g})"
            )
        if state != self._status.state:
            log.info("replica_state", state=state, lag_seconds=lag, reason=reason)
        self._status = ReplicaStatus(
            state=state,
            reads=self._source(reason),
            lag_seconds=lag,
            lag_bytes=behind,
            standby=standby,
            reason=reason,
            measured_at=datetime.now(UTC),
            max_lag_seconds=self._max_lag,
        )
