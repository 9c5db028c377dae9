"""Checksums and row reads on a MariaDB/MySQL side of a comparison.

A :class:`SqlSide` is one table as the comparison sees it: its key columns (one or
several), its version column and codec (none for a ``version: none`` table: its rows are
read by key only and carry no version), and, per compared target column, the SQL that
yields the canonical text (:mod:`migration.rowhash`). A chunk's checksum is one
query computed inside the server: ``SELECT COUNT(*), BIT_XOR(<row hash>) FROM t WHERE
<range> [AND <window>] [AND (keys) NOT IN (<quarantined keys of the range>)]``; no row
leaves the server.

Keys travel as tuples (the flow's ``key:`` order) and become SQL through
:mod:`migration.engine.keys` (keyset predicates MariaDB walks as index ranges); versions
are compared with a value of the column's own type (:meth:`VersionCodec.param`) and read
back as ledger ints (:meth:`VersionCodec.ledger`), so a TIMESTAMP or DATETIME version is
compared through its index and windows and version ranges are plain ints.

A source table whose transforms have no exact SQL form is a *client* side: the same
queries read its rows and Python applies the mapping's transforms and hashes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.canonical import key_text
from migration.config import DbSettings
from migration.db import RETRYABLE_ERRORS, db_error, error_code
from migration.engine import keys as sqlkeys
from migration.engine.keys import Key
from migration.engine.reader import source_select
from migration.engine.versions import VersionCodec
from migration.enums import VersionUnit
from migration.flows.mapping import ColumnMap
from migration.rowhash import (
    hash_texts,
    quote_ident,
    sql_hash_operand,
    sql_row_hash,
    sql_text,
    transformed_texts,
)
from migration.verify.chunks import Range, as_key
from migration.verify.window import TimeWindow

KEYS_PER_QUERY = 1000
# an integer version compared as it is (epoch ms): what a side gets without a codec
INTEGER_VERSION = VersionCodec("", "bigint", VersionUnit.MS)


@dataclass(frozen=True)
class RowInfo:
    """One row as compared: native key tuple, ledger version, canonical texts (None: not
    fetched), hash."""

    key: Key
    version: int | None
    hash: int
    texts: tuple[str | None, ...] | None = None
    native: tuple[Any, ...] | None = None  # Cassandra: the row's values (for deletes)


@dataclass
class SqlSide:
    settings: DbSettings
    database: str
    table: str
    keys: tuple[str, ...]                 # key columns of this side, flow order
    version: str                          # "" for a table without one (``version: none``)
    columns: tuple[ColumnMap, ...]        # compared columns: .source is this side's column
    types: dict[str, str] = field(default_factory=dict)  # column -> information_schema type
    client: bool = False                  # hash in Python (transforms without SQL form)
    # the version column's (ledger values); None without a version column
    codec: VersionCodec | None = INTEGER_VERSION

    @property
    def where(self) -> str:
        return f"{self.settings.where} database {self.database} table {self.table}"

    @property
    def fqtn(self) -> str:
        return f"{quote_ident(self.database)}.{quote_ident(self.table)}"

    @property
    def width(self) -> int:
        return len(self.keys)

    @property
    def head(self) -> int:
        """Columns before the compared ones in a read: the keys, and the version if any."""
        return self.width + (1 if self.version else 0)

    def ledger(self, value: Any) -> int | None:
        """A version column's value as a ledger value (None without a version column)."""
        if not self.version or self.codec is None:
            return None
        return self.codec.ledger(value)

    def version_of(self, row: Sequence[Any]) -> int | None:
        """The ledger version of a read row (None without a version column)."""
        return self.ledger(row[self.width]) if self.version else None

    def version_param(self, value: int) -> Any:
        """A ledger version as a value of the column's own type."""
        if not self.version or self.codec is None:
            raise ValueError(f"{self.where} has no version column")
        return self.codec.param(value)

    def text_exprs(self) -> list[str]:
        """SQL of the compared columns' canonical texts (a row diff shows them)."""
        return [sql_text(c.source, self.types.get(c.source, ""), c.transform)
                for c in self.columns]

    def hash_operands(self) -> list[str]:
        """What the row hash is made of: the same texts, a column QUOTE() takes as is
        given as is (rowhash.sql_hash_operand)."""
        return [sql_hash_operand(c.source, self.types.get(c.source, ""), c.transform)
                for c in self.columns]

    def error(self, exc: pymysql.MySQLError) -> Exception:
        return db_error(exc, self.settings, self.database, self.table)


