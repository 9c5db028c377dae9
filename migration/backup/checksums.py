"""A backup's chunk checksums: taken at the backup's point, recorded as JSON, compared with a
restored server by furet's verify machinery (design issue 13, section 4).

- **Identity view**: every base table of the backed-up databases, every column (generated
  ones included) compared with itself, key = the primary key, no version column (the
  ``version: none`` path of verify). The row hash is :mod:`migration.rowhash`'s, with one
  exception: binary columns (BINARY/VARBINARY/BLOB, BIT, spatial) are hashed as ``HEX(col)``
  rather than ``CONVERT(col USING utf8mb4)``, which turns every invalid UTF-8 byte into
  ``?``: two different byte strings would hash alike and a corrupted blob would go unseen
  (``lf_runtime.customer.city`` holds raw legacy bytes).
- **Tables without a primary key** cannot be cut into key ranges: each is one whole-table
  chunk, recorded with ``key: []`` and ``whole_table: true``. Its rows have no identity,
  so two identical rows cancel in BIT_XOR; the row count still catches one lost or added.
- **Backup time**: :func:`take_checksums` runs :meth:`ChunkPlanner.adaptive` (chunks sized
  to ~``chunk_time`` seconds) and :meth:`MariaDbSide.checksum` on ONE connection, the
  session whose consistent snapshot is the backup's point (:class:`PinnedConnections`;
  the session is a :class:`Snapshot`, shared by the legacy and the Galera backups): every
  read of the table, its bounds included, sees that point.
- **Restore time**: :class:`RecordedSide` answers the :class:`~migration.verify.sides.Side`
  protocol from the document (no drill-down: the backed-up rows are not kept apart from the
  dump), the restored server is a :class:`~migration.verify.sides.MariaDbSide`, and
  :class:`~migration.verify.compare.Comparer` runs unchanged over
  :meth:`ChunkPlanner.fixed` of the recorded ranges. The first and last recorded ranges are
  open, so a restored row outside the backup's key span still falls in a chunk.

Invariant: a restore that differs from the backup shows as a mismatch of count or BIT_XOR
in the chunk that holds the difference; a mismatch names the database, the table and the
chunk range. A missing or an extra table or database is named too.
"""

from __future__ import annotations

import datetime
import decimal
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.config import DbSettings
from migration.db import connect, connection, db_error, query
from migration.engine.keys import Key
from migration.engine.writer import BatchOutcome
from migration.errors import FuretError, context
from migration.flows.mapping import ColumnMap, TableFlow, TargetMap
from migration.flows.source_schema import BINARY_TYPES, INTEGER_TYPES, Table, read_database
from migration.progress import Silent
from migration.rowhash import quote_ident, sql_hash_operand, sql_text
from migration.verify.chunks import Range
from migration.verify.compare import Comparer
from migration.verify.drilldown import Classified
from migration.verify.mysql_checksum import RowInfo, SqlSide
from migration.verify.planner import Chunk, ChunkPlanner, Quarantine
from migration.verify.report import TableReport
from migration.verify.sides import Connections, MariaDbSide, Pair, Reads
from migration.verify.window import Sampler, TimeWindow

