"""Keyset reads of one batch of a chunk from the source (never OFFSET, never a full scan).

- key chunk: ``key > cursor AND key <= hi ORDER BY key``;
- window chunk: ``version in (lo, hi]`` after the compound cursor ``(version, key)``, so
  rows sharing one millisecond are neither skipped nor read twice across batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from migration.engine.plan import ChunkSpec


@dataclass(frozen=True)
class Cursor:
    ts: int | None = None
    key: Any = None


def select_batch_sql(database: str, table: str, columns: tuple[str, ...], key: str,
                     version: str, spec: ChunkSpec, cursor: Cursor,
                     limit: int, select: str | None = None) -> tuple[str, list[Any]]:
    """The batch's keyset read; ``select`` replaces the column list (server-built literals)."""
    cols = select or ", ".join(f"`{c}`" for c in columns)
    where: list[str] = []
    args: list[Any] = []
    if spec.kind == "key":
        k = f"`{spec.key_column}`"
        lo = cursor.key if cursor.key is not None else spec.key_lo
        if lo is not None:
            where.append(f"{k} > %s")
            args.append(lo)
        if spec.key_hi is not None:
            where.append(f"{k} <= %s")
            args.append(spec.key_hi)
        order = k
    else:
        v, k = f"`{version}`", f"`{key}`"
        if spec.ts_lo is not None:
            where.append(f"{v} > %s")
            args.append(spec.ts_lo)
        if spec.ts_hi is not None:
            where.append(f"{v} <= %s")
            args.append(spec.ts_hi)
        if cursor.ts is not None:
            where.append(f"{v} >= %s AND ({v} > %s OR ({v} = %s AND {k} > %s))")
            args.extend([cursor.ts, cursor.ts, cursor.ts, cursor.key])
        order = f"{v}, {k}"
    sql = f"SELECT {cols} FROM `{database}`.`{table}`"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY {order} LIMIT {int(limit)}", args


def select_keys_sql(database: str, table: str, columns: tuple[str, ...], key: str,
                    count: int) -> str:
    """Rows of ``table`` by key (``count`` placeholders), in key order."""
    cols = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * count)
    return (f"SELECT {cols} FROM `{database}`.`{table}` WHERE `{key}` IN ({marks}) "
            f"ORDER BY `{key}`")


def read_batch(conn: pymysql.connections.Connection, sql: str,
               args: list[Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())
