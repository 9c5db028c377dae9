"""Keyset reads of one batch of a chunk from the source (never OFFSET, never a full scan).

- key chunk: ``key > cursor AND key <= hi ORDER BY key`` on the key tuple;
- window chunk: ``version in (lo, hi]`` after the compound cursor ``(version, key)``, so
  rows sharing one version (one millisecond, or one second of a DATETIME(0)) are neither
  skipped nor read twice across batches, however many there are.

Versions are ledger values, compared through the table's codec (the column against a
value of its own type); keys are tuples (:mod:`migration.engine.keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.engine import keys as k
from migration.engine.plan import ChunkSpec
from migration.engine.versions import VersionCodec


@dataclass(frozen=True)
class Cursor:
    ts: int | None = None          # ledger value of the last row's version
    key: k.Key | None = None       # the last row's key tuple


def select_batch_sql(database: str, table: str, columns: Sequence[str],
                     key_columns: Sequence[str], codec: VersionCodec | None, spec: ChunkSpec,
                     cursor: Cursor, limit: int,
                     select: str | None = None) -> tuple[str, list[Any]]:
    """The batch's keyset read; ``select`` replaces the column list (server-built literals)."""
    cols = select or k.select_list(columns)
    where: list[str] = []
    args: list[Any] = []

    def add(clause: tuple[str, list[Any]]) -> None:
        where.append(clause[0] if " OR " not in clause[0] else f"({clause[0]})")
        args.extend(clause[1])

    if spec.kind == "key":
        chunk_keys = spec.columns
        lo = cursor.key if cursor.key is not None else spec.key_lo
        if lo is not None:
            add(k.after(chunk_keys, lo))
        if spec.key_hi is not None:
            add(k.up_to(chunk_keys, spec.key_hi))
        order = k.order_by(chunk_keys)
    else:
        assert codec is not None, "a window chunk needs a version column"
        v = k.quote(codec.column)
        if spec.ts_lo is not None:
            where.append(f"{v} > %s")
            args.append(codec.param(spec.ts_lo))
        if spec.ts_hi is not None:
            where.append(f"{v} <= %s")
            args.append(codec.param(spec.ts_hi))
        if cursor.ts is not None and cursor.key is not None:
            c = codec.param(cursor.ts)
            key_sql, key_args = k.after(key_columns, cursor.key)
            where.append(f"{v} >= %s AND ({v} > %s OR ({v} = %s AND ({key_sql})))")
            args.extend([c, c, c, *key_args])
        order = f"{v}, {k.order_by(key_columns)}"
    sql = f"SELECT {cols} FROM {k.quote(database)}.{k.quote(table)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY {order} LIMIT {int(limit)}", args


def source_select(columns: Sequence[str], types: dict[str, str]) -> str:
    """The select list of source rows as values: FLOAT columns are read as DOUBLE, as the
    text protocol prints a FLOAT with 6 digits (3.14159 for 3.1415927) and writing that
    back would change the stored value; the double holds the float exactly."""
    return ", ".join(f"CAST({k.quote(c)} AS DOUBLE)" if types.get(c) == "float" else k.quote(c)
                     for c in columns)


def select_keys_sql(database: str, table: str, columns: Sequence[str],
                    key_columns: Sequence[str], keys: Sequence[k.Key],
                    select: str | None = None) -> tuple[str, list[Any]]:
    """Rows of ``table`` with these keys, in key order."""
    clause, args = k.among(key_columns, keys)
    return (f"SELECT {select or k.select_list(columns)} FROM "
            f"{k.quote(database)}.{k.quote(table)} "
            f"WHERE {clause} ORDER BY {k.order_by(key_columns)}", args)


def next_key_boundary(database: str, table: str, key_columns: Sequence[str],
                      lo: k.Key | None, rows: int) -> tuple[str, list[Any]]:
    """The key ``rows`` rows after ``lo``: an index-only nibble (round 1's chunk bounds
    for keys other than one integer column, without holding the table's keys)."""
    sql = f"SELECT {k.select_list(key_columns)} FROM {k.quote(database)}.{k.quote(table)}"
    args: list[Any] = []
    if lo is not None:
        clause, args = k.after(key_columns, lo)
        sql += f" WHERE {clause}"
    return (f"{sql} ORDER BY {k.order_by(key_columns)} LIMIT 1 OFFSET {max(0, rows - 1)}",
            args)


def read_batch(conn: pymysql.connections.Connection, sql: str,
               args: list[Any]) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())