# /2: the row hash quotes its fields (migration.rowhash); /1 documents hash otherwise
FORMAT = "furet-backup-checksums/2"
HEX_TYPES = BINARY_TYPES | frozenset({
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection"})
CHUNK_TIME = 0.3        # seconds per checksum query, as verify's default
INITIAL_CHUNK = 5000    # keys (rows for text keys) in a table's first chunk


# --- the recorded document ------------------------------------------------------------


@dataclass(frozen=True)
class Coordinates:
    """A binary log position: the backup's point."""

    file: str
    position: int

    @property
    def label(self) -> str:
        return f"{self.file}:{self.position}"


@dataclass(frozen=True)
class RecordedChunk:
    """Rows whose key is in ``(lo, hi]`` (None: open): an int for a one-column integer key,
    else the key tuple; their count and the BIT_XOR of their row hashes."""

    no: int
    lo: Any
    hi: Any
    count: int
    xor: int

    @property
    def rng(self) -> Range:
        return Range(self.no, "key", self.lo, self.hi)


@dataclass(frozen=True)
class RecordedTable:
    database: str
    table: str
    keys: tuple[str, ...]                   # the primary key; () = one whole-table chunk
    columns: tuple[tuple[str, str], ...]    # (name, information_schema DATA_TYPE), in order
    chunks: tuple[RecordedChunk, ...] = ()

    @classmethod
    def of(cls, table: Table) -> RecordedTable:
        return cls(table.database, table.name, tuple(table.primary_key),
                   tuple((c.name, c.data_type) for c in table.columns))

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"

    @property
    def whole_table(self) -> bool:
        return not self.keys

    @property
    def numeric(self) -> bool:
        """A one-column integer key: cut arithmetically, its bounds are ints."""
        types = dict(self.columns)
        return len(self.keys) == 1 and types.get(self.keys[0]) in INTEGER_TYPES

    @property
    def flow(self) -> TableFlow:
        """The identity view as verify takes it: every column to itself, no version."""
        columns = tuple(ColumnMap(name, name) for name, _ in self.columns)
        return TableFlow(self.table, self.keys, "", (TargetMap(self.table, columns),))

    def side(self, settings: DbSettings) -> IdentitySide:
        """This table on a server (the backed-up one, or a restored copy)."""
        return IdentitySide(settings, self.database, self.table, self.keys, "",
                            tuple(ColumnMap(name, name) for name, _ in self.columns),
                            dict(self.columns), codec=None)


@dataclass(frozen=True)
class Checksums:
    server: str                        # legacy 10.0.0.11:3306
    taken_at: str                      # ISO, UTC
    coordinates: Coordinates | None
    databases: tuple[str, ...]
    tables: tuple[RecordedTable, ...]

    @property
    def chunks(self) -> int:
        return sum(len(t.chunks) for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(c.count for t in self.tables for c in t.chunks)

    def to_json(self) -> str:
        databases: dict[str, dict[str, Any]] = {db: {} for db in self.databases}
        for t in self.tables:
            databases.setdefault(t.database, {})[t.table] = {
                "key": list(t.keys), "whole_table": t.whole_table,
                "columns": [list(c) for c in t.columns],
                "chunks": [{"no": c.no, "lo": _bound_json(c.lo), "hi": _bound_json(c.hi),
                            "count": c.count, "xor": c.xor} for c in t.chunks]}
        coordinates = None if self.coordinates is None else {
            "file": self.coordinates.file, "position": self.coordinates.position}
        return json.dumps({"format": FORMAT, "server": self.server, "taken_at": self.taken_at,
                           "coordinates": coordinates, "databases": databases},
                          ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "checksums") -> Checksums:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise FuretError(f"{where}: not a furet checksums document ({exc})") from None
        if not isinstance(raw, dict) or "format" not in raw:
            raise FuretError(f"{where}: not a furet checksums document (no format)")
        if raw["format"] != FORMAT:
            raise FuretError(f"{where}: format {raw['format']!r}, expected {FORMAT!r} "
                             "(row hashes of another furet version: take a new backup)")
        try:
            tables = []
            for db, entries in raw["databases"].items():
                for name, t in entries.items():
                    tables.append(RecordedTable(
                        db, name, tuple(t["key"]), tuple((str(n), str(k)) for n, k in t["columns"]),
                        tuple(RecordedChunk(int(c["no"]), _bound_value(c["lo"]),
                                            _bound_value(c["hi"]), int(c["count"]), int(c["xor"]))
                              for c in t["chunks"])))
            coordinates = raw.get("coordinates")
            return cls(str(raw["server"]), str(raw["taken_at"]),
                       None if coordinates is None else
                       Coordinates(str(coordinates["file"]), int(coordinates["position"])),
                       tuple(raw["databases"]), tuple(tables))
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise FuretError(f"{where}: not a furet checksums document ({exc!r})") from None


def _value_json(value: Any) -> Any:
    """A key value as JSON, its Python type kept (a tagged object for what JSON lacks)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"time_us": value // datetime.timedelta(microseconds=1)}
    if isinstance(value, float):
        return {"float": value.hex()}
    raise FuretError(f"a key value of type {type(value).__name__} cannot be recorded")


def _value_of(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    (tag, text), = raw.items()
    if tag == "hex":
        return bytes.fromhex(text)
    if tag == "decimal":
        return decimal.Decimal(text)
    if tag == "datetime":
        return datetime.datetime.fromisoformat(text)
    if tag == "date":
        return datetime.date.fromisoformat(text)
    if tag == "time_us":
        return datetime.timedelta(microseconds=int(text))
    if tag == "float":
        return float.fromhex(text)
    raise ValueError(f"unknown key value tag {tag!r}")


def _bound_json(bound: Any) -> Any:
    """None, an int (one integer key column) or a key tuple (a JSON list)."""
    if isinstance(bound, tuple):
        return [_value_json(v) for v in bound]
    return _value_json(bound)


def _bound_value(raw: Any) -> Any:
    if isinstance(raw, list):
        return tuple(_value_of(v) for v in raw)
    return _value_of(raw)


# --- the identity view on a server ------------------------------------------------------


@dataclass
class IdentitySide(SqlSide):
    """A table compared with itself: rowhash's texts, binary columns as HEX (see the
    module docstring)."""

    def text_exprs(self) -> list[str]:
        return self._exprs(sql_text)

    def hash_operands(self) -> list[str]:
        return self._exprs(sql_hash_operand)

    def _exprs(self, plain: Callable[[str, str], str]) -> list[str]:
        out = []
        for column in self.columns:
            kind = self.types.get(column.source, "")
            name = quote_ident(column.source)
            if kind in HEX_TYPES:
                out.append(f"HEX({name})")
            elif kind == "bit":
                out.append(f"CAST({name} + 0 AS CHAR)")
            else:
                out.append(plain(column.source, kind))
        return out


class PinnedConnections(Connections):
    """Every read on one connection (the snapshot's session), which its owner closes."""

    def __init__(self, conn: pymysql.connections.Connection) -> None:
        super().__init__()
        self.conn = conn

    def get(self, settings: DbSettings) -> pymysql.connections.Connection:
        return self.conn

    def own(self, settings: DbSettings) -> pymysql.connections.Connection:
        return self.conn

    def close(self) -> None:
        return None


def take_checksums(conn: pymysql.connections.Connection, settings: DbSettings,
                   tables: Sequence[Table], *, chunk_time: float = CHUNK_TIME,
                   initial_chunk: int = INITIAL_CHUNK) -> tuple[RecordedTable, ...]:
    """The chunk checksums of ``tables``, every read on ``conn`` (whose open transaction
    is the backup's point)."""
    reads = Reads(workers=1, conns=PinnedConnections(conn))
    planner = ChunkPlanner(Sampler(1.0), chunk_time, initial_chunk)
    out = []
    for table in tables:
        recorded = RecordedTable.of(table)
        side = MariaDbSide(recorded.side(settings), reads, recorded.flow)
        with context(database=table.database, table=table.name, step="backup checksums"):
            if recorded.whole_table:
                chunks = planner.fixed([Range(0, "key")], Quarantine(), TimeWindow())
                learn = None
            else:
                chunks, learn = planner.adaptive(side.span(), TimeWindow(), recorded.numeric,
                                                 Quarantine())
            found = []
            for chunk in chunks:
                started = time.monotonic()
                chunk.source = side.checksum(chunk)
                chunk.report.seconds = time.monotonic() - started
                if learn is not None:
                    learn(chunk)
                found.append(RecordedChunk(chunk.rng.no, chunk.rng.lo, chunk.rng.hi,
                                           *chunk.source))
        out.append(RecordedTable(recorded.database, recorded.table, recorded.keys,
                                 recorded.columns, tuple(found)))
    return tuple(out)


def start_snapshot(conn: pymysql.connections.Connection) -> None:
    query(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")


@dataclass(frozen=True)
class Snapshot:
    """The checksum session of a backup: a consistent snapshot (REPEATABLE READ) that is the
    backup's point, its connection id, and the tables' definitions read in it."""

    conn: pymysql.connections.Connection
    settings: DbSettings
    session: int
    tables: tuple[Table, ...]

    @classmethod
    def open(cls, settings: DbSettings, databases: Sequence[str],
             start: Callable[[pymysql.connections.Connection], None] = start_snapshot
             ) -> Snapshot:
        """``start`` opens the snapshot (:func:`start_snapshot`; a Galera node's waits for
        the node to catch up first)."""
        conn = connect(settings, sql_mode="")
        try:
            query(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            start(conn)
            session = int(query(conn, "SELECT CONNECTION_ID()")[0][0])
            tables = tuple(t for db in databases
                           for t in read_database(conn, settings, db).tables.values())
        except pymysql.MySQLError as exc:
            conn.close()
            raise db_error(exc, settings) from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, settings, session, tables)

    def checksums(self, *, chunk_time: float = CHUNK_TIME,
                  initial_chunk: int = INITIAL_CHUNK) -> tuple[RecordedTable, ...]:
        """Every table's checksums in the snapshot (:func:`take_checksums`), then the snapshot
        ended; refused when the session reconnected meanwhile (it lost the snapshot)."""
        recorded = take_checksums(self.conn, self.settings, self.tables,
                                  chunk_time=chunk_time, initial_chunk=initial_chunk)
        try:
            same = int(query(self.conn, "SELECT CONNECTION_ID()")[0][0]) == self.session
            query(self.conn, "COMMIT")
        except pymysql.MySQLError as exc:
            raise db_error(exc, self.settings) from None
        if not same:
            raise FuretError(f"{self.settings.where}: the checksum session reconnected and "
                             "lost the backup's snapshot; nothing kept, run the backup again")
        return recorded

    def close(self) -> None:
        self.conn.close()


# --- restore time -----------------------------------------------------------------------


class RecordedSide:
    """A backed-up table as its recorded checksums: the :class:`Side` of a comparison with
    a restored copy. It reads nothing and repairs nothing."""

    def __init__(self, table: RecordedTable) -> None:
        self.table = table
        self.sums = {c.no: (c.count, c.xor) for c in table.chunks}

    @property
    def where(self) -> str:
        return f"backup checksums database {self.table.database} table {self.table.table}"

    def mode(self, source: MariaDbSide) -> str:
        return "recorded"

    @property
    def identity(self) -> tuple[int, ...] | None:
        return None

    def checksum(self, chunk: Chunk) -> tuple[int, int]:
        try:
            return self.sums[chunk.rng.no]
        except KeyError:
            raise FuretError(f"{self.table.name}: no recorded chunk {chunk.rng.no} "
                             f"{chunk.rng.label}") from None

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        return 0.0

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: MariaDbSide,
              quarantine: Quarantine) -> list[Classified]:
        return [Classified() for _ in bad]  # the backed-up rows are in the dump only

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        return {}

    def _refuse(self) -> FuretError:
        return FuretError(f"{self.table.name}: recorded checksums cannot be repaired")

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        raise self._refuse()

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        raise self._refuse()

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        raise self._refuse()


@dataclass(frozen=True)
class Mismatch:
    table: RecordedTable
    chunk: RecordedChunk
    restored: tuple[int, int]

    @property
    def line(self) -> str:
        where = ("whole table (no primary key)" if self.table.whole_table
                 else f"chunk {self.chunk.rng.label}")
        return (f"{self.table.name} {where}: restored {self.restored[0]} rows (checksum "
                f"{self.restored[1]:016x}), backup {self.chunk.count} rows (checksum "
                f"{self.chunk.xor:016x})")


def compare_table(comparer: Comparer, live: MariaDbSide, table: RecordedTable) -> list[Mismatch]:
    """``live`` (a restored copy of ``table``) over the recorded ranges: the chunks whose
    count or BIT_XOR differ. RecordedSide has no drill-down, so Comparer marks such a chunk
    ``transient``; the difference of the two checksums is what counts here."""
    tf = table.flow
    pair = Pair(tf, tf.targets[0], live, RecordedSide(table),
                tuple(name for name, _ in table.columns), table.numeric)
    report = TableReport(table.table, table.table, ", ".join(table.keys), "", "recorded",
                         version_type="none")
    done, _ = comparer.compare(pair, report, fixed=[c.rng for c in table.chunks])
    by_no = {c.no: c for c in table.chunks}
    return [Mismatch(table, by_no[c.rng.no], c.source) for c in done if c.source != c.target]


def table_problems(recorded: Checksums, present: Mapping[str, set[str]],
                   where: str) -> list[str]:
    """Databases and tables of the backup missing from ``present`` (database -> its base
    tables on the restored server ``where``), and tables there the backup has not."""
    problems = [f"database {db}: in the backup, missing from {where}"
                for db in sorted(recorded.databases) if db not in present]
    backed = {(t.database, t.table) for t in recorded.tables}
    there = {(db, t) for db, tables in present.items() if db in recorded.databases
             for t in tables}
    problems += [f"{db}.{t}: in the backup, missing from {where}"
                 for db, t in sorted(backed - there) if db in present]
    problems += [f"{db}.{t}: on {where}, not in the backup" for db, t in sorted(there - backed)]
    return problems


def base_tables(settings: DbSettings, databases: Sequence[str]) -> dict[str, set[str]]:
    """database -> its base tables, for the databases of ``databases`` that exist."""
    marks = ", ".join(["%s"] * len(databases))
    try:
        with connection(settings) as conn:
            schemata = query(conn, "SELECT schema_name FROM information_schema.schemata "
                                   f"WHERE schema_name IN ({marks})", tuple(databases))
            rows = query(conn, "SELECT table_schema, table_name FROM information_schema.tables "
                               f"WHERE table_type = 'BASE TABLE' AND table_schema IN ({marks})",
                         tuple(databases))
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    present: dict[str, set[str]] = {str(r[0]): set() for r in schemata}
    for db, name in rows:
        present[str(db)].add(str(name))
    return present


def compare_with_server(recorded: Checksums, settings: DbSettings, *,
                        workers: int = 2) -> list[str]:
    """Every difference between ``settings``'s server and the recorded checksums, one line
    each (empty: equal): missing and extra tables, then mismatching chunks."""
    present = base_tables(settings, recorded.databases)
    problems = table_problems(recorded, present, settings.where)
    reads = Reads(workers=workers)
    comparer = Comparer(ChunkPlanner(Sampler(1.0), CHUNK_TIME, INITIAL_CHUNK), reads,
                        Silent(), lambda table: {}, 0)
    try:
        for table in recorded.tables:
            if table.table not in present.get(table.database, set()):
                continue
            live = MariaDbSide(table.side(settings), reads, table.flow)
            try:
                problems += [m.line for m in compare_table(comparer, live, table)]
            except FuretError as exc:  # a column the restored table has not, say
                problems.append(f"{table.name}: {exc}")
    finally:
        reads.conns.close()
    return problems