def range_filter(side: SqlSide, chunk: Range | None, window: TimeWindow,
                 exclude: Sequence[Key] = ()) -> tuple[str, list[Any]]:
    """``WHERE ...`` of a chunk (key or version range), the window (ledger units) and
    excluded keys."""
    where: list[str] = []
    args: list[Any] = []

    def add(clause: tuple[str, list[Any]]) -> None:
        where.append(f"({clause[0]})")
        args.extend(clause[1])

    version = quote_ident(side.version) if side.version else ""
    if chunk is not None and chunk.kind == "key":
        if chunk.lo is not None:
            add(sqlkeys.after(side.keys, as_key(chunk.lo)))
        if chunk.hi is not None:
            add(sqlkeys.up_to(side.keys, as_key(chunk.hi)))
    elif chunk is not None:
        if chunk.lo is not None:
            add((f"{version} > %s", [side.version_param(chunk.lo)]))
        if chunk.hi is not None:
            add((f"{version} <= %s", [side.version_param(chunk.hi)]))
    if window.since is not None:
        add((f"{version} > %s", [side.version_param(window.since)]))
    if window.until is not None:
        add((f"{version} <= %s", [side.version_param(window.until)]))
    if exclude:
        add(sqlkeys.among(side.keys, exclude, negate=True))
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


def _head(side: SqlSide) -> str:
    """The key columns and the version if any: the first ``side.head`` columns of a read."""
    return sqlkeys.select_list((*side.keys, *((side.version,) if side.version else ())))


def _client_rows(conn: pymysql.connections.Connection, side: SqlSide, where: str,
                 args: list[Any]) -> list[RowInfo]:
    cols = ", ".join([_head(side), source_select([c.source for c in side.columns],
                                                 side.types)])
    rows = _run(conn, side, f"SELECT {cols} FROM {side.fqtn}{where}", args)
    width, head = side.width, side.head
    out = []
    for row in rows:
        texts = transformed_texts(side.columns, row[head:])
        out.append(RowInfo(tuple(row[:width]), side.version_of(row), hash_texts(texts), texts))
    return out


def checksum(conn: pymysql.connections.Connection, side: SqlSide, chunk: Range | None,
             window: TimeWindow, exclude: Sequence[Key] = ()) -> tuple[int, int]:
    """``(rows, BIT_XOR of row hashes)`` of one chunk."""
    where, args = range_filter(side, chunk, window, exclude)
    if side.client:
        count, xor = 0, 0
        for info in _client_rows(conn, side, where, args):
            count += 1
            xor ^= info.hash
        return count, xor
    sql = (f"SELECT COUNT(*), COALESCE(BIT_XOR({sql_row_hash(side.hash_operands())}), 0) "
           f"FROM {side.fqtn}{where}")
    count, xor = _run(conn, side, sql, args)[0]
    return int(count), int(xor)


def row_hashes(conn: pymysql.connections.Connection, side: SqlSide, chunk: Range | None,
               window: TimeWindow, exclude: Sequence[Key] = ()) -> list[RowInfo]:
    """Key, version and hash of every row of a chunk (the drill-down's first step)."""
    where, args = range_filter(side, chunk, window, exclude)
    if side.client:
        return _client_rows(conn, side, where, args)
    sql = (f"SELECT {_head(side)}, {sql_row_hash(side.hash_operands())} "
           f"FROM {side.fqtn}{where}")
    width, head = side.width, side.head
    return [RowInfo(tuple(r[:width]), side.version_of(r), int(r[head]))
            for r in _run(conn, side, sql, args)]


