"""Checksums and row reads on a MariaDB/MySQL side of a comparison.

A :class:`SqlSide` is one table as the comparison sees it: its key and version columns
and, per compared target column, the SQL that yields the canonical text
(:mod:`migration.verify.normalise`). A chunk's checksum is one query computed inside the
server: ``SELECT COUNT(*), BIT_XOR(<row hash>) FROM t WHERE <range> [AND <window>]
[AND key NOT IN (<quarantined keys of the range>)]``; no row leaves the server.

A source table whose transforms have no exact SQL form is a *client* side: the same
queries read its rows and Python applies the mapping's transforms and hashes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.config import DbSettings
from migration.db import RETRYABLE_ERRORS, db_error, error_code
from migration.flows.mapping import ColumnMap
from migration.verify.chunks import Range
from migration.verify.normalise import (
    hash_texts,
    quote_ident,
    sql_row_hash,
    sql_text,
    transformed_texts,
    value_text,
)
from migration.verify.window import TimeWindow

KEYS_PER_QUERY = 1000


@dataclass(frozen=True)
class RowInfo:
    """One row as compared: native key, version, canonical texts (None: not fetched), hash."""

    key: Any
    version: int | None
    hash: int
    texts: tuple[str | None, ...] | None = None
    native: tuple[Any, ...] | None = None  # Cassandra: the row's values (for deletes)


@dataclass
class SqlSide:
    settings: DbSettings
    database: str
    table: str
    key: str
    version: str
    columns: tuple[ColumnMap, ...]        # compared columns: .source is this side's column
    types: dict[str, str] = field(default_factory=dict)  # column -> information_schema type
    client: bool = False                  # hash in Python (transforms without SQL form)

    @property
    def where(self) -> str:
        return f"{self.settings.where} database {self.database} table {self.table}"

    @property
    def fqtn(self) -> str:
        return f"{quote_ident(self.database)}.{quote_ident(self.table)}"

    def text_exprs(self) -> list[str]:
        return [sql_text(c.source, self.types.get(c.source, ""), c.transform)
                for c in self.columns]

    def error(self, exc: pymysql.MySQLError) -> Exception:
        return db_error(exc, self.settings, self.database, self.table)


def _in_list(column: str, values: Sequence[Any], negate: bool) -> tuple[str, list[Any]]:
    marks = ", ".join(["%s"] * len(values))
    return f"{column} {'NOT IN' if negate else 'IN'} ({marks})", list(values)


def range_filter(side: SqlSide, chunk: Range | None, window: TimeWindow,
                 exclude: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """``WHERE ...`` of a chunk (key or version range), the window and excluded keys."""
    where: list[str] = []
    args: list[Any] = []
    if chunk is not None:
        column = quote_ident(side.key if chunk.kind == "key" else side.version)
        if chunk.lo is not None:
            where.append(f"{column} > %s")
            args.append(chunk.lo)
        if chunk.hi is not None:
            where.append(f"{column} <= %s")
            args.append(chunk.hi)
    version = quote_ident(side.version)
    if window.since is not None:
        where.append(f"{version} > %s")
        args.append(window.since)
    if window.until is not None:
        where.append(f"{version} <= %s")
        args.append(window.until)
    if exclude:
        clause, values = _in_list(quote_ident(side.key), exclude, negate=True)
        where.append(clause)
        args.extend(values)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.MySQLError) and error_code(exc) in RETRYABLE_ERRORS


def _run(conn: pymysql.connections.Connection, side: SqlSide, sql: str,
         args: list[Any]) -> list[tuple[Any, ...]]:
    """One read; a lost link or a deadlock is retried on a reconnected link (reads only)."""
    retrying = Retrying(retry=retry_if_exception(_retryable), reraise=True,
                        wait=wait_exponential(multiplier=0.2, max=5), stop=stop_after_attempt(5))
    try:
        for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    conn.ping(reconnect=True)
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    return list(cur.fetchall())
    except pymysql.MySQLError as exc:
        raise side.error(exc) from None
    raise AssertionError("unreachable")


def _client_rows(conn: pymysql.connections.Connection, side: SqlSide, where: str,
                 args: list[Any]) -> list[RowInfo]:
    cols = ", ".join(quote_ident(c) for c in (side.key, side.version,
                                              *(c.source for c in side.columns)))
    rows = _run(conn, side, f"SELECT {cols} FROM {side.fqtn}{where}", args)
    out = []
    for row in rows:
        texts = transformed_texts(side.columns, row[2:])
        out.append(RowInfo(row[0], row[1], hash_texts(texts), texts))
    return out


def checksum(conn: pymysql.connections.Connection, side: SqlSide, chunk: Range | None,
             window: TimeWindow, exclude: Sequence[Any] = ()) -> tuple[int, int]:
    """``(rows, BIT_XOR of row hashes)`` of one chunk."""
    where, args = range_filter(side, chunk, window, exclude)
    if side.client:
        count, xor = 0, 0
        for info in _client_rows(conn, side, where, args):
            count += 1
            xor ^= info.hash
        return count, xor
    sql = (f"SELECT COUNT(*), COALESCE(BIT_XOR({sql_row_hash(side.text_exprs())}), 0) "
           f"FROM {side.fqtn}{where}")
    count, xor = _run(conn, side, sql, args)[0]
    return int(count), int(xor)


def row_hashes(conn: pymysql.connections.Connection, side: SqlSide, chunk: Range | None,
               window: TimeWindow, exclude: Sequence[Any] = ()) -> list[RowInfo]:
    """Key, version and hash of every row of a chunk (the drill-down's first step)."""
    where, args = range_filter(side, chunk, window, exclude)
    if side.client:
        return _client_rows(conn, side, where, args)
    sql = (f"SELECT {quote_ident(side.key)}, {quote_ident(side.version)}, "
           f"{sql_row_hash(side.text_exprs())} FROM {side.fqtn}{where}")
    return [RowInfo(r[0], r[1], int(r[2])) for r in _run(conn, side, sql, args)]


def _batches(values: Sequence[Any], size: int = KEYS_PER_QUERY) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def rows_by_key(conn: pymysql.connections.Connection, side: SqlSide,
                keys: Sequence[Any]) -> dict[str, RowInfo]:
    """Canonical texts of the rows with these keys (any version), by normalised key."""
    out: dict[str, RowInfo] = {}
    key = quote_ident(side.key)
    for batch in _batches(list(keys)):
        clause, args = _in_list(key, batch, negate=False)
        if side.client:
            infos = _client_rows(conn, side, f" WHERE {clause}", args)
        else:
            exprs = ", ".join(side.text_exprs())
            rows = _run(conn, side, f"SELECT {key}, {quote_ident(side.version)}, {exprs} "
                                    f"FROM {side.fqtn} WHERE {clause}", args)
            infos = [RowInfo(r[0], r[1], hash_texts(r[2:]), tuple(r[2:])) for r in rows]
        for info in infos:
            out[str(value_text(info.key))] = info
    return out


def source_rows(conn: pymysql.connections.Connection, side: SqlSide, columns: Sequence[str],
                keys: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Raw rows (``columns``, e.g. a TableFlow's source_columns) for a repair."""
    out: list[tuple[Any, ...]] = []
    cols = ", ".join(quote_ident(c) for c in columns)
    for batch in _batches(list(keys)):
        clause, args = _in_list(quote_ident(side.key), batch, negate=False)
        out.extend(_run(conn, side, f"SELECT {cols} FROM {side.fqtn} WHERE {clause}", args))
    return out


def current_versions(conn: pymysql.connections.Connection, side: SqlSide,
                     keys: Sequence[Any]) -> dict[str, tuple[Any, int]]:
    """normalised key -> (native key, current version) of the rows that exist."""
    out: dict[str, tuple[Any, int]] = {}
    for batch in _batches(list(keys)):
        clause, args = _in_list(quote_ident(side.key), batch, negate=False)
        for key, version in _run(conn, side, f"SELECT {quote_ident(side.key)}, "
                                             f"{quote_ident(side.version)} FROM {side.fqtn} "
                                             f"WHERE {clause}", args):
            out[str(value_text(key))] = (key, int(version))
    return out


def key_bounds(conn: pymysql.connections.Connection, side: SqlSide, column: str,
               window: TimeWindow) -> tuple[Any, Any]:
    where, args = range_filter(side, None, window)
    col = quote_ident(column)
    lo, hi = _run(conn, side, f"SELECT MIN({col}), MAX({col}) FROM {side.fqtn}{where}", args)[0]
    return lo, hi


def count_rows(conn: pymysql.connections.Connection, side: SqlSide, window: TimeWindow) -> int:
    where, args = range_filter(side, None, window)
    return int(_run(conn, side, f"SELECT COUNT(*) FROM {side.fqtn}{where}", args)[0][0])


def next_boundary(conn: pymysql.connections.Connection, side: SqlSide, lo: Any,
                  rows: int) -> Any:
    """The key ``rows`` rows after ``lo`` (None when fewer remain): an index-only nibble."""
    key = quote_ident(side.key)
    sql = f"SELECT {key} FROM {side.fqtn}"
    args: list[Any] = []
    if lo is not None:
        sql += f" WHERE {key} > %s"
        args.append(lo)
    found = _run(conn, side, f"{sql} ORDER BY {key} LIMIT 1 OFFSET {int(rows) - 1}", args)
    return found[0][0] if found else None


def threads_running(conn: pymysql.connections.Connection, side: SqlSide) -> int:
    rows = _run(conn, side, "SHOW GLOBAL STATUS LIKE 'Threads_running'", [])
    return int(rows[0][1]) if rows else 0
