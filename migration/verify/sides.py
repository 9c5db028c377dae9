"""The two sides of a comparison, one class per store behind one :class:`Side` protocol.

- :class:`MariaDbSide` (a legacy source, or a MariaDB target): every chunk is checksummed
  inside the server, chunk by chunk (:mod:`migration.verify.mysql_checksum`);
- :class:`CassandraTargetSide`: the table is read once over token ranges and its rows are
  bucketed into the source's chunks (:mod:`migration.verify.cassandra_checksum`).

A side reads (checksums, drill-down rows, report texts) and repairs itself: copy through
the rounds' version-aware writer (:class:`~migration.engine.writer.Writer`), delete extra
rows, overwrite a newer copy. The comparison never asks which store a side is.

Rows are matched across stores by their key text (:func:`migration.canonical.key_text` of
the key tuple: an ``int`` id from MariaDB and a ``bigint`` from Cassandra meet, and a
composite key is one text); versions are ledger values of the table's
:class:`~migration.engine.versions.VersionCodec`, and each side holds its pair's time
window in those units.

Invariant: every read of a verification shares one :class:`Reads` (one connection per
thread and server, one throttle for all reads together), so ``--max-rows-per-second`` and
``--max-load`` hold over both sides and all tables.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysql

from migration.canonical import key_text
from migration.config import DbSettings
from migration.db import connect
from migration.engine import keys as sqlkeys
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.galera_writer import GaleraWriter
from migration.engine.keys import Key
from migration.engine.writer import BatchOutcome
from migration.enums import Strategy
from migration.errors import FuretError
from migration.flows.mapping import TableFlow, TargetMap
from migration.flows.validate import read_schema
from migration.progress import Reporter, Silent
from migration.rowhash import quote_ident
from migration.sql_literals import row_literal
from migration.verify import cassandra_checksum as cq
from migration.verify import mysql_checksum as mq
from migration.verify.drilldown import Classified, classify, group
from migration.verify.mysql_checksum import RowInfo, SqlSide
from migration.verify.planner import Chunk, Current, Quarantine
from migration.verify.window import TimeWindow

BATCH = 500  # rows per repair statement or transaction


def nk(key: Key) -> str:
    """The key text both sides are matched on (a key is the tuple of its values)."""
    return key_text(key)


def batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Throttle:
    """Keep all reads together under ``limit`` rows/s (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.started = time.monotonic()
        self.rows = 0
        self.lock = threading.Lock()

    def __call__(self, rows: int) -> None:
        if self.limit <= 0:
            return
        with self.lock:
            self.rows += rows
            ahead = self.rows / self.limit - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


class Connections:
    """One connection per thread and server, closed at the end (with the extra ones
    :meth:`own` registered, e.g. a chunk planner's)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[pymysql.connections.Connection] = []
        self.lock = threading.Lock()

    def get(self, settings: DbSettings) -> pymysql.connections.Connection:
        cache = getattr(self.local, "conns", None)
        if cache is None:
            cache = self.local.conns = {}
        key = (settings.role, settings.host, settings.port)
        conn = cache.get(key)
        if conn is None:
            conn = cache[key] = self.own(settings)
        return conn

    def own(self, settings: DbSettings) -> pymysql.connections.Connection:
        """A new connection of the caller's own, closed with the others."""
        conn = connect(settings, sql_mode="")
        with self.lock:
            self.all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.all:
            with contextlib.suppress(Exception):
                conn.close()


@dataclass
class Reads:
    """What every read of one verification shares."""

    throttle: Throttle = field(default_factory=lambda: Throttle(0))
    max_load: int = 0          # pause while Threads_running is above; 0 = off
    workers: int = 4
    splits: int = 0            # Cassandra token sub-ranges; 0 = 16 per worker
    page_rows: int = cq.PAGE_ROWS  # rows per page of a Cassandra scan
    conns: Connections = field(default_factory=Connections)


class Side(Protocol):
    """A compared table in one store: its reads, and how it repairs itself."""

    @property
    def where(self) -> str: ...

    def mode(self, source: MariaDbSide) -> str:
        """How this pair is compared, as the report names it."""
        ...

    def checksum(self, chunk: Chunk) -> tuple[int, int] | None:
        """(count, BIT_XOR) of one chunk, read next to the source's; None for a store that
        is read once over all chunks by :meth:`bucket`."""
        ...

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        """Fill ``chunk.target`` of every chunk from one pass over the table (seconds spent;
        0 for a store checksummed chunk by chunk)."""
        ...

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: MariaDbSide,
              quarantine: Quarantine) -> list[Classified]:
        """The rows of each ``bad`` chunk, classified against ``source``'s (one per chunk)."""
        ...

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        """Canonical texts of the rows of ``keys`` a drill-down left without them."""
        ...

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        """Source rows (the flow's source columns) through the rounds' writer."""
        ...

    @property
    def identity(self) -> tuple[int, ...] | None:
        """Positions, among the compared columns, of the target's primary key when it is not
        the source key (a Cassandra query table); None when it is."""
        ...

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        """Delete these extra rows; the number deleted."""
        ...

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Write rows (compared columns, mapping order) over any newer copy."""
        ...


class _SqlSpan:
    """A MariaDB table's extent, on the planner's own connection."""

    def __init__(self, conn: pymysql.connections.Connection, sql: SqlSide,
                 window: TimeWindow) -> None:
        self.conn = conn
        self.sql = sql
        self.window = window

    def bounds(self, kind: str) -> tuple[Any, Any]:
        return mq.bounds(self.conn, self.sql, kind, self.window)

    def count(self) -> int:
        return mq.count_rows(self.conn, self.sql, self.window)

    def next_boundary(self, lo: Key | None, rows: int) -> Key | None:
        return mq.next_boundary(self.conn, self.sql, lo, rows)


class MariaDbSide:
    """A table in MariaDB/MySQL: checksummed inside the server, chunk by chunk.

    ``window``: the pair's time window in ledger units; ``sql.codec`` is the flow table's
    version codec (a MariaDB target's version column is of the source's kind), which the
    repair's writer takes too: None for a table without a version column, whose rows the
    writer then upserts unconditionally, as its rounds do."""

    def __init__(self, sql: SqlSide, reads: Reads, table_flow: TableFlow,
                 window: TimeWindow | None = None) -> None:
        self.sql = sql
        self.reads = reads
        self.tf = table_flow
        self.window = window or TimeWindow()

    @property
    def where(self) -> str:
        return self.sql.where

    def _conn(self) -> pymysql.connections.Connection:
        return self.reads.conns.get(self.sql.settings)

    def mode(self, source: MariaDbSide) -> str:
        return "client" if source.sql.client else "sql"

    @property
    def identity(self) -> tuple[int, ...] | None:
        return None  # rows are keyed by the source key

    # --- reads --------------------------------------------------------------------------

    def span(self) -> _SqlSpan:
        return _SqlSpan(self.reads.conns.own(self.sql.settings), self.sql, self.window)

    def checksum(self, chunk: Chunk) -> tuple[int, int]:
        conn = self._conn()
        limit = self.reads.max_load
        while limit > 0 and mq.threads_running(conn, self.sql) > limit:
            time.sleep(0.5)
        return mq.checksum(conn, self.sql, chunk.rng, self.window, chunk.excluded)

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        return 0.0

    def row_hashes(self, chunk: Chunk) -> list[RowInfo]:
        return mq.row_hashes(self._conn(), self.sql, chunk.rng, self.window, chunk.excluded)

    def rows(self, chunk: Chunk) -> dict[str, RowInfo]:
        """A chunk's rows by key text (a source has one row per key)."""
        return {nk(r.key): r for r in self.row_hashes(chunk)}

    def rows_by_key(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        return mq.rows_by_key(self._conn(), self.sql, keys)

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        return self.rows_by_key(keys)

    def current_versions(self, keys: Sequence[Key]) -> Current:
        return mq.current_versions(self._conn(), self.sql, keys)

    def source_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        """Raw rows in the flow's source columns (what a writer takes)."""
        return mq.source_rows(self._conn(), self.sql, self.tf.source_columns, keys)

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: MariaDbSide,
              quarantine: Quarantine) -> list[Classified]:
        return [self._drill(chunk, source) for chunk in bad]

    def _drill(self, chunk: Chunk, source: MariaDbSide) -> Classified:
        src = source.rows(chunk)
        tgt = group([(nk(r.key), r) for r in self.row_hashes(chunk)])
        found = classify(src, tgt)
        if self.window.bounded and (found.missing or found.extra):
            # under a window a stale copy has another version, so another chunk
            src_else = source.rows_by_key([rows[0].key for k, rows in tgt.items()
                                           if k not in src])
            tgt_else = self.rows_by_key([r.key for k, r in src.items() if k not in tgt])
            found = classify(src, tgt, src_else, {k: [v] for k, v in tgt_else.items()})
        return found

    # --- repairs ------------------------------------------------------------------------

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        conn = connect(self.sql.settings, autocommit=False, strict=True)
        try:
            # the target tables' schemas: NULL checks on the client and the guard that
            # never merges a row into another holding one of its unique keys, as in a round
            schemas = {tm.table: read_schema(conn, self.sql.settings, self.sql.database,
                                             tm.table) for tm in self.tf.targets}
            writer = GaleraWriter(self.sql.database, self.tf, Strategy.TS,
                                  {t: v for t, v in schemas.items() if v is not None},
                                  codec=self.sql.codec)
            for batch in batches(rows):
                conn.begin()
                with conn.cursor() as cur:
                    written = writer.write(cur, batch)
                conn.commit()
                outcome.add(written)
        except pymysql.MySQLError as exc:
            raise self.sql.error(exc) from None
        finally:
            conn.close()
        return outcome

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        by_text = {nk(row.key): row.key for _, row in extra}
        keys = [by_text[k] for k in sorted(by_text)]
        conn = connect(self.sql.settings, autocommit=True)
        deleted = 0
        try:
            with conn.cursor() as cur:
                for batch in batches(keys):
                    clause, args = sqlkeys.among(self.sql.keys, batch)
                    deleted += cur.execute(f"DELETE FROM {self.sql.fqtn} WHERE {clause}", args)
        except pymysql.MySQLError as exc:
            raise self.sql.error(exc) from None
        finally:
            conn.close()
        return deleted

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        names = [c.source for c in self.sql.columns]
        cols = ", ".join(quote_ident(n) for n in names)
        updates = ", ".join(f"{quote_ident(n)} = VALUES({quote_ident(n)})" for n in names
                            if n not in self.sql.keys)
        conn = connect(self.sql.settings, autocommit=False, strict=True)
        try:
            with conn.cursor() as cur:
                for batch in batches(rows):
                    cur.execute(f"INSERT INTO {self.sql.fqtn} ({cols}) VALUES "
                                f"{','.join(row_literal(r) for r in batch)} "
                                f"ON DUPLICATE KEY UPDATE {updates}")
            conn.commit()
        except pymysql.MySQLError as exc:
            raise self.sql.error(exc) from None
        finally:
            conn.close()
        return len(rows)


