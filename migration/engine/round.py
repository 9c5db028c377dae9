"""`furet round --flow F`: plan (or resume) the next round of a flow and run its chunks.

1. load the flow and check it against the live schemas (nothing moves on a mapping error);
2. take the flow's lock on the target (one runner per flow);
3. resume the flow's unfinished round if there is one, else plan the next one (see
   :mod:`migration.engine.plan`) and persist the plan in the ledger in one transaction;
4. run the chunks in parallel, one source and one target connection per worker; each
   batch is read by keyset, written by conditional upsert and checkpointed in the same
   target transaction (:mod:`migration.engine.ledger`); for a MariaDB target whose columns
   SQL can express, the source builds each row's SQL literal (``RoundOptions.literals``,
   :mod:`migration.engine.sql_pushdown`; the summary's ``literals`` says which path each
   table took);
5. close the round: watermark per table, counts, timings.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pymysql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.canonical import key_text
from migration.config import DbSettings, FuretConfig
from migration.db import (
    RETRYABLE_ERRORS,
    assert_session,
    connect,
    db_error,
    error_code,
    query,
    server_now_us,
    server_utc_offset_s,
)
from migration.engine import deferred_indexes, ledger, plan, reverse, sync
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.flow_lock import flow_lock
from migration.engine.galera_writer import GaleraWriter, quarantined
from migration.engine.keys import Key, among, quote
from migration.engine.ledger import Chunk, RoundRow
from migration.engine.quarantine import QuarantinedRow
from migration.engine.reader import (
    Cursor,
    next_key_boundary,
    read_batch,
    select_batch_sql,
    select_keys_sql,
    source_select,
)
from migration.engine.results import QuarantineLimitExceeded, RoundSummary
from migration.engine.sql_pushdown import Pushdown
from migration.engine.sql_pushdown import plan as plan_pushdown
from migration.engine.sstable_writer import HeldChunk, Segment, SstableLoads, SstableWriter
from migration.engine.versions import VersionCodec, check_values
from migration.engine.writer import BatchOutcome, Writer
from migration.enums import BulkLoad, Deletes, LiteralsPath, Strategy
from migration.errors import FuretError, context
from migration.flows.mapping import Flow, TableFlow
from migration.flows.reverse import load_for
from migration.flows.validate import (
    INTEGER_TYPES,
    TableSchema,
    read_schema,
    validate_mariadb_flow,
    version_codec,
)
from migration.legacy.freeze import assert_frozen
from migration.progress import Reporter as Progress
from migration.progress import Silent

T = TypeVar("T")


@dataclass(frozen=True)
class RoundOptions:
    """What ``furet round`` was asked (the command's contract maps its flags here)."""

    flow: str
    strategy: Strategy = Strategy.TS
    final: bool = False
    max_quarantined: int | None = None
    # auto: MariaDB targets get server-built literals where every column is expressible
    # in SQL (see migration.engine.sql_pushdown); python: every row goes through Python
    literals: LiteralsPath = LiteralsPath.AUTO
    # the flow reversed (target -> legacy, after the switch: migration.engine.reverse);
    # assume_frozen: the operator's word that the application no longer reaches the target
    # (what a final reverse round needs)
    reverse: bool = False
    assume_frozen: bool = False

    def __post_init__(self) -> None:
        """Plain strings are accepted and checked (a caller's typo is one clear line)."""
        for name, kind, what in (("strategy", Strategy, "strategy"),
                                 ("literals", LiteralsPath, "literals mode")):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise FuretError(f"unknown {what} {value!r} (expected "
                                 f"{', '.join(kind.choices())})") from None


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.MySQLError) and error_code(exc) in RETRYABLE_ERRORS


def _retrying() -> Retrying:
    """Deadlocks, Galera certification failures and lost links: redo the transaction."""
    return Retrying(retry=retry_if_exception(_is_retryable), reraise=True,
                    wait=wait_exponential(multiplier=0.2, max=5), stop=stop_after_attempt(6))


