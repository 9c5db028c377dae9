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

import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.config import DbSettings, FuretConfig
from migration.db import RETRYABLE_ERRORS, connect, db_error, error_code, query, server_now_ms
from migration.engine import ledger, plan
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.galera_writer import GaleraWriter
from migration.engine.ledger import Chunk, RoundRow
from migration.engine.reader import Cursor, read_batch, select_batch_sql, select_keys_sql
from migration.engine.results import QuarantineLimitExceeded, RoundSummary
from migration.engine.sql_pushdown import Pushdown
from migration.engine.sql_pushdown import plan as plan_pushdown
from migration.engine.writer import BatchOutcome, Writer
from migration.enums import LiteralsPath, Strategy
from migration.errors import FuretError
from migration.flows.mapping import Flow, TableFlow, load_flow
from migration.flows.validate import INTEGER_TYPES, TableSchema, read_schema, validate_mariadb_flow
from migration.progress import Reporter as Progress
from migration.progress import Silent


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
                 schemas: dict[str, TableSchema], progress: Progress,
                 cassandra: Any = None,
                 target_schemas: dict[str, TableSchema] | None = None,
                 literals: str = "auto") -> None:
        self.config = config
        self.flow = flow
        self.round = round_row
        self.schemas = schemas
        self.progress = progress
        self.source_settings = config.db(flow.source_server)
        self.target_settings = config.target
        self.local = threading.local()
        self.connections: list[pymysql.connections.Connection] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.writers: dict[str, Writer] = {}
        # MariaDB tables whose rows the source server turns into SQL literals: chosen once
        # per run, reported in the round summary ("literals"), never per batch
        self.pushdowns: dict[str, tuple[Pushdown, GaleraWriter]] = {}
        self.literal_paths: dict[str, str] = {}
        for tf in flow.tables:
            if cassandra is not None:
                self.writers[tf.source] = CassandraWriter(cassandra, flow.target_database, tf)
                continue
            galera = GaleraWriter(flow.target_database, tf, round_row.strategy, target_schemas)
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

    def close(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.close()

    def _typed_key(self, tf: TableFlow, column: str, value: Any) -> Any:
        if value is None:
            return None
        dtype = self.schemas[tf.source].columns[column].data_type
        return int(value) if dtype in INTEGER_TYPES else value

    def run_chunk(self, chunk: Chunk) -> None:
        tf = self.flow.table(chunk.source_table)
        spec = chunk.spec
        columns = tf.source_columns
        cursor_index = columns.index(spec.key_column) if spec.kind == "key" else 0
        pushdown = self.pushdowns.get(tf.source)
        select, literal_index = None, 0
        if pushdown:
            select, cursor_index, literal_index = pushdown[0].select_list(
                spec.key_column if spec.kind == "key" else tf.key)
        settings = self.config.rounds
        target = self.target()
        ledger.claim_chunk(target, chunk)
        target.commit()
        cursor = Cursor(chunk.cursor_ts, self._typed_key(tf, spec.key_column if spec.kind ==
                                                         "key" else tf.key, chunk.cursor_key))
        limit = settings.batch_rows
        started = time.monotonic()
        done_rows = 0
        while not self.stop.is_set():
            sql, args = select_batch_sql(self.flow.source_database, tf.source, columns, tf.key,
                                         tf.version, spec, cursor, limit, select)
            rows = self._read(sql, args)
            if not rows:
                ledger.finish_chunk(target, chunk)
                target.commit()
                return
            last = rows[-1]
            new_cursor = Cursor(int(last[1]), last[cursor_index])
            size, write = (self._server_literals(tf, pushdown[1], rows, literal_index)
                           if pushdown else self._python_literals(tf, rows))
            self._commit_batch(chunk, len(rows), new_cursor, write)
            cursor = new_cursor
            # keep each transaction under batch_bytes (Galera write-set) as rows grow
            limit = max(1, min(settings.batch_rows, settings.batch_bytes * len(rows) // size))
            self.progress.advance(tf.source, len(rows))
            done_rows += len(rows)
            if settings.max_rows_per_second > 0:
                ahead = done_rows / settings.max_rows_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _read(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        for attempt in _retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.source().ping(reconnect=True)
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

    def _originals(self, tf: TableFlow, keys: list[Any]) -> list[tuple[Any, ...]]:
        """Rows read again by key, as source values (for the Python path)."""
        if not keys:
            return []
        sql = select_keys_sql(self.flow.source_database, tf.source, tf.source_columns, tf.key,
                              len(keys))
        return self._read(sql, list(keys))

    def _server_literals(self, tf: TableFlow, writer: GaleraWriter,
                         rows: list[tuple[Any, ...]], first: int
                         ) -> tuple[int, Callable[[Any], BatchOutcome]]:
        """(size, write) of a batch read as server-built literals (from column ``first``):
        clean rows are written as they came, rows with a reason (``!...``) are read again
        by key and go through Python."""
        clean = [r[first:] for r in rows if r[first][:1] != b"!"]
        keys = [r[0] for r in rows if r[first][:1] != b"!"]
        dirty = self._originals(tf, [r[0] for r in rows if r[first][:1] == b"!"])

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
        """Rows + quarantine + checkpoint in one target transaction."""
        for attempt in _retrying():
            with attempt:
                target = self.target()
                if attempt.retry_state.attempt_number > 1:
                    target.ping(reconnect=True)
                try:
                    target.begin()
                    with target.cursor() as cur:
                        outcome = write(cur)
                        for statement in ledger.quarantine_statements(
                                self.flow.name, self.round.round_no, outcome.quarantined):
                            cur.execute(statement)
                        if not ledger.checkpoint(cur, chunk, cursor.ts, cursor.key, read,
                                                 outcome.written, len(outcome.quarantined)):
                            raise FuretError(
                                f"flow {self.flow.name} round {self.round.round_no} table "
                                f"{chunk.source_table} chunk {chunk.spec.chunk_no}: checkpoint "
                                "moved under us (another runner?); nothing was written")
                    target.commit()
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        target.rollback()
                    if isinstance(exc, pymysql.MySQLError) and not _is_retryable(exc):
                        raise db_error(exc, self.target_settings,
                                       self.flow.target_database, chunk.source_table) from None
                    raise
                chunk.batches += 1
                return
        raise AssertionError("unreachable")


def _plan_round(conn: pymysql.connections.Connection, source: pymysql.connections.Connection,
                config: FuretConfig, flow: Flow, options: RoundOptions,
                schemas: dict[str, TableSchema], round_no: int
                ) -> tuple[RoundRow, dict[str, tuple[int | None, int | None]],
                           dict[str, list[plan.ChunkSpec]]]:
    rs = config.rounds
    now = server_now_ms(source)
    windows: dict[str, tuple[int | None, int | None]] = {}
    chunks: dict[str, list[plan.ChunkSpec]] = {}
    if options.strategy == Strategy.TS:
        marks = ledger.last_watermarks(conn, flow.name)
        full = any(tf.source not in marks for tf in flow.tables)
        kind = "full" if full else "window"
        for tf in flow.tables:
            table = f"`{flow.source_database}`.`{tf.source}`"
            if full:
                hi = now if options.final else now - rs.safety_lag_ms
                windows[tf.source] = (None, hi)
                if schemas[tf.source].columns[tf.key].data_type in INTEGER_TYPES:
                    lo_key, hi_key = query(source, f"SELECT MIN(`{tf.key}`), MAX(`{tf.key}`) "
                                                   f"FROM {table}")[0]
                    chunks[tf.source] = plan.integer_key_chunks(tf.key, lo_key, hi_key,
                                                                rs.chunk_rows)
                else:
                    keys = query(source, f"SELECT `{tf.key}` FROM {table} ORDER BY `{tf.key}`")
                    bounds = [k[0] for k in keys[rs.chunk_rows - 1::rs.chunk_rows]]
                    chunks[tf.source] = plan.boundary_key_chunks(tf.key, bounds)
            else:
                window = plan.ts_window(marks[tf.source], now, rs.overlap_ms, rs.safety_lag_ms,
                                        options.final)
                windows[tf.source] = (window.lo, window.hi)
                chunks[tf.source] = plan.window_chunks(tf.key, window, rs.workers)
    else:
        kind = str(options.strategy)
        for tf in flow.tables:
            tm = tf.targets[0]
            column = (tf.version if options.strategy == Strategy.NAIVE
                      else (tf.id_column or tf.key))
            target_column = tm.target_of(column)
            if target_column is None:
                raise FuretError(f"flow {flow.name} table {tf.source}: --strategy "
                                 f"{options.strategy} needs {column} mapped into {tm.table}")
            mark = query(conn, f"SELECT MAX(`{target_column}`) FROM "
                               f"`{flow.target_database}`.`{tm.table}`")[0][0]
            mark = None if mark is None else int(mark)
            windows[tf.source] = (mark, None)
            if options.strategy == Strategy.NAIVE:
                chunks[tf.source] = plan.window_chunks(tf.key, plan.Window(mark, None), 1)
            else:
                chunks[tf.source] = [plan.ChunkSpec(0, "key", column, mark, None)]
    row = RoundRow(flow.name, round_no, options.strategy, kind, options.final, "running", now)
    return row, windows, chunks


def _watermarks(conn: pymysql.connections.Connection, flow: Flow,
                round_row: RoundRow) -> dict[str, int | None]:
    """ts: the planned window's end; naive/id: the highest cursor the chunks reached."""
    marks: dict[str, int | None] = {}
    for tf in flow.tables:
        lo, hi = ledger.round_window(conn, flow.name, round_row.round_no, tf.source)
        if round_row.strategy == Strategy.TS:
            marks[tf.source] = hi
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
    flow = load_flow(options.flow)
    to_cassandra = flow.target_kind == "cassandra"
    if to_cassandra and options.strategy != Strategy.TS:
        raise FuretError(f"flow {flow.name}: --strategy {options.strategy} needs a MariaDB "
                         "target (it reads max(version) or max(id) from the target)")
    sink: Progress = progress or Silent()
    source_settings, target_settings = config.db(flow.source_server), config.target
    with contextlib.ExitStack() as stack:
        source = connect(source_settings)
        stack.callback(source.close)
        conn = connect(target_settings, autocommit=True, strict=True)
        stack.callback(conn.close)
        schemas = validate_mariadb_flow(flow, source, source_settings,
                                        None if to_cassandra else conn, target_settings)
        cassandra = None
        if to_cassandra:
            from migration.cassandra_session import cassandra_session
            from migration.flows.validate import validate_cassandra_flow

            cluster, cassandra = cassandra_session(config.cassandra)
            stack.callback(cluster.shutdown)
            validate_cassandra_flow(flow, cassandra, config.cassandra)
        try:
            ledger.ensure_ledger(conn)
            got = ledger.lock_flow(conn, flow.name)
        except pymysql.MySQLError as exc:
            raise db_error(exc, target_settings, "furet") from None
        if not got:
            raise FuretError(f"{target_settings.where}: a round of flow {flow.name} is already "
                             "running (lock furet.round." + flow.name + " is held)")
        last = ledger.last_round(conn, flow.name)
        resumed = last is not None and last.status == "running"
        if last is not None and last.status == "running":
            if last.strategy != options.strategy:
                raise FuretError(f"flow {flow.name}: round {last.round_no} is unfinished with "
                                 f"--strategy {last.strategy}; finish it with that strategy")
            round_row = last
            ledger.note_invocation(conn, flow.name, last.round_no)
        else:
            round_no = (last.round_no + 1) if last else 1
            round_row, windows, chunk_specs = _plan_round(conn, source, config, flow, options,
                                                          schemas, round_no)
            ledger.create_round(conn, round_row, config.rounds.overlap_ms,
                                config.rounds.safety_lag_ms, windows, chunk_specs)
        if on_start:
            on_start(round_row, resumed)
        todo = ledger.pending_chunks(conn, flow.name, round_row.round_no)
        for tf in flow.tables:
            total = None
            if round_row.kind == "full":
                total = int(query(source, "SELECT COALESCE(MAX(table_rows), 0) FROM "
                                  "information_schema.tables WHERE table_schema = %s AND "
                                  "table_name = %s", (flow.source_database, tf.source))[0][0])
            sink.table(tf.source, total)
        target_schemas = {} if to_cassandra else {
            tm.table: read_schema(conn, target_settings, flow.target_database, tm.table)
            for tf in flow.tables for tm in tf.targets}
        run = _Run(config, flow, round_row, schemas, sink, cassandra,
                   {k: v for k, v in target_schemas.items() if v is not None},
                   options.literals)
        stack.callback(run.close)
        _run_chunks(run, todo, config.rounds.workers)
        try:
            summary = ledger.finish_round(conn, flow.name, round_row.round_no,
                                          _watermarks(conn, flow, round_row))
        except pymysql.MySQLError as exc:
            raise db_error(exc, target_settings, "furet", "rounds") from None
    summary = dataclasses.replace(summary, resumed=resumed, literals=dict(run.literal_paths))
    if options.max_quarantined is not None and \
            summary.rows_quarantined > options.max_quarantined:
        raise QuarantineLimitExceeded(summary, options.max_quarantined)
    return summary


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
