"""The history as a file: every record of a selection, in its order, as CSV
or as NDJSON, in the columns of ``reporting.routed_contacts_v1``.

PostgreSQL writes the rows (COPY TO STDOUT) and the connection stops reading
while the sink waits, so memory stays flat however many rows there are.

CSV comes from PostgreSQL as it is, except that the cells of text others
chose are neutralised against spreadsheet formulas, in the query
(``CSV_NEUTRALISED``). For NDJSON, PostgreSQL writes each column
as a JSON literal (it quotes and escapes the free text, times and lists) and
this process puts the keys around them, a few C-level bytes operations per
chunk. Building the whole object in SQL cost PostgreSQL about twice as much
per row and sent twice the bytes, and the export's one backend is what limits
its speed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from router.store.records import Selection

VIEW = "reporting.routed_contacts_v1"

#: The export's columns: those of the view, in its order. CSV flattens lists
#: (joined by ``|``) and writes booleans as true/false.
EXPORT_COLUMNS = (
    "contact_id",
    "received_at",
    "adapter",
    "provider",
    "channel",
    "external_id",
    "thread_id",
    "customer_id",
    "known_customer",
    "queue",
    "priority",
    "skills",
    "sla_seconds",
    "tags",
    "preferred_agent",
    "rule",
    "ruleset",
    "routing_ms",
    "tier",
    "repeat_24h",
    "repeat_7d",
    "previous_channel",
    "channel_switch",
    "context_degraded",
    "outcome",
    "agent",
    "assigned_at",
    "answered_at",
    "abandoned_at",
    "resolved_at",
    "closed_at",
    "sla_met",
    "rollout",
    "offers_made",
    "offered_at",
    "wait_to_assign_ms",
)
_LISTS = ("skills", "tags")
_BOOLEANS = (
    "known_customer",
    "repeat_24h",
    "repeat_7d",
    "channel_switch",
    "context_degraded",
    "sla_met",
)


#: Text a customer, a platform, the CRM or a rules author chose (ids, thread
#: ids, names, tiers, queues, tags ...). In CSV, such a cell that starts like
#: a spreadsheet formula is neutralised (OWASP's CSV injection rule): a single
#: quote goes in front of a leading ``=``, ``+``, ``-``, ``@``, tab or
#: carriage return, and the cell is always quoted. The other columns hold what
#: omniroute writes (uuids, times, numbers, booleans, and names fixed by
#: construction: adapter names, adapter kinds, channels, ruleset hashes, the
#: outcome types the events API accepts) and are written as they are.
CSV_NEUTRALISED = (
    "external_id",
    "thread_id",
    "queue",
    "skills",
    "tags",
    "preferred_agent",
    "rule",
    "tier",
    "agent",
    "rollout",
)
#: the code points of '=', '+', '-', '@', tab and carriage return
FORMULA_STARTS = (61, 43, 45, 64, 9, 13)


def _csv_column(name: str) -> str:
    if name in _BOOLEANS:
        return f"{name}::text AS {name}"
    if name in _LISTS:
        # The cell starts with the first element; a NULL element is written
        # as an empty entry, so that it cannot hide the next one's start.
        value, first = f"array_to_string({name}, '|', '')", f"{name}[1]"
    else:
        value = first = name
    if name not in CSV_NEUTRALISED:
        return name if value == name else f"{value} AS {name}"
    # In the query, so that the export stays one COPY: the test compares the
    # first code point with integers (no string is built) and only the chosen
    # branch builds the cell. Of the forms measured (this one, a CASE per
    # code point, a range check first, a regular expression) this one cost
    # PostgreSQL least.
    codes = ", ".join(str(code) for code in FORMULA_STARTS)
    return f"CASE WHEN ascii({first}) IN ({codes}) THEN '''' || {value} ELSE {value} END AS {name}"


_CSV_SELECT = ", ".join(_csv_column(c) for c in EXPORT_COLUMNS)

# JSON literals: free text, times, lists and the float through to_json
# (quoting and escaping); integers and booleans (text 'true' / 'false') as
# their text; ids and names that are safe by construction (uuids, channels,
# adapter names matching the config's pattern, adapter kinds, ruleset hashes)
# between quotes -- put there by the line template when never null, which
# spares PostgreSQL, the export's bottleneck, two string operations a column.
_UNQUOTED = ("priority", "sla_seconds", "offers_made", *_BOOLEANS)
_QUOTED = (
    "contact_id",
    "customer_id",
    "channel",
    "previous_channel",
    "adapter",
    "provider",
    "ruleset",
)
_NOT_NULL = (  # as in the table
    "contact_id",
    "received_at",
    "adapter",
    "provider",
    "channel",
    "external_id",
    "known_customer",
    "queue",
    "priority",
    "skills",
    "tags",
    "ruleset",
    "repeat_24h",
    "repeat_7d",
    "channel_switch",
    "context_degraded",
    "offers_made",
)

#: Columns written bare by PostgreSQL and quoted by the line template.
QUOTED_BY_TEMPLATE = tuple(c for c in _QUOTED if c in _NOT_NULL)


def _literal(name: str) -> str:
    if name in _UNQUOTED or name in QUOTED_BY_TEMPLATE:
        value = f"{name}::text"
    elif name in _QUOTED:
        value = f"'\"' || {name}::text || '\"'"
    else:
        value = f"to_json({name})::text"
    return value if name in _NOT_NULL else f"coalesce({value}, 'null')"


_LITERALS_SELECT = ", ".join(_literal(c) for c in EXPORT_COLUMNS)

# COPY writes the literals as CSV with a quote and a delimiter that JSON text
# never holds raw (it escapes every control character), so each value comes
# out as it is, never quoted.
_QUOTE, _DELIMITER = "\x01", "\x02"
_SEPARATOR = _DELIMITER.encode()
_LINE = (
    "{"
    + ",".join(f'"{c}":"%s"' if c in QUOTED_BY_TEMPLATE else f'"{c}":%s' for c in EXPORT_COLUMNS)
    + "}\n"
).encode()

#: Marks the export's query in pg_stat_activity.
MARK = "/* omniroute export */"


class NdjsonLines:
    """COPY output of ``_LITERALS_SELECT`` in (a row's literals on one line,
    separated by ``\\x02``), NDJSON lines out. A chunk may end anywhere: an
    unfinished line waits for the next chunk."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._rest + chunk if self._rest else chunk
        end = data.rfind(b"\n") + 1
        self._rest = data[end:]
        if end == 0:
            return b""
        rows = data[:end] if self._rest else data
        n = rows.count(b"\n")
        # One flat list of every literal of every row, then one formatting
        # operation for all the rows: no Python loop per row or per column.
        values = rows.replace(b"\n", _SEPARATOR).split(_SEPARATOR)
        values.pop()  # the empty piece after the last line's end
        if len(values) != n * len(EXPORT_COLUMNS):
            raise ValueError(f"export rows do not have the {len(EXPORT_COLUMNS)} columns")
        return (_LINE * n) % tuple(values)

    def close(self) -> None:
        if self._rest:
            raise ValueError("the export ended inside a row")