class _Run:
    """One invocation of a round: connections per worker thread, the writers, the stop flag."""

    def __init__(self, config: FuretConfig, flow: Flow, round_row: RoundRow,
                 schemas: dict[str, TableSchema], codecs: dict[str, VersionCodec | None],
                 progress: Progress, cassandra: Any = None,
                 target_schemas: dict[str, TableSchema] | None = None,
                 literals: str = "auto", fresh: frozenset[str] = frozenset()) -> None:
        """``fresh``: the tables that no round has finished yet (round 1 writes them with a
        plain INSERT first: :class:`GaleraWriter`)."""
        self.config = config
        self.flow = flow
        self.round = round_row
        self.schemas = schemas
        self.codecs = codecs
        self.target_schemas = target_schemas or {}
        self.progress = progress
        self.source_settings = config.db(flow.source_server)
        # where the rows go, and the ledger: the same server (and transaction) but for a
        # reverse flow, whose rows go to the legacy (migration.engine.reverse)
        self.target_settings = config.db(flow.target_server)
        self.split = cassandra is None and flow.target_server != "target"
        self.local = threading.local()
        self.connections: list[pymysql.connections.Connection] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.writers: dict[str, Writer] = {}
        self.sstables = SstableLoads(config.cassandra)   # cassandra.bulk_load SSTABLE
        # MariaDB tables whose rows the source server turns into SQL literals: chosen once
        # per run, reported in the round summary ("literals"), never per batch
        self.pushdowns: dict[str, tuple[Pushdown, GaleraWriter]] = {}
        self.literal_paths: dict[str, str] = {}
        for tf in flow.tables:
            codec = codecs[tf.source]
            if cassandra is not None:
                assert codec is not None, "run_round refuses `version: none` into Cassandra"
                if round_row.kind == "full" and config.cassandra.bulk_load == BulkLoad.SSTABLE:
                    self.writers[tf.source] = SstableWriter(
                        cassandra, flow.target_database, tf, codec, self.sstables)
                    continue
                self.writers[tf.source] = CassandraWriter(
                    cassandra, flow.target_database, tf, codec,
                    config.cassandra.write_consistency)
                continue
            galera = GaleraWriter(flow.target_database, tf, round_row.strategy, target_schemas,
                                  codec, insert_first=tf.source in fresh)
            self.writers[tf.source] = galera
            if literals == LiteralsPath.PYTHON:
                self.literal_paths[tf.source] = "python: asked for"
                continue
            pushdown, why = plan_pushdown(tf, schemas[tf.source], target_schemas or {},
                                          round_row.strategy)
            if pushdown is None:
                self.literal_paths[tf.source] = f"python: {why}"
            else:
                self.pushdowns[tf.source] = (pushdown, galera)
                self.literal_paths[tf.source] = "server"

    def restore_indexes(self, conn: pymysql.connections.Connection) -> list[str]:
        """Add back the indexes this round deferred (its chunks are all done)."""
        try:
            return deferred_indexes.restore(conn, self.flow.name, self.flow.target_database,
                                            _target_keys(self.flow), self._set_aside)
        except pymysql.MySQLError as exc:
            raise db_error(exc, self.target_settings, self.flow.target_database) from None

    def _set_aside(self, table: str, found: list[deferred_indexes.Duplicate]) -> None:
        """Rows that break a deferred unique key: quarantined with their source values
        (as read now; a row gone from the source with its key only) and deleted."""
        tf, tm = next((tf, tm) for tf in self.flow.tables for tm in tf.targets
                      if tm.table == table)
        codec = self.codecs[tf.source]
        step = LATE_LOOKUP_BATCH
        for start in range(0, len(found), step):
            part = found[start:start + step]
            rows = {key_text(r[:tf.width]): r for r in self._originals(tf, [d.key for d in part])}
            records = [
                quarantined(tf, codec, tf.source_columns, rows[key_text(d.key)], table, d.reason)
                if key_text(d.key) in rows else
                QuarantinedRow(tf.source, key_text(d.key), 0, table, d.reason,
                               dict(zip(tf.keys, d.key, strict=True)))
                for d in part]
            keys = tf.target_keys(tm)
            match = " OR ".join(["(" + " AND ".join(f"{quote(k)} = %s" for k in keys) + ")"]
                                * len(part))

            def work(cur: Any, records: list[QuarantinedRow] = records,
                     part: list[deferred_indexes.Duplicate] = part, match: str = match) -> None:
                for statement in ledger.quarantine_statements(self.flow.name,
                                                              self.round.round_no, records):
                    cur.execute(statement)
                cur.execute(f"DELETE FROM {quote(self.flow.target_database)}.{quote(table)} "
                            f"WHERE {match}", [v for d in part for v in d.key])
                ledger.set_aside(cur, self.flow.name, self.round.round_no, tf.source, len(part))

            self._in_transaction(work, table)

    def writes(self) -> dict[str, str]:
        """How each table's rows were written (the round summary's ``writes``): a MariaDB
        table's first statement, or a Cassandra table's streamed SSTables."""
        out = {}
        for table, writer in self.writers.items():
            if isinstance(writer, SstableWriter):
                out[table] = "SSTables streamed"
            elif isinstance(writer, GaleraWriter):
                out[table] = ("plain INSERT" if writer.insert_first else
                              f"upsert: {writer.insert_off}" if writer.insert_off else "upsert")
        return out

    def _conn(self, name: str, settings: DbSettings, **kwargs: Any
              ) -> pymysql.connections.Connection:
        conn = getattr(self.local, name, None)
        if conn is None:
            conn = connect(settings, **kwargs)
            setattr(self.local, name, conn)
            with self.lock:
                self.connections.append(conn)
        return conn

    def source(self) -> pymysql.connections.Connection:
        return self._conn("source", self.source_settings)

    def target(self) -> pymysql.connections.Connection:
        return self._conn("target", self.target_settings, autocommit=False, strict=True)

    def ledger(self) -> pymysql.connections.Connection:
        """The ledger's connection: the target's, but for a reverse flow."""
        if not self.split:
            return self.target()
        return self._conn("ledger", self.config.target, autocommit=False, strict=True)

    def load_segment(self, segment: Segment) -> None:
        """Stream a worker's SSTables to the ring, then book the checkpoints of the chunks
        they hold (:class:`SstableLoads`)."""
        for held in self.sstables.load(segment, self._originals):
            outcome: BatchOutcome = held.outcome
            self._commit_batch(held.chunk, held.read, held.cursor,
                               functools.partial(_held_outcome, outcome))
            ledger.finish_chunk(self.ledger(), held.chunk)
            self.ledger().commit()
            self.progress.advance(held.chunk.source_table, 0, chunks=1)

    def load_segments(self) -> None:
        """At the end of the chunks: what each worker's segment still holds, all at once."""
        pending = [s for s in self.sstables.segments if s.chunks]
        if not pending:
            return
        for table in sorted({h.chunk.source_table for s in pending for h in s.chunks}):
            self.progress.phase(table, "streaming the last SSTables")
        with concurrent.futures.ThreadPoolExecutor(len(pending), "furet-load") as pool:
            for future in [pool.submit(self.load_segment, s) for s in pending]:
                future.result()

    def close(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.close()
        with contextlib.suppress(Exception):
            self.sstables.close()

    def run_chunk(self, chunk: Chunk) -> None:
        # An unexpected error's one line names the table and the chunk (migration/failure.py).
        with context(host=self.source_settings.where, database=self.flow.source_database,
                     table=chunk.source_table,
                     step=f"round {chunk.round_no} chunk {chunk.spec.chunk_no}"):
            self._run_chunk(chunk)

    def _run_chunk(self, chunk: Chunk) -> None:
        tf = self.flow.table(chunk.source_table)
        spec = chunk.spec
        codec = self.codecs[tf.source]
        columns = tf.source_columns
        cursor_columns = spec.columns if spec.kind == "key" else tf.keys
        cursor_index = [columns.index(c) for c in cursor_columns]
        pushdown = self.pushdowns.get(tf.source)
        select, literal_index = self._values_select(tf), 0
        if pushdown:
            select, cursor_index, literal_index = pushdown[0].select_list(cursor_columns)
        settings = self.config.rounds
        book = self.ledger()
        ledger.claim_chunk(book, chunk)
        book.commit()
        if spec.kind == "sync":  # a table without a version: copy only what changed
            self._sync_chunk(tf, chunk)
            return
        cursor = Cursor(chunk.cursor_ts, chunk.cursor_key)
        limit = settings.batch_rows
        started = time.monotonic()
        done_rows = 0
        streamed = self.writers[tf.source]
        sstables = streamed if isinstance(streamed, SstableWriter) else None
        held, held_read = BatchOutcome(), 0     # an SSTable chunk's rows, until its load
        while not self.stop.is_set():
            sql, args = select_batch_sql(self.flow.source_database, tf.source, columns, tf.keys,
                                         codec, spec, cursor, limit, select)
            rows = self._read(sql, args)
            if not rows:
                if sstables is not None and held_read:
                    # booked once its worker's segment is streamed to the ring
                    segment = self.sstables.segment()
                    segment.chunks.append(HeldChunk(chunk, held_read, cursor, held))
                    if len(segment.rows) >= self.sstables.segment_rows:
                        self.load_segment(segment)
                    return
                ledger.finish_chunk(book, chunk)
                book.commit()
                self.progress.advance(tf.source, 0, chunks=1)
                return
            last = rows[-1]
            new_cursor = Cursor(None if codec is None else codec.ledger(last[tf.width]),
                                tuple(last[i] for i in cursor_index))
            if sstables is not None:   # to the worker's helper; no transaction to bound
                held.add(sstables.write(None, rows))
                held_read += len(rows)
            else:
                size, write = (self._server_literals(tf, pushdown[1], rows, literal_index)
                               if pushdown else self._python_literals(tf, rows))
                self._commit_batch(chunk, len(rows), new_cursor, write)
                # keep each transaction under batch_bytes (Galera write-set) as rows grow
                limit = max(1, min(settings.batch_rows,
                                   settings.batch_bytes * len(rows) // size))
            cursor = new_cursor
            self.progress.advance(tf.source, len(rows))
            done_rows += len(rows)
            if settings.max_rows_per_second > 0:
                ahead = done_rows / settings.max_rows_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _sync_chunk(self, tf: TableFlow, chunk: Chunk) -> None:
        """A key range of a table without a version (:mod:`migration.engine.sync`): equal
        checksums end it; else the missing and different rows are copied again and, with
        ``deletes: propagate``, the rows gone from the source are deleted."""
        target = self.target()
        same, count = sync.unchanged(self.source(), target, self.flow, tf, chunk.spec,
                                     self.schemas[tf.source], self.target_schemas)
        target.commit()
        if same:
            ledger.finish_chunk(self.ledger(), chunk, read=count)
            self.ledger().commit()
            self.progress.advance(tf.source, count, chunks=1)
            return
        copy, gone = sync.differences(self.source(), target, self.flow, tf, chunk.spec,
                                      self.schemas[tf.source], self.target_schemas)
        target.commit()
        writer = self.writers[tf.source]
        step = max(1, self.config.rounds.batch_rows)
        for start in range(0, len(copy), step):
            rows = self._originals(tf, copy[start:start + step])
            if rows:
                self._commit_batch(chunk, len(rows), Cursor(None, tuple(rows[-1][:tf.width])),
                                   functools.partial(writer.write, rows=rows))
                self.progress.advance(tf.source, len(rows))
        deleted = 0
        if tf.deletes == Deletes.PROPAGATE:
            for table, keys in gone.items():
                if self.flow.reverse_of:  # never delete what the cutover left behind
                    keys = reverse.deletable(self.ledger(), self.flow, table, keys)
                for sql, args in sync.delete_statements(self.flow, tf, table, keys):
                    deleted += self._execute(sql, args, table)
        ledger.finish_chunk(self.ledger(), chunk, read=max(0, count - len(copy)),
                            deleted=deleted)
        self.ledger().commit()
        self.progress.advance(tf.source, 0, chunks=1)

    def _execute(self, sql: str, args: list[Any], table: str) -> int:
        """One target statement in its own transaction (retried like a batch)."""
        return self._in_transaction(lambda cur: int(cur.execute(sql, args)), table)

    def _in_transaction(self, work: Callable[[Any], T], table: str,
                        ledger_side: bool = False) -> T:
        """``work(cursor)`` in one target transaction (``ledger_side``: the ledger's, when it
        is not the target's), committed; deadlocks, certification failures and lost links
        redo it whole, any other error is one line naming ``table``."""
        settings = self.config.target if ledger_side else self.target_settings
        database = "furet" if ledger_side else self.flow.target_database
        for attempt in _retrying():
            with attempt:
                target = self.ledger() if ledger_side else self.target()
                if attempt.retry_state.attempt_number > 1:
                    target.ping(reconnect=True)
                try:
                    target.begin()
                    # strict sql_mode and +00:00 before any write (one round trip per
                    # batch): a session that lost them would cut and shift rows silently
                    assert_session(target, settings)
                    with target.cursor() as cur:
                        done = work(cur)
                    target.commit()
                    return done
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        target.rollback()
                    if isinstance(exc, pymysql.MySQLError) and not _is_retryable(exc):
                        raise db_error(exc, settings, database, table) from None
                    raise
        raise AssertionError("unreachable")

    def _read(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        for attempt in _retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.source().ping(reconnect=True)
                    # a new session: its zone decides how TIMESTAMPs are read
                    assert_session(self.source(), self.source_settings, sql_mode="")
                try:
                    return read_batch(self.source(), sql, args)
                except pymysql.MySQLError as exc:
                    if _is_retryable(exc):
                        raise
                    raise db_error(exc, self.source_settings, self.flow.source_database) \
                        from None
        raise AssertionError("unreachable")

    def _python_literals(self, tf: TableFlow, rows: list[tuple[Any, ...]]
                         ) -> tuple[int, Callable[[Any], BatchOutcome]]:
        """(size, write) of a batch read as source values."""
        writer = self.writers[tf.source]
        return max(1, sum(len(repr(r)) for r in rows)), lambda cur: writer.write(cur, rows)

    def _values_select(self, tf: TableFlow) -> str:
        """The select list of the Python path (source rows as values)."""
        return source_select(tf.source_columns, {n: c.data_type for n, c in
                                                 self.schemas[tf.source].columns.items()})

    def _originals(self, tf: TableFlow, keys: list[Key]) -> list[tuple[Any, ...]]:
        """Rows read again by key, as source values (for the Python path)."""
        if not keys:
            return []
        sql, args = select_keys_sql(self.flow.source_database, tf.source, tf.source_columns,
                                    tf.keys, keys, self._values_select(tf))
        return self._read(sql, args)

    def _server_literals(self, tf: TableFlow, writer: GaleraWriter,
                         rows: list[tuple[Any, ...]], first: int
                         ) -> tuple[int, Callable[[Any], BatchOutcome]]:
        """(size, write) of a batch read as server-built literals (from column ``first``):
        clean rows are written as they came, rows with a reason (``!...``) are read again
        by key and go through Python."""
        width = tf.width
        clean = [r[first:] for r in rows if r[first][:1] != b"!"]
        keys = [tuple(r[:width]) for r in rows if r[first][:1] != b"!"]
        dirty = self._originals(tf, [tuple(r[:width]) for r in rows if r[first][:1] == b"!"])

        def write(cur: Any) -> BatchOutcome:
            outcome = writer.write_literals(cur, clean, keys,
                                            lambda again: self._originals(tf, again))
            if dirty:
                outcome.add(writer.write(cur, dirty))
            return outcome

        size = sum(len(lit) for row in clean for lit in row) + sum(len(repr(r)) for r in dirty)
        return max(1, size), write

    def _commit_batch(self, chunk: Chunk, read: int, cursor: Cursor,
                      write: Callable[[Any], BatchOutcome]) -> None:
        """Rows + quarantine + checkpoint in one target transaction; for a reverse flow the
        rows in a legacy transaction, committed first, then quarantine + checkpoint in a
        ledger one (a kill in between replays the batch, harmless: same versions)."""

        def book(cur: Any, outcome: BatchOutcome, written: str) -> None:
            for statement in ledger.quarantine_statements(self.flow.name, self.round.round_no,
                                                          outcome.quarantined):
                cur.execute(statement)
            if not ledger.checkpoint(cur, chunk, cursor.ts, cursor.key, read, outcome.written,
                                     len(outcome.quarantined)):
                raise FuretError(
                    f"flow {self.flow.name} round {self.round.round_no} table "
                    f"{chunk.source_table} chunk {chunk.spec.chunk_no}: checkpoint moved "
                    f"under us (another runner?); {written}")

        if self.split:
            outcome = self._in_transaction(write, chunk.source_table)
            self._in_transaction(
                lambda cur: book(cur, outcome, "its rows were written (again if it resumes: "
                                               "harmless, version-aware)"),
                chunk.source_table, ledger_side=True)
        else:
            self._in_transaction(lambda cur: book(cur, write(cur), "nothing was written"),
                                 chunk.source_table)
        chunk.batches += 1


def _describe(codec: VersionCodec | None) -> str:
    return "none" if codec is None else codec.describe()


def _target_keys(flow: Flow, tables: frozenset[str] | None = None, shared: bool = True
                 ) -> dict[str, tuple[str, ...]]:
    """The flow's key columns in each target table (of the source ``tables`` only, if
    given; without the target tables that several source tables write, unless
    ``shared``)."""
    writers = collections.Counter(tm.table for tf in flow.tables for tm in tf.targets)
    return {tm.table: tf.target_keys(tm) for tf in flow.tables
            if tables is None or tf.source in tables for tm in tf.targets
            if shared or writers[tm.table] == 1}


def _rows_estimate(conn: pymysql.connections.Connection, database: str, table: str) -> int:
    """The server's estimate of a table's rows (InnoDB's statistics: no scan; 0 before
    they are collected)."""
    return int(query(conn, "SELECT COALESCE(MAX(table_rows), 0) FROM information_schema.tables "
                           "WHERE table_schema = %s AND table_name = %s", (database, table))[0][0])


def _key_chunks(source: pymysql.connections.Connection, flow: Flow, tf: TableFlow,
                schema: TableSchema, chunk_rows: int) -> list[plan.ChunkSpec]:
    """Round 1's key ranges: arithmetic on MIN/MAX for one dense integer column, else
    bounds read by keyset nibbles (``chunk_rows`` rows apart; a sparse integer key too:
    :func:`plan.integer_key_is_dense`), never every key of the table."""
    text = plan.key_column_text(tf.keys)
    table = f"{quote(flow.source_database)}.{quote(tf.source)}"
    if len(tf.keys) == 1 and schema.columns[tf.keys[0]].data_type in INTEGER_TYPES:
        column = quote(tf.keys[0])
        lo_key, hi_key = query(source, f"SELECT MIN({column}), MAX({column}) FROM {table}")[0]
        estimate = _rows_estimate(source, flow.source_database, tf.source)
        if plan.integer_key_is_dense(lo_key, hi_key, estimate, chunk_rows):
            return plan.integer_key_chunks(text, lo_key, hi_key, chunk_rows)
    bounds: list[Key] = []
    lo: Key | None = None
    while True:
        sql, args = next_key_boundary(flow.source_database, tf.source, tf.keys, lo, chunk_rows)
        found = query(source, sql, args)
        if not found:
            break
        lo = tuple(found[0])
        bounds.append(lo)
    return plan.boundary_key_chunks(text, bounds)


def _check_versions(source: pymysql.connections.Connection, settings: DbSettings, flow: Flow,
                    codecs: dict[str, VersionCodec | None], now_us: int) -> None:
    """Refuse version columns whose values a wrong unit or time zone makes unreadable
    (:func:`migration.engine.versions.check_values`), and DATETIME versions on a server
    whose zone is not UTC when the flow does not say which zone they are in."""
    zone: tuple[int, str] | None = None
    for tf in flow.tables:
        codec = codecs[tf.source]
        if codec is None:
            continue
        where = (f"flow {flow.name}: {settings.where} database {flow.source_database} "
                 f"table {tf.source}")
        if codec.data_type == "datetime" and not tf.version_timezone:
            if zone is None:
                with contextlib.closing(connect(settings, time_zone=None)) as own:
                    zone = server_utc_offset_s(own)
            if zone[0] != 0:
                raise FuretError(
                    f"{where}: version column {tf.version} is DATETIME (no time zone) and the "
                    f"server's time zone is {zone[1]}, UTC{zone[0] / 3600:+g}h: say which zone "
                    "the application writes it in with version_timezone: (e.g. '+01:00' or "
                    "Europe/Paris; UTC if it writes UTC)")
        highest = query(source, f"SELECT MAX({quote(tf.version)}) FROM "
                                f"{quote(flow.source_database)}.{quote(tf.source)}")[0][0]
        check_values(codec, where, codec.ledger(highest), codec.from_micros(now_us))


def _plan_round(conn: pymysql.connections.Connection, source: pymysql.connections.Connection,
                config: FuretConfig, flow: Flow, options: RoundOptions,
                schemas: dict[str, TableSchema], codecs: dict[str, VersionCodec | None],
                round_no: int
                ) -> tuple[RoundRow, dict[str, tuple[int | None, int | None]],
                           dict[str, list[plan.ChunkSpec]], dict[str, str]]:
    """The round's row, its window and chunks per table (ledger values: the version
    column's own unit), and the version type each window is in."""
    rs = config.rounds
    now_us = server_now_us(source)
    windows: dict[str, tuple[int | None, int | None]] = {}
    chunks: dict[str, list[plan.ChunkSpec]] = {}
    types = {tf.source: _describe(codecs[tf.source]) for tf in flow.tables}
    _check_versions(source, config.db(flow.source_server), flow, codecs, now_us)
    if options.strategy == Strategy.TS:
        marks = ledger.last_watermarks(conn, flow.name)
        if not marks and flow.reverse_of:  # from the switch, never from zero
            marks = reverse.start_marks(conn, flow, config.target.where)
        full = any(tf.source not in marks for tf in flow.tables)
        kind = "full" if full else "window"
        for tf in flow.tables:
            codec = codecs[tf.source]
            if codec is None:  # no version: key ranges, copied (round 1) or synced
                windows[tf.source] = (None, None)
                chunks[tf.source] = [dataclasses.replace(c, kind="key" if full else "sync")
                                     for c in _key_chunks(source, flow, tf, schemas[tf.source],
                                                          rs.chunk_rows)]
                continue
            now = codec.from_micros(now_us)
            lag, overlap = codec.duration(rs.safety_lag_ms), codec.duration(rs.overlap_ms)
            if full:
                windows[tf.source] = (None, now if options.final else now - lag)
                chunks[tf.source] = _key_chunks(source, flow, tf, schemas[tf.source],
                                                rs.chunk_rows)
                continue
            mark, was = marks[tf.source]
            if was is not None and was != types[tf.source]:
                raise FuretError(f"flow {flow.name} table {tf.source}: the last round's "
                                 f"watermark is in {was}, the version column is now "
                                 f"{types[tf.source]}: start the flow again (`furet round "
                                 "--flow` on an emptied ledger) or restore the old type")
            window = plan.ts_window(mark, now, overlap, lag, options.final)
            windows[tf.source] = (window.lo, window.hi)
            chunks[tf.source] = plan.window_chunks(plan.key_column_text(tf.keys), window,
                                                   rs.workers)
    else:
        kind = str(options.strategy)
        for tf in flow.tables:
            codec = codecs[tf.source]
            if len(tf.keys) != 1 or codec is None or codec.temporal:
                raise FuretError(f"flow {flow.name} table {tf.source}: --strategy "
                                 f"{options.strategy} needs a one-column key and an integer "
                                 "version (it only exists to show what it loses)")
            tm = tf.targets[0]
            column = (tf.version if options.strategy == Strategy.NAIVE
                      else (tf.id_column or tf.keys[0]))
            target_column = tm.target_of(column)
            if target_column is None:
                raise FuretError(f"flow {flow.name} table {tf.source}: --strategy "
                                 f"{options.strategy} needs {column} mapped into {tm.table}")
            found = query(conn, f"SELECT MAX({quote(target_column)}) FROM "
                                f"{quote(flow.target_database)}.{quote(tm.table)}")[0][0]
            top = None if found is None else int(found)
            windows[tf.source] = (top, None)
            if options.strategy == Strategy.NAIVE:
                chunks[tf.source] = plan.window_chunks(tf.keys[0], plan.Window(top, None), 1)
            else:
                chunks[tf.source] = [plan.ChunkSpec(0, "key", column,
                                                    None if top is None else (top,), None)]
    row = RoundRow(flow.name, round_no, options.strategy, kind, options.final, "running",
                   now_us // 1000)
    return row, windows, chunks, types


def _watermarks(conn: pymysql.connections.Connection, flow: Flow,
                round_row: RoundRow) -> dict[str, int | None]:
    """ts: the planned window's end (0 for a table without a version: it has been copied
    once); naive/id: the highest cursor the chunks reached."""
    marks: dict[str, int | None] = {}
    for tf in flow.tables:
        lo, hi = ledger.round_window(conn, flow.name, round_row.round_no, tf.source)
        if round_row.strategy == Strategy.TS:
            marks[tf.source] = hi if tf.version else 0
        else:
            top = ledger.highest_cursor(conn, flow.name, round_row.round_no, tf.source,
                                        "ts" if round_row.strategy == Strategy.NAIVE else "key")
            marks[tf.source] = top if top is not None else lo
    return marks


def run_round(config: FuretConfig, options: RoundOptions,
              progress: Progress | None = None,
              on_start: Callable[[RoundRow, bool], None] | None = None) -> RoundSummary:
    """Run (or resume) the next round of ``options.flow``; return its summary as the ledger
    recorded it. Raises :class:`QuarantineLimitExceeded` (carrying the summary) when the
    round quarantined more rows than ``options.max_quarantined``."""
    if options.reverse and options.strategy != Strategy.TS:
        raise FuretError(f"flow {options.flow}: --strategy {options.strategy} cannot run with "
                         "--reverse (reverse rounds are furet's ts rounds)")
    if options.assume_frozen and not (options.reverse and options.final):
        raise FuretError("--assume-frozen only makes sense with --reverse --final")
    flow = load_for(options.flow, config.flows.dir, options.reverse)
    to_cassandra = flow.target_kind == "cassandra"
    if to_cassandra and options.strategy != Strategy.TS:
        raise FuretError(f"flow {flow.name}: --strategy {options.strategy} needs a MariaDB "
                         "target (it reads max(version) or max(id) from the target)")
    sink: Progress = progress or Silent()
    # the rows go to the flow's target server; the ledger is always on the target (a
    # reverse flow writes the legacy: migration.engine.reverse)
    source_settings, target_settings = config.db(flow.source_server), config.target
    data_settings = config.db(flow.target_server)
    with contextlib.ExitStack() as stack:
        source = connect(source_settings)
        stack.callback(source.close)
        conn = connect(target_settings, autocommit=True, strict=True)
        stack.callback(conn.close)
        data = conn
        if not to_cassandra and flow.target_server != "target":
            data = connect(data_settings, autocommit=True, strict=True)
            stack.callback(data.close)
        schemas = validate_mariadb_flow(flow, source, source_settings,
                                        None if to_cassandra else data, data_settings)
        if flow.reverse_of:  # the frozen legacy: refuse now what its first write would
            reverse.check_writable(data, data_settings, flow)
        codecs: dict[str, VersionCodec | None] = {}
        for tf in flow.tables:
            codecs[tf.source] = version_codec(flow, tf, schemas[tf.source])
            if codecs[tf.source] is None and to_cassandra:
                raise FuretError(
                    f"flow {flow.name} table {tf.source}: `version: none` needs a MariaDB "
                    "target (changes are found by SQL checksums on both sides); add a version "
                    f"with `furet legacy add-version --table {tf.source}`")
        cassandra = None
        if to_cassandra:
            from migration.cassandra_session import cassandra_session
            from migration.flows.validate import validate_cassandra_flow

            cluster, cassandra = cassandra_session(config.cassandra)
            stack.callback(cluster.shutdown)
            validate_cassandra_flow(flow, cassandra, config.cassandra)
        try:
            ledger.ensure_ledger(conn)
        except pymysql.MySQLError as exc:
            raise db_error(exc, target_settings, "furet") from None
        # one writer per flow: rounds and `verify --repair` exclude each other
        stack.enter_context(flow_lock(target_settings, flow.name,
                                      f"furet round --flow {flow.name}"))
        if options.final and flow.reverse_of:
            # the source is the target, which furet cannot freeze: the operator's word,
            # and what furet can see
            if not options.assume_frozen:
                raise reverse.assume_frozen_needed(flow, source_settings)
            reverse.assert_source_frozen(source, source_settings, flow)
        elif options.final:
            # the final round reads up to now: refuse it before anything moves unless the
            # legacy (the flow's source, or what feeds a target-side source) is frozen
            legacy = config.legacy
            if flow.source_server == "legacy":
                assert_frozen(source, legacy)
            else:
                with contextlib.closing(connect(legacy)) as frozen:
                    assert_frozen(frozen, legacy)
        while True:
            last = ledger.last_round(conn, flow.name)
            resumed = last is not None and last.status == "running"
            if last is not None and last.status == "running":
                if last.strategy != options.strategy:
                    raise FuretError(f"flow {flow.name}: round {last.round_no} is unfinished "
                                     f"with --strategy {last.strategy}; finish it with that "
                                     "strategy")
                round_row = last
                ledger.note_invocation(conn, flow.name, last.round_no)
            else:
                round_no = (last.round_no + 1) if last else 1
                round_row, windows, chunk_specs, types = _plan_round(
                    conn, source, config, flow, options, schemas, codecs, round_no)
                ledger.create_round(conn, round_row, config.rounds.overlap_ms,
                                    config.rounds.safety_lag_ms, windows, chunk_specs, types)
            if on_start:
                on_start(round_row, resumed)
            summary, run = _run_planned(config, flow, round_row, conn, data, source, schemas,
                                        codecs, sink, cassandra, options.literals)
            summary = dataclasses.replace(summary, resumed=resumed,
                                          literals=dict(run.literal_paths),
                                          writes=run.writes())
            # --final on an unfinished non-final round: that round's window stopped a
            # safety lag short of its start, so it is finished first, then the final round
            # is planned from its watermark (never only the resumed one)
            if options.final and not round_row.final:
                continue
            if options.final and flow.reverse_of:
                reverse.check_nothing_after(source, source_settings, flow, codecs, summary)
            break
    if options.max_quarantined is not None and \
            summary.rows_quarantined > options.max_quarantined:
        raise QuarantineLimitExceeded(summary, options.max_quarantined)
    return summary


def _run_planned(config: FuretConfig, flow: Flow, round_row: RoundRow,
                 conn: pymysql.connections.Connection, data: pymysql.connections.Connection,
                 source: pymysql.connections.Connection, schemas: dict[str, TableSchema],
                 codecs: dict[str, VersionCodec | None], sink: Progress, cassandra: Any,
                 literals: str) -> tuple[RoundSummary, _Run]:
    """Run the pending chunks of a planned round, check its overlap, close it. ``conn``:
    the ledger; ``data``: the target tables' server (the same connection but for a reverse
    flow)."""
    target_settings = config.target
    data_settings = config.db(flow.target_server)
    to_cassandra = cassandra is not None
    todo = ledger.pending_chunks(conn, flow.name, round_row.round_no)
    for tf in flow.tables:
        total = None
        if round_row.kind == "full":
            total = _rows_estimate(source, flow.source_database, tf.source)
        sink.table(tf.source, total)
    done_before = ledger.last_watermarks(conn, flow.name) if round_row.kind == "full" else {}
    fresh = frozenset(tf.source for tf in flow.tables if round_row.kind == "full"
                      and tf.source not in done_before)
    deferred: dict[str, list[deferred_indexes.Index]] = {}
    try:
        if not to_cassandra and data is conn:
            # also what an earlier invocation deferred, whatever rounds.defer_indexes says now
            deferred = deferred_indexes.pending(conn, flow.name, flow.target_database)
        if fresh and not to_cassandra and config.rounds.defer_indexes and data is conn:
            deferred = deferred_indexes.defer(
                conn, flow.name, round_row.round_no, flow.target_database,
                _target_keys(flow, fresh, shared=False))
    except pymysql.MySQLError as exc:
        raise db_error(exc, data_settings, flow.target_database) from None
    # read after the indexes were deferred: a unique key that is not there is not guarded
    target_schemas = {} if to_cassandra else {
        tm.table: read_schema(data, data_settings, flow.target_database, tm.table)
        for tf in flow.tables for tm in tf.targets}
    run = _Run(config, flow, round_row, schemas, codecs, sink, cassandra,
               {k: v for k, v in target_schemas.items() if v is not None}, literals, fresh)
    try:
        _run_chunks(run, todo, config.rounds.workers)
        run.load_segments()
        if deferred:
            for tf in flow.tables:
                if any(tm.table in deferred for tm in tf.targets):
                    sink.phase(tf.source, "building the deferred indexes")
            run.restore_indexes(conn)
        late = {} if to_cassandra else late_rows(source, data, config, flow, round_row,
                                                 codecs, conn)
    finally:
        run.close()
    try:
        summary = ledger.finish_round(conn, flow.name, round_row.round_no,
                                      _watermarks(conn, flow, round_row))
    except pymysql.MySQLError as exc:
        raise db_error(exc, target_settings, "furet", "rounds") from None
    return dataclasses.replace(summary, late_rows=late), run


# Rows stamped at most this far below a window (or the overlap, if longer) are checked.
LATE_BAND_MIN_MS = 60_000
LATE_ROWS_LIMIT = 10_000   # rows of the band read at most, newest first
LATE_LOOKUP_BATCH = 500


def late_rows(source: pymysql.connections.Connection, conn: pymysql.connections.Connection,
              config: FuretConfig, flow: Flow, round_row: RoundRow,
              codecs: dict[str, VersionCodec | None],
              book: pymysql.connections.Connection | None = None) -> dict[str, int]:
    """Per source table of a ``ts`` window round: rows committed later than the overlap
    allows. A window ``(lo, hi]`` re-reads ``overlap_ms`` below the last watermark; a row
    stamped below ``lo`` that committed after the previous round read its versions is in
    no window, ever. This looks at the band just below: source rows whose version is in
    ``(lo - band, lo]`` (band: the overlap, at least :data:`LATE_BAND_MIN_MS`) and counts
    those the target lacks or holds at an older version (rows quarantined at that version
    excepted). An undersized overlap is seen, and the rows named for a repair, instead of
    being lost silently; nothing is copied here.

    Cost: one range read of the source's version index for at most
    :data:`LATE_ROWS_LIMIT` rows (the rows changed in one band: about what the overlap
    re-reads anyway), then one primary-key lookup on each target table per
    :data:`LATE_LOOKUP_BATCH` of them. Checked: MariaDB targets whose mapping carries the
    key and the version untransformed (a Cassandra target is not checked).

    ``conn``: the target tables' server; ``book``: the ledger's, when it is another (a
    reverse flow's)."""
    if round_row.strategy != Strategy.TS or round_row.kind != "window":
        return {}
    book = book or conn
    found: dict[str, int] = {}
    for tf in flow.tables:
        codec = codecs[tf.source]
        if codec is None:
            continue
        lo, _ = ledger.round_window(book, flow.name, round_row.round_no, tf.source)
        if lo is None:
            continue
        band = codec.duration(max(config.rounds.overlap_ms, LATE_BAND_MIN_MS))
        column = quote(tf.version)
        try:
            rows = query(source, f"SELECT {', '.join(quote(k) for k in tf.keys)}, {column} "
                                 f"FROM {quote(flow.source_database)}.{quote(tf.source)} "
                                 f"WHERE {column} > %s AND {column} <= %s "
                                 f"ORDER BY {column} DESC LIMIT {LATE_ROWS_LIMIT}",
                         (codec.param(lo - band), codec.param(lo)))
        except pymysql.MySQLError as exc:
            raise db_error(exc, config.db(flow.source_server), flow.source_database,
                           tf.source) from None
        width = len(tf.keys)
        wanted = {key_text(r[:width]): (tuple(r[:width]), codec.ledger(r[width]))
                  for r in rows}
        late: set[str] = set()
        for tm in tf.targets:
            by_source = {c.source: c for c in tm.columns}
            mapped = [by_source.get(k) for k in (*tf.keys, tf.version)]
            if any(c is None or c.transform for c in mapped):
                continue
            tkeys = [c.target for c in mapped[:-1] if c is not None]
            tversion = quote(mapped[-1].target) if mapped[-1] is not None else ""
            items = list(wanted.items())
            for start in range(0, len(items), LATE_LOOKUP_BATCH):
                part = items[start:start + LATE_LOOKUP_BATCH]
                clause, args = among(tkeys, [key for _, (key, _) in part])
                try:
                    held = {key_text(r[:width]): codec.ledger(r[width]) for r in query(
                        conn, f"SELECT {', '.join(quote(k) for k in tkeys)}, {tversion} "
                              f"FROM {quote(flow.target_database)}.{quote(tm.table)} "
                              f"WHERE {clause}", args)}
                except pymysql.MySQLError as exc:
                    raise db_error(exc, config.db(flow.target_server), flow.target_database,
                                   tm.table) from None
                for text, (_, version) in part:
                    if version is None:
                        continue
                    if text not in held:
                        late.add(text)                    # missing from the target
                    elif (have := held[text]) is not None and have < version:
                        late.add(text)                    # the target holds an older one
        if late:
            quarantined = ledger.quarantined_versions(book, flow.name, tf.source)
            late = {t for t in late if wanted[t][1] not in quarantined.get(t, set())}
        found[tf.source] = len(late)
    return found


def _held_outcome(outcome: BatchOutcome, _cur: Any) -> BatchOutcome:
    """A batch's write that already happened (streamed SSTables): its outcome to book."""
    return outcome


def _run_chunks(run: _Run, chunks: list[Chunk], workers: int) -> None:
    if not chunks:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers),
                                               thread_name_prefix="furet-chunk") as pool:
        futures = [pool.submit(run.run_chunk, chunk) for chunk in chunks]
        done, _ = concurrent.futures.wait(futures,
                                          return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            run.stop.set()
            for future in futures:
                future.cancel()
            exc = failed[0].exception()
            assert exc is not None
            raise exc
