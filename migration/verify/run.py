"""`furet verify --flow F`: compare a flow's source and target chunk by chunk, drill down to
rows where they differ, optionally repair, and report.

1. load the flow and check it against the live schemas (as a round does);
2. per (source table, target table): the source rows currently in furet.quarantine are
   expected absent, so they are left out of both sides' checksums and counted apart;
3. chunks: key ranges (version ranges under ``--since/--until``) whose size adapts to keep
   each checksum query near ``chunk_time`` seconds; ``--sample P`` checks a share of them;
   MariaDB targets are checksummed chunk by chunk like the source; a Cassandra table is
   read once over token ranges and its rows are bucketed into the same chunks;
4. a chunk whose (count, checksum) differ is drilled down to rows: missing, extra and
   different keys, with the differing columns;
5. ``repair``: missing and different rows are re-copied through the round's version-aware
   writers, extra rows deleted only with ``delete_extra``; the repaired chunks are checked
   again and the report says what the re-check found.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysql

from migration.config import DbSettings, FuretConfig
from migration.db import connect, db_error, query
from migration.errors import FuretError
from migration.flows.mapping import ColumnMap, Flow, TableFlow, TargetMap, load_flow
from migration.flows.validate import (
    INTEGER_TYPES,
    TableSchema,
    read_schema,
    validate_mariadb_flow,
)
from migration.verify import cassandra_checksum as cq
from migration.verify import mysql_checksum as mq
from migration.verify.chunks import BoundaryRanges, ChunkSizer, IntegerRanges, Range, chunk_units
from migration.verify.drilldown import Classified, classify, differing_columns, group, merge
from migration.verify.mysql_checksum import RowInfo, SqlSide
from migration.verify.normalise import needs_client_hash, value_text
from migration.verify.report import ChunkReport, DiffRow, TableReport, VerifyReport
from migration.verify.window import Sampler, parse_window


class Progress(Protocol):
    def phase(self, table: str, what: str) -> None: ...
    def advance(self, table: str, chunks: int, rows: int) -> None: ...


class _NoProgress:
    def phase(self, table: str, what: str) -> None:
        pass

    def advance(self, table: str, chunks: int, rows: int) -> None:
        pass


@dataclass(frozen=True)
class VerifyOptions:
    flow: str
    since: str | None = None
    until: str | None = None
    sample: float = 1.0
    seed: int | None = None
    tables: tuple[str, ...] = ()         # only these source tables (default: all)
    workers: int = 4
    chunk_time: float = 0.3              # seconds per checksum query (target)
    initial_chunk: int = 5000            # first chunk: keys (or rows for text keys)
    max_rows_per_second: int = 0         # all reads together; 0 = unthrottled
    max_load: int = 0                    # pause while Threads_running is above; 0 = off
    consistency: str = "LOCAL_QUORUM"    # Cassandra reads
    splits: int = 0                      # Cassandra token sub-ranges; 0 = 16 per worker
    repair: bool = False
    delete_extra: bool = False
    overwrite_newer: bool = False
    max_report_rows: int = 1000          # diff rows listed per table (counts stay exact)


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


class _Connections:
    """One connection per thread and server, closed at the end."""

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
            conn = cache[key] = connect(settings, sql_mode="")
            with self.lock:
                self.all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.all:
            with contextlib.suppress(Exception):
                conn.close()


@dataclass
class _Chunk:
    rng: Range
    take: bool
    report: ChunkReport
    source: tuple[int, int] = (0, 0)
    target: tuple[int, int] = (0, 0)
    excluded: list[Any] = field(default_factory=list)   # quarantined native keys


@dataclass
class Pair:
    """One source table compared with one of its target tables."""

    tf: TableFlow
    tm: TargetMap
    source: SqlSide
    target: SqlSide | cq.CassandraSide
    names: tuple[str, ...]
    numeric_key: bool

    @property
    def name(self) -> str:
        return f"{self.tf.source} -> {self.tm.table}"

    @property
    def cassandra(self) -> bool:
        return isinstance(self.target, cq.CassandraSide)


def nk(value: Any) -> str:
    """The normalised key both sides are matched on."""
    return str(value_text(value))


class Verifier:
    def __init__(self, config: FuretConfig, flow: Flow, options: VerifyOptions,
                 progress: Progress, session: Any = None) -> None:
        self.config = config
        self.flow = flow
        self.options = options
        self.progress = progress
        self.session = session
        self.window = parse_window(options.since, options.until)
        self.sampler = Sampler(options.sample, options.seed)
        self.throttle = Throttle(options.max_rows_per_second)
        self.conns = _Connections()
        self.producer_conns: list[pymysql.connections.Connection] = []
        self.lock = threading.Lock()

    def close(self) -> None:
        self.conns.close()
        for conn in self.producer_conns:
            with contextlib.suppress(Exception):
                conn.close()

    # --- quarantine ---------------------------------------------------------------------

    def quarantined(self, pair: Pair) -> dict[str, tuple[Any, int]]:
        """Source rows whose CURRENT version is in furet.quarantine: expected absent."""
        target = self.conns.get(self.config.target)
        try:
            rows = query(target, "SELECT row_key, version FROM furet.quarantine WHERE flow = %s "
                                 "AND source_table = %s", (self.flow.name, pair.tf.source))
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in (1049, 1146):  # no ledger yet: nothing quarantined
                return {}
            raise db_error(exc, self.config.target, "furet", "quarantine") from None
        versions: dict[str, set[int]] = {}
        for key, version in rows:
            versions.setdefault(str(key), set()).add(int(version))
        natives = [int(k) if pair.numeric_key else k for k in versions
                   if not pair.numeric_key or k.lstrip("-").isdigit()]
        current = mq.current_versions(self.conns.get(pair.source.settings), pair.source, natives)
        return {k: v for k, v in current.items() if v[1] in versions.get(k, set())}

    # --- chunks -------------------------------------------------------------------------

    def _producer(self, pair: Pair) -> tuple[Any, ChunkSizer, bool]:
        src = pair.source
        conn = connect(src.settings, sql_mode="")  # the producer's own (nibble queries)
        self.producer_conns.append(conn)
        window = self.window
        initial = self.options.initial_chunk
        if window.bounded:
            lo, hi = mq.key_bounds(conn, src, src.version, window)
            count = mq.count_rows(conn, src, window)
            start = window.since if window.since is not None else (
                int(lo) - 1 if lo is not None else 0)
            stop = window.until if window.until is not None else (
                int(hi) if hi is not None else start)
            span = max(1, stop - start)
            size = max(1, span * initial // max(1, count))
            sizer = ChunkSizer(size, self.options.chunk_time, minimum=1,
                               maximum=max(span, 1))
            return IntegerRanges("version", window.since, start, stop, window.until), sizer, True
        if pair.numeric_key:
            lo, hi = mq.key_bounds(conn, src, src.key, window)
            start = int(lo) - 1 if lo is not None else 0
            stop = int(hi) if hi is not None else 0
            sizer = ChunkSizer(initial, self.options.chunk_time)
            return IntegerRanges("key", None, start, stop, None), sizer, True
        sizer = ChunkSizer(initial, self.options.chunk_time, maximum=1_000_000)
        return BoundaryRanges(lambda lo, n: mq.next_boundary(conn, src, lo, n)), sizer, False

    def _excluded(self, quarantine: dict[str, tuple[Any, int]], rng: Range) -> list[Any]:
        out = []
        for native, version in quarantine.values():
            if not self.window.contains(version):
                continue
            if rng.contains(version if rng.kind == "version" else native):
                out.append(native)
        return out

    def _wait_load(self, conn: pymysql.connections.Connection, side: SqlSide) -> None:
        limit = self.options.max_load
        while limit > 0 and mq.threads_running(conn, side) > limit:
            time.sleep(0.5)

    def _side_checksum(self, side: SqlSide, chunk: _Chunk) -> tuple[int, int]:
        conn = self.conns.get(side.settings)
        self._wait_load(conn, side)
        return mq.checksum(conn, side, chunk.rng, self.window, chunk.excluded)

    def _checksum_chunk(self, pair: Pair, chunk: _Chunk) -> None:
        started = time.monotonic()
        chunk.source = self._side_checksum(pair.source, chunk)
        if isinstance(pair.target, SqlSide):
            chunk.target = self._side_checksum(pair.target, chunk)
        chunk.report.seconds = time.monotonic() - started
        chunk.report.source_rows = chunk.source[0]
        chunk.report.target_rows = chunk.target[0]
        chunk.report.quarantined = len(chunk.excluded)

    def _run_chunks(self, pair: Pair, chunks: Iterator[_Chunk],
                    on_done: Callable[[_Chunk], None]) -> None:
        """Checksum ``chunks`` on ``workers`` threads (the iterator is shared, locked)."""
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while not errors:
                    with lock:
                        chunk = next(chunks, None)
                    if chunk is None:
                        return
                    if chunk.take:
                        self._checksum_chunk(pair, chunk)
                        self.throttle(chunk.source[0] + chunk.target[0])
                    on_done(chunk)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(max(1, self.options.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _adaptive_chunks(self, pair: Pair, quarantine: dict[str, tuple[Any, int]]
                         ) -> tuple[Iterator[_Chunk], Callable[[_Chunk], None]]:
        producer, sizer, numeric = self._producer(pair)

        def chunks() -> Iterator[_Chunk]:
            while True:
                rng = producer.next(sizer.size)
                if rng is None:
                    return
                take = self.sampler.take()
                report = ChunkReport(rng.no, rng.kind, rng.lo, rng.hi,
                                     status="ok" if take else "skipped")
                yield _Chunk(rng, take, report, excluded=self._excluded(quarantine, rng))

        def learn(chunk: _Chunk) -> None:
            if chunk.take:
                units = chunk_units(chunk.rng, max(chunk.source[0], 1), numeric)
                if units is not None:
                    sizer.update(units, chunk.report.seconds)

        return chunks(), learn

    # --- one pair -----------------------------------------------------------------------

    def compare(self, pair: Pair, report: TableReport,
                fixed: Sequence[Range] | None = None) -> tuple[list[_Chunk], Classified]:
        """Checksum every chunk (adaptive, or the ``fixed`` ones for a re-check), then drill
        the mismatching ones down to rows."""
        quarantine = self.quarantined(pair)
        done: list[_Chunk] = []
        if fixed is None:
            chunks, learn = self._adaptive_chunks(pair, quarantine)
        else:
            chunks = iter([_Chunk(r, True, ChunkReport(r.no, r.kind, r.lo, r.hi),
                                  excluded=self._excluded(quarantine, r)) for r in fixed])
            learn = None

        def on_done(chunk: _Chunk) -> None:
            if learn is not None:
                learn(chunk)
            with self.lock:
                done.append(chunk)
            self.progress.advance(pair.name, 1, chunk.source[0])

        self.progress.phase(pair.name, "checksums")
        self._run_chunks(pair, chunks, on_done)
        done.sort(key=lambda c: c.rng.no)
        report.quarantined = sum(len(c.excluded) for c in done if c.take)
        report.quarantined_keys = sorted(
            (k for c in done if c.take for k in c.excluded),
            key=lambda k: _order(str(k)))[:self.options.max_report_rows]
        if pair.cassandra:
            started = time.monotonic()
            self._cassandra_buckets(pair, done, quarantine)
            report.target_seconds = time.monotonic() - started
        result = Classified()
        for chunk in done:
            if chunk.take and chunk.source != chunk.target:
                chunk.report.status = "mismatch"
        bad = [c for c in done if c.report.status == "mismatch"]
        if bad:
            self.progress.phase(pair.name, f"drill-down of {len(bad)} chunks")
            per_chunk = (self._drill_cassandra(pair, done, bad, quarantine) if pair.cassandra
                         else [self._drill_sql(pair, c) for c in bad])
            for chunk, classified in zip(bad, per_chunk, strict=True):
                chunk.report.missing = len(classified.missing)
                chunk.report.extra = len(classified.extra)
                chunk.report.different = len(classified.different)
                if classified.clean:
                    # the rows changed between the checksum and the drill-down (live
                    # traffic on the source): nothing differs at row level any more
                    chunk.report.status = "transient"
                merge(result, classified)
        self.progress.phase(pair.name, "compared")
        return done, result

    # --- SQL drill-down -----------------------------------------------------------------

    def _drill_sql(self, pair: Pair, chunk: _Chunk) -> Classified:
        assert isinstance(pair.target, SqlSide)
        src_conn = self.conns.get(pair.source.settings)
        tgt_conn = self.conns.get(pair.target.settings)
        src = {nk(r.key): r for r in mq.row_hashes(src_conn, pair.source, chunk.rng,
                                                   self.window, chunk.excluded)}
        tgt = group([(nk(r.key), r) for r in mq.row_hashes(tgt_conn, pair.target, chunk.rng,
                                                          self.window, chunk.excluded)])
        found = classify(src, tgt)
        if self.window.bounded and (found.missing or found.extra):
            src_else = mq.rows_by_key(src_conn, pair.source,
                                      [rows[0].key for k, rows in tgt.items() if k not in src])
            tgt_else = mq.rows_by_key(tgt_conn, pair.target,
                                      [r.key for k, r in src.items() if k not in tgt])
            found = classify(src, tgt, src_else, {k: [v] for k, v in tgt_else.items()})
        return found

    # --- Cassandra ----------------------------------------------------------------------

    def _chunk_of(self, pair: Pair, locator: cq.Locator, taken: set[int],
                  quarantine: dict[str, tuple[Any, int]]) -> Callable[[Any, Any], int | None]:
        by_version = self.window.bounded
        window = self.window

        def chunk_of(key: Any, version: Any) -> int | None:
            if by_version:
                if version is None or not window.contains(int(version)):
                    return None
                index = locator.find(int(version))
            else:
                index = locator.find(key)
            if index is None or index not in taken:
                return None
            if quarantine and nk(key) in quarantine:
                return None
            return index

        return chunk_of

    def _scan(self, pair: Pair, chunk_of: Callable[[Any, Any], int | None],
              keep: Callable[[Any, Any], bool] | None = None) -> cq.ScanResult:
        assert isinstance(pair.target, cq.CassandraSide)
        workers = max(1, self.options.workers)
        try:
            return cq.scan(pair.target, chunk_of, keep, splits=self.options.splits or 16 * workers,
                           workers=workers,
                           on_rows=lambda n: self.progress.advance(pair.name, 0, n),
                           throttle=self.throttle)
        except FuretError:
            raise
        except Exception as exc:  # driver errors: timeouts, unavailable, invalid query
            raise FuretError(f"{pair.target.where}: {type(exc).__name__}: "
                             f"{str(exc)[:300]}") from None

    def _cassandra_buckets(self, pair: Pair, done: list[_Chunk],
                           quarantine: dict[str, tuple[Any, int]]) -> None:
        self.progress.phase(pair.name, "cassandra scan")
        locator = cq.Locator([c.rng for c in done])
        taken = {i for i, c in enumerate(done) if c.take}
        result = self._scan(pair, self._chunk_of(pair, locator, taken, quarantine))
        for i, chunk in enumerate(done):
            count, xor = result.buckets.get(i, [0, 0])
            chunk.target = (count, xor)
            chunk.report.target_rows = count

    def _drill_cassandra(self, pair: Pair, done: list[_Chunk], bad: list[_Chunk],
                         quarantine: dict[str, tuple[Any, int]]) -> list[Classified]:
        locator = cq.Locator([c.rng for c in done])
        index_of = {id(c): i for i, c in enumerate(done)}
        bad_index = {index_of[id(c)] for c in bad}
        chunk_of = self._chunk_of(pair, locator, bad_index, quarantine)
        src_conn = self.conns.get(pair.source.settings)
        sources = {index_of[id(c)]: {nk(r.key): r for r in mq.row_hashes(
            src_conn, pair.source, c.rng, self.window, c.excluded)} for c in bad}
        wanted_keys = {k for rows in sources.values() for k in rows} \
            if self.window.bounded else set()

        def keep(key: Any, version: Any) -> bool:
            return chunk_of(key, version) is not None or (
                bool(wanted_keys) and nk(key) in wanted_keys)

        result = self._scan(pair, lambda k, v: None, keep)
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
            if self.window.bounded:
                extra = [rows[0].key for k, rows in tgt.items() if k not in src]
                src_else = mq.rows_by_key(src_conn, pair.source, extra) if extra else {}
            out.append(classify(src, tgt, src_else, elsewhere))
        return out

    # --- report -------------------------------------------------------------------------

    def fill_report(self, pair: Pair, report: TableReport, done: list[_Chunk],
                    found: Classified) -> None:
        report.chunks = len(done)
        report.chunks_checked = sum(1 for c in done if c.take)
        report.source_rows = sum(c.source[0] for c in done if c.take)
        report.target_rows = sum(c.target[0] for c in done if c.take)
        report.mismatching_chunks = sum(1 for c in done if c.report.status == "mismatch")
        report.transient_chunks = sum(1 for c in done if c.report.status == "transient")
        report.missing = len(found.missing)
        report.extra = len(found.extra)
        report.different = len(found.different)
        report.chunk_list = [c.report for c in done]
        report.diffs, report.diffs_truncated = self.diff_rows(pair, found)

    def diff_rows(self, pair: Pair, found: Classified) -> tuple[list[DiffRow], bool]:
        limit = self.options.max_report_rows
        diffs: list[tuple[str, str, RowInfo | None, RowInfo | None]] = []
        for key, (src, tgt) in sorted(found.different.items(), key=lambda kv: _order(kv[0])):
            diffs.append(("different", key, src, tgt))
        for key, src in sorted(found.missing.items(), key=lambda kv: _order(kv[0])):
            diffs.append(("missing", key, src, None))
        for key, tgt in sorted(found.extra, key=lambda kv: _order(kv[0])):
            diffs.append(("extra", key, None, tgt))
        truncated = len(diffs) > limit
        diffs = diffs[:limit]
        need_src = [s.key for _, _, s, _ in diffs if s is not None and s.texts is None]
        need_tgt = [t.key for _, _, _, t in diffs if t is not None and t.texts is None]
        src_texts = mq.rows_by_key(self.conns.get(pair.source.settings), pair.source,
                                   need_src) if need_src else {}
        tgt_texts: dict[str, RowInfo] = {}
        if need_tgt and isinstance(pair.target, SqlSide):
            tgt_texts = mq.rows_by_key(self.conns.get(pair.target.settings), pair.target,
                                       need_tgt)
        rows = []
        for kind, key, src, tgt in diffs:
            s = src if src is None or src.texts is not None else src_texts.get(key, src)
            t = tgt if tgt is None or tgt.texts is not None else tgt_texts.get(key, tgt)
            s_texts = s.texts if s is not None else None
            t_texts = t.texts if t is not None else None
            columns = differing_columns(pair.names, s_texts, t_texts) \
                if kind == "different" else []
            rows.append(DiffRow(
                kind, (s or t).key if (s or t) is not None else key,  # type: ignore[union-attr]
                columns,
                dict(zip(pair.names, s_texts, strict=True)) if s_texts else None,
                dict(zip(pair.names, t_texts, strict=True)) if t_texts else None,
                _int(s.version) if s else None, _int(t.version) if t else None))
        return rows, truncated


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _order(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.lstrip("-").isdigit() else (1, key)


# --- building the pairs -------------------------------------------------------------------

def _sql_target_side(flow: Flow, tf: TableFlow, tm: TargetMap, settings: DbSettings,
                     schema: TableSchema) -> SqlSide:
    key = tm.target_of(tf.key) or tf.key
    version = tm.target_of(tf.version) or tf.version
    columns = tuple(ColumnMap(c.target, c.target) for c in tm.columns)
    return SqlSide(settings, flow.target_database, tm.table, key, version, columns,
                   {n: c.data_type for n, c in schema.columns.items()})


def build_pairs(config: FuretConfig, flow: Flow, options: VerifyOptions,
                source: pymysql.connections.Connection,
                target: pymysql.connections.Connection | None, session: Any) -> list[Pair]:
    source_settings = config.db(flow.source_server)
    schemas = validate_mariadb_flow(flow, source, source_settings, target, config.target)
    unknown = set(options.tables) - {tf.source for tf in flow.tables}
    if unknown:
        raise FuretError(f"flow {flow.name}: no source table {', '.join(sorted(unknown))} "
                         f"(tables: {', '.join(tf.source for tf in flow.tables)})")
    pairs = []
    for tf in flow.tables:
        if options.tables and tf.source not in options.tables:
            continue
        schema = schemas[tf.source]
        types = {n: c.data_type for n, c in schema.columns.items()}
        numeric = types[tf.key] in INTEGER_TYPES
        for tm in tf.targets:
            src = SqlSide(source_settings, flow.source_database, tf.source, tf.key, tf.version,
                          tm.columns, types, client=needs_client_hash(tm.columns))
            names = tuple(c.target for c in tm.columns)
            if flow.target_kind == "cassandra":
                part, primary = cq.table_keys(session, flow.target_database, tm.table)
                tgt: SqlSide | cq.CassandraSide = cq.CassandraSide(
                    session, flow.target_database, tm.table, tm.target_of(tf.key) or tf.key,
                    tm.target_of(tf.version) or tf.version, names, part, primary)
            else:
                assert target is not None
                tschema = read_schema(target, config.target, flow.target_database, tm.table)
                assert tschema is not None  # validated above
                tgt = _sql_target_side(flow, tf, tm, config.target, tschema)
            pairs.append(Pair(tf, tm, src, tgt, names, numeric))
    return pairs


def run_verify(config: FuretConfig, options: VerifyOptions,
               progress: Progress | None = None) -> VerifyReport:
    """Verify (and with ``options.repair`` repair) one flow; see the module docstring."""
    from migration.verify.repair import repair_pair

    if options.consistency not in cq.CONSISTENCY_LEVELS:
        raise FuretError(f"--consistency {options.consistency!r} is not one of "
                         f"{', '.join(cq.CONSISTENCY_LEVELS)}")
    if options.delete_extra and not options.repair:
        raise FuretError("--delete-extra only makes sense with --repair")
    if options.overwrite_newer and not options.repair:
        raise FuretError("--overwrite-newer only makes sense with --repair")
    flow = load_flow(options.flow)
    window = parse_window(options.since, options.until)
    Sampler(options.sample)  # checks the share before any connection
    sink: Progress = progress or _NoProgress()
    to_cassandra = flow.target_kind == "cassandra"
    source_settings = config.db(flow.source_server)
    started = time.monotonic()
    report = VerifyReport(
        flow=flow.name, source=f"{source_settings.where} database {flow.source_database}",
        target=(f"{config.cassandra.where} keyspace {flow.target_database}" if to_cassandra
                else f"{config.target.where} database {flow.target_database}"),
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        since=window.since, until=window.until, sample=options.sample,
        consistency=options.consistency if to_cassandra else "", repair=options.repair,
        delete_extra=options.delete_extra)
    with contextlib.ExitStack() as stack:
        source = connect(source_settings)
        stack.callback(source.close)
        target = None
        if not to_cassandra:
            target = connect(config.target)
            stack.callback(target.close)
        session = None
        if to_cassandra:
            from migration.cassandra_session import cassandra_session
            from migration.flows.validate import validate_cassandra_flow

            cluster, session = cassandra_session(config.cassandra)
            stack.callback(cluster.shutdown)
            validate_cassandra_flow(flow, session, config.cassandra)
            cq.add_profile(cluster, options.consistency, config.cassandra.local_dc)
        pairs = build_pairs(config, flow, options, source, target, session)
        verifier = Verifier(config, flow, options, sink, session)
        stack.callback(verifier.close)
        compared = []
        for pair in pairs:  # every table is compared before any is repaired
            table_started = time.monotonic()
            mode = "cassandra" if pair.cassandra else ("client" if pair.source.client else "sql")
            table = TableReport(pair.tf.source, pair.tm.table, pair.tf.key, pair.tf.version, mode)
            done, found = verifier.compare(pair, table)
            verifier.fill_report(pair, table, done, found)
            table.seconds = time.monotonic() - table_started
            compared.append((pair, table, done, found))
            report.tables.append(table)
        for pair, table, done, found in compared:
            if options.repair and not found.clean:
                sink.phase(pair.name, "repair")
                table.repair = repair_pair(verifier, pair, done, found)
    report.seconds = time.monotonic() - started
    return report