async def export(
    pool: asyncpg.Pool,
    selection: Selection,
    *,
    fmt: Literal["csv", "ndjson"],
    sink: Callable[[bytes], Awaitable[None]],
    limit: int | None = None,
    timeout: float,
) -> None:
    """Stream the records of ``selection``, in its order, to ``sink``: CSV
    with a header line, or NDJSON."""
    args: list[Any] = []
    tail = selection.where(args) + selection.order_by
    if limit is not None:
        tail += f" LIMIT {int(limit)}"
    async with pool.acquire() as con, con.transaction(readonly=True):
        # Rows in index order (a merge of the partitions' indexes) rather than
        # a sort: the first byte leaves at once and nothing spills to disk.
        await con.execute(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL enable_sort = off"
        )
        if fmt == "csv":
            await con.copy_from_query(
                f"{MARK} SELECT {_CSV_SELECT} FROM {VIEW}{tail}",
                *args,
                output=sink,
                format="csv",
                header=True,
                force_quote=list(CSV_NEUTRALISED),
                timeout=timeout,
            )
            return
        lines = NdjsonLines()

        async def literals(chunk: bytes) -> None:
            data = lines.feed(chunk)
            if data:
                await sink(data)

        await con.copy_from_query(
            f"{MARK} SELECT {_LITERALS_SELECT} FROM {VIEW}{tail}",
            *args,
            output=literals,
            format="csv",
            quote=_QUOTE,
            delimiter=_DELIMITER,
            timeout=timeout,
        )
        lines.close()
