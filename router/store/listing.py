"""Keyset pages of a table: the one way listings build their SQL (offers,
deliveries, live contacts), so every page is a short index range scan that
a deep page costs the same as the first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def keyset_page(
    select: str,
    *,
    equal: Mapping[str, Any],
    key: tuple[str, str],
    after: Sequence[Any] | None,
    limit: int,
    descending: bool = True,
) -> tuple[str, list[Any]]:
    """``select`` (``SELECT … FROM …``) narrowed to the rows whose columns equal
    the values of ``equal`` that are not ``None``, past the keyset ``after``
    on the two ``key`` columns, in ``key`` order, at most ``limit`` rows: the
    SQL and its arguments. Column names come from the code, never a request."""
    args: list[Any] = []
    where: list[str] = []
    for column, value in equal.items():
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if after is not None:
        args += list(after)
        past = "<" if descending else ">"
        where.append(f"({key[0]}, {key[1]}) {past} (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    order = " DESC" if descending else ""
    sql = select
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {key[0]}{order}, {key[1]}{order} LIMIT ${len(args)}"
    return sql, args