class CassandraTargetSide:
    """A Cassandra query table: read once over token ranges, its rows bucketed into the
    source's chunks (by key, or by version under a window; ``window`` in ledger units)."""

    def __init__(self, table: cq.CassandraSide, reads: Reads, table_flow: TableFlow,
                 progress: Reporter | None = None, label: str = "",
                 window: TimeWindow | None = None) -> None:
        self.table = table
        self.reads = reads
        self.tf = table_flow
        self.window = window or TimeWindow()
        self.progress: Reporter = progress or Silent()
        self.label = label          # the pair's name in progress output

    def on_rows(self, rows: int) -> None:
        self.progress.advance(self.label, rows)

    @property
    def where(self) -> str:
        return self.table.where

    def mode(self, source: MariaDbSide) -> str:
        return "cassandra"

    @property
    def identity(self) -> tuple[int, ...] | None:
        return tuple(self.table.columns.index(c) for c in self.table.primary_key)

    def checksum(self, chunk: Chunk) -> None:
        return None

    def _chunk_of(self, locator: cq.Locator, taken: set[int],
                  quarantine: Quarantine) -> Callable[[Key, int | None], int | None]:
        window = self.window
        by_version = window.bounded

        def chunk_of(key: Key, version: int | None) -> int | None:
            if by_version:
                if version is None or not window.contains(version):
                    return None
                index = locator.find(version)
            else:
                index = locator.find(key)
            if index is None or index not in taken:
                return None
            if quarantine and quarantine.holds(key):
                return None
            return index

        return chunk_of

    def _scan(self, chunk_of: Callable[[Key, int | None], int | None],
              keep: Callable[[Key, int | None], bool] | None = None,
              profile: str | None = None) -> cq.ScanResult:
        workers = max(1, self.reads.workers)
        try:
            return cq.scan(self.table, chunk_of, keep, splits=self.reads.splits or 16 * workers,
                           workers=workers, page_rows=self.reads.page_rows,
                           on_rows=self.on_rows, throttle=self.reads.throttle,
                           profile=profile, versions=self.window.bounded)
        except FuretError:
            raise
        except Exception as exc:  # driver errors: timeouts, unavailable, invalid query
            raise FuretError(f"{self.table.where}: {type(exc).__name__}: "
                             f"{str(exc)[:300]}") from None

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        self.progress.phase(self.label, "cassandra scan")
        started = time.monotonic()
        # the checksum pass at the scan consistency (one replica by default); a chunk it
        # finds different is checksummed again by drill() at the confirming consistency
        self._checksums(done, [c for c in done if c.take], quarantine, self.table.scan_profile)
        return time.monotonic() - started

    def _checksums(self, done: Sequence[Chunk], chunks: Sequence[Chunk],
                   quarantine: Quarantine, profile: str) -> None:
        """(count, BIT_XOR) of ``chunks`` (some of ``done``) in one pass over the ring."""
        locator = cq.Locator([c.rng for c in done])
        wanted = {id(c) for c in chunks}
        indexes = {i for i, c in enumerate(done) if id(c) in wanted}
        result = self._scan(self._chunk_of(locator, indexes, quarantine), profile=profile)
        for i, chunk in enumerate(done):
            if i in indexes or not chunk.take:
                count, xor = result.buckets.get(i, [0, 0])
                chunk.target = (count, xor)
                chunk.report.target_rows = count

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: MariaDbSide,
              quarantine: Quarantine) -> list[Classified]:
        """Checksums of ``bad`` again at the confirming consistency when the pass read at
        another (a replica that missed writes, or was rebuilt, makes many chunks differ:
        only those still different are read row by row, and held), then their rows."""
        if self.table.scan_profile != self.table.profile:
            self.progress.phase(self.label, f"checksums of {len(bad)} chunks again at the "
                                            "confirming consistency")
            self._checksums(done, bad, quarantine, self.table.profile)
            confirmed = [c for c in bad if c.source != c.target]
            found = dict(zip([id(c) for c in confirmed],
                             self._drill(done, confirmed, source, quarantine), strict=True))
            return [found.get(id(c), Classified()) for c in bad]
        return self._drill(done, bad, source, quarantine)

    def _drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: MariaDbSide,
               quarantine: Quarantine) -> list[Classified]:
        if not bad:
            return []
        window = self.window
        locator = cq.Locator([c.rng for c in done])
        index_of = {id(c): i for i, c in enumerate(done)}
        bad_index = {index_of[id(c)] for c in bad}
        chunk_of = self._chunk_of(locator, bad_index, quarantine)
        sources = {index_of[id(c)]: source.rows(c) for c in bad}
        wanted_keys = {k for rows in sources.values() for k in rows} \
            if window.bounded else set()

        def keep(key: Key, version: int | None) -> bool:
            return chunk_of(key, version) is not None or (
                bool(wanted_keys) and nk(key) in wanted_keys)

        result = self._scan(lambda k, v: None, keep)
        in_chunk: dict[int, list[tuple[str, RowInfo]]] = {i: [] for i in bad_index}
        elsewhere: dict[str, list[RowInfo]] = {}
        for row in result.kept:
            index = chunk_of(row.key, row.version)
            if index is not None:
                in_chunk[index].append((nk(row.key), row))
            else:
                elsewhere.setdefault(nk(row.key), []).append(row)
        out = []
        for chunk in bad:
            i = index_of[id(chunk)]
            src, tgt = sources[i], group(in_chunk[i])
            src_else: dict[str, RowInfo] = {}
            if window.bounded:
                extra = [rows[0].key for k, rows in tgt.items() if k not in src]
                src_else = source.rows_by_key(extra) if extra else {}
            out.append(classify(src, tgt, src_else, elsewhere))
        return out

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        return {}  # the scan keeps every row's texts

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        writer = CassandraWriter(self.table.session, self.table.keyspace, self.tf,
                                 self.table.codec, self.table.write_consistency)
        outcome = BatchOutcome()
        for batch in batches(rows):
            outcome.add(writer.write(None, batch))
        return outcome

    def write_times(self, primary_keys: Sequence[tuple[Any, ...]]) -> list[int | None]:
        """The latest write time (µs) among each row's compared cells, read now by primary
        key; None for a row without a live cell (gone, or deleted by a tombstone, whose
        time CQL does not show)."""
        from cassandra.concurrent import execute_concurrent_with_args

        side = self.table
        regular = [c for c in side.columns if c not in side.primary_key]
        if not primary_keys or not regular:
            return [None] * len(primary_keys)
        where = " AND ".join(f"{c} = ?" for c in side.primary_key)
        statement = side.session.prepare(
            f"SELECT {', '.join(f'WRITETIME({c})' for c in regular)} FROM "
            f"{side.keyspace}.{side.table} WHERE {where}")
        out: list[int | None] = []
        for _, result in execute_concurrent_with_args(side.session, statement,
                                                      list(primary_keys), concurrency=64,
                                                      execution_profile=side.profile):
            row = result.one()
            stamps = [int(v) for v in row if v is not None] if row is not None else []
            out.append(max(stamps) if stamps else None)
        return out

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        """``DELETE ... USING TIMESTAMP`` the row's own latest write time (a tombstone wins
        a tie): the row as it is goes, and a source version written later, stamped by the
        rounds after that time, is never hidden by the delete, as it would be by a
        tombstone stamped now. A row without a live cell is already gone."""
        from cassandra.concurrent import execute_concurrent_with_args

        side = self.table
        where = " AND ".join(f"{c} = ?" for c in side.primary_key)
        statement = side.session.prepare(f"DELETE FROM {side.keyspace}.{side.table} "
                                         f"USING TIMESTAMP ? WHERE {where}")
        statement.consistency_level = _consistency(side.write_consistency)
        indexes = [side.columns.index(c) for c in side.primary_key]
        rows = [row for _, row in extra if row.native is not None]
        keys = [tuple(row.native[i] for i in indexes) for row in rows]  # type: ignore[index]
        args = []
        for row, key, stamp in zip(rows, keys, self.write_times(keys), strict=True):
            if stamp is None and row.version is not None:
                stamp = side.codec.micros(row.version)  # as the rounds stamped it
            if stamp is not None:
                args.append((stamp, *key))
        execute_concurrent_with_args(side.session, statement, args, concurrency=64)
        return len(args)

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """``USING TIMESTAMP`` one microsecond after the target row's own latest write: it
        wins over that copy and over nothing later (a source change the rounds stamp after
        it still wins). A row deleted by a tombstone has no readable write time: it is not
        written (furet does not guess a stamp) and stays reported as shadowed."""
        from cassandra.concurrent import execute_concurrent_with_args

        side = self.table
        names = side.columns
        statement = side.session.prepare(
            f"INSERT INTO {side.keyspace}.{side.table} ({', '.join(names)}) VALUES "
            f"({', '.join('?' for _ in names)}) USING TIMESTAMP ?")
        statement.consistency_level = _consistency(side.write_consistency)
        indexes = [names.index(c) for c in side.primary_key]
        stamps = self.write_times([tuple(row[i] for i in indexes) for row in rows])
        args = [(*row, stamp + 1) for row, stamp in zip(rows, stamps, strict=True)
                if stamp is not None]
        execute_concurrent_with_args(side.session, statement, args, concurrency=64)
        return len(args)


def _consistency(name: str) -> int:
    """The driver's level for a configured name (config.py validated it)."""
    from cassandra import ConsistencyLevel

    return int(ConsistencyLevel.name_to_value[name])


@dataclass
class Pair:
    """One source table compared with one of its target tables."""

    tf: TableFlow
    tm: TargetMap
    source: MariaDbSide
    target: Side
    names: tuple[str, ...]     # compared target columns, mapping order
    numeric_key: bool          # a single integer key (cut arithmetically)
    window: TimeWindow = field(default_factory=TimeWindow)  # in the version's ledger units

    @property
    def name(self) -> str:
        return f"{self.tf.source} -> {self.tm.table}"

    @property
    def mode(self) -> str:
        return self.target.mode(self.source)