def _batches(values: Sequence[Any], size: int = KEYS_PER_QUERY) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def rows_by_key(conn: pymysql.connections.Connection, side: SqlSide,
                keys: Sequence[Key]) -> dict[str, RowInfo]:
    """Canonical texts of the rows with these keys (any version), by key text."""
    out: dict[str, RowInfo] = {}
    width, head = side.width, side.head
    for batch in _batches(list(keys)):
        clause, args = sqlkeys.among(side.keys, batch)
        if side.client:
            infos = _client_rows(conn, side, f" WHERE {clause}", args)
        else:
            exprs = ", ".join(side.text_exprs())
            rows = _run(conn, side, f"SELECT {_head(side)}, {exprs} "
                                    f"FROM {side.fqtn} WHERE {clause}", args)
            infos = [RowInfo(tuple(r[:width]), side.version_of(r), hash_texts(r[head:]),
                             tuple(r[head:])) for r in rows]
        for info in infos:
            out[key_text(info.key)] = info
    return out


def source_rows(conn: pymysql.connections.Connection, side: SqlSide, columns: Sequence[str],
                keys: Sequence[Key]) -> list[tuple[Any, ...]]:
    """Raw rows (``columns``, e.g. a TableFlow's source_columns) for a repair."""
    out: list[tuple[Any, ...]] = []
    cols = source_select(columns, side.types)  # FLOAT exactly, as the rounds read it
    for batch in _batches(list(keys)):
        clause, args = sqlkeys.among(side.keys, batch)
        out.extend(_run(conn, side, f"SELECT {cols} FROM {side.fqtn} WHERE {clause}", args))
    return out


def current_versions(conn: pymysql.connections.Connection, side: SqlSide,
                     keys: Sequence[Key]) -> dict[str, tuple[Key, int]]:
    """key text -> (native key, current ledger version) of the rows that exist (a row
    whose version is NULL or not an instant has none: it is left out). A table without a
    version column: 0 for every row, the version furet.quarantine records its rows with."""
    out: dict[str, tuple[Key, int]] = {}
    width = side.width
    for batch in _batches(list(keys)):
        clause, args = sqlkeys.among(side.keys, batch)
        for row in _run(conn, side, f"SELECT {_head(side)} FROM {side.fqtn} WHERE {clause}",
                        args):
            version = side.version_of(row) if side.version else 0
            if version is not None:
                native = tuple(row[:width])
                out[key_text(native)] = (native, version)
    return out


def bounds(conn: pymysql.connections.Connection, side: SqlSide, kind: str,
           window: TimeWindow) -> tuple[Any, Any]:
    """MIN and MAX of the version (ledger values) or of a one-column key, in the window."""
    where, args = range_filter(side, None, window)
    if kind == "version":
        if not side.version or side.codec is None:
            raise ValueError(f"{side.where} has no version column")
        col = quote_ident(side.version)
    elif side.width == 1:
        col = quote_ident(side.keys[0])
    else:
        raise ValueError("the bounds of a composite key are not one column's")
    lo, hi = _run(conn, side, f"SELECT MIN({col}), MAX({col}) FROM {side.fqtn}{where}", args)[0]
    if kind == "version":
        return side.ledger(lo), side.ledger(hi)
    return lo, hi


def count_rows(conn: pymysql.connections.Connection, side: SqlSide, window: TimeWindow) -> int:
    where, args = range_filter(side, None, window)
    return int(_run(conn, side, f"SELECT COUNT(*) FROM {side.fqtn}{where}", args)[0][0])


def next_boundary(conn: pymysql.connections.Connection, side: SqlSide, lo: Key | None,
                  rows: int) -> Key | None:
    """The key ``rows`` rows after ``lo`` (None when fewer remain): an index-only keyset
    nibble, ``WHERE (keys) > lo ORDER BY keys LIMIT 1 OFFSET rows - 1``."""
    sql = f"SELECT {sqlkeys.select_list(side.keys)} FROM {side.fqtn}"
    args: list[Any] = []
    if lo is not None:
        clause, args = sqlkeys.after(side.keys, lo)
        sql += f" WHERE {clause}"
    found = _run(conn, side, f"{sql} ORDER BY {sqlkeys.order_by(side.keys)} "
                             f"LIMIT 1 OFFSET {int(rows) - 1}", args)
    return tuple(found[0]) if found else None


def threads_running(conn: pymysql.connections.Connection, side: SqlSide) -> int:
    rows = _run(conn, side, "SHOW GLOBAL STATUS LIKE 'Threads_running'", [])
    return int(rows[0][1]) if rows else 0
