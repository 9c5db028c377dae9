"""`furet verify --flow F`: compare a flow's source and target chunk by chunk, drill down to
rows where they differ, optionally repair, and report.

1. load the flow and check it against the live schemas (as a round does); each table's
   version column gets its codec and the ``--since/--until`` window (epoch ms) is taken
   in that column's ledger units (a TIMESTAMP, DATETIME or epoch-seconds version selects
   the same instants). A table without a version column (``version: none``) is compared
   by key only, on MariaDB targets only (its rounds find changes by SQL checksums on both
   sides, so a Cassandra target is refused, as the rounds refuse it); a window cannot
   select its rows, so ``--since/--until`` refuses it (``--table`` picks the others);
2. per (source table, target table): the source rows currently in furet.quarantine are
   expected absent, so they are left out of both sides' checksums and counted apart (a
   table without a version: a row whose key is in furet.quarantine, at any version);
3. chunks: key ranges (version ranges under ``--since/--until``) whose size adapts to keep
   each checksum query near ``chunk_time`` seconds; ``--sample P`` checks a share of them;
   MariaDB targets are checksummed chunk by chunk like the source; a Cassandra table is
   read once over token ranges and its rows are bucketed into the same chunks, while the
   next pair's chunks are checksummed (:func:`~migration.verify.compare.compare_all`);
4. a chunk whose (count, checksum) differ is drilled down to rows: missing, extra and
   different keys, with the differing columns;
5. ``repair``: missing and different rows are re-copied through the round's version-aware
   writers (a table without a version: the rounds' unconditional upsert), extra rows
   deleted only with ``delete_extra`` (and only if the source, read again just before,
   still has no row that maps to them); the repaired chunks are checked again and the
   report says what the re-check found. A repair holds the flow's lock
   (:mod:`migration.engine.flow_lock`) from its first read to its last write, so no round
   of the flow runs in between.

The parts: :mod:`~migration.verify.planner` (chunks, sample, quarantine exclusions),
:mod:`~migration.verify.sides` (a MariaDB side, a Cassandra side),
:mod:`~migration.verify.compare` (checksums, drill-down), :mod:`~migration.verify.repair`
and :mod:`~migration.verify.report_builder`; this module builds the pairs and runs them.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.canonical import key_text
from migration.config import DbSettings, FuretConfig
from migration.contract import COMMANDS
from migration.db import connect, db_error
from migration.engine import ledger
from migration.engine.flow_lock import flow_lock
from migration.engine.versions import TEMPORAL_TYPES, VersionCodec
from migration.enums import Consistency
from migration.errors import FuretError, context
from migration.flows.mapping import ColumnMap, Flow, TableFlow, TargetMap
from migration.flows.reverse import load_for
from migration.flows.validate import (
    INTEGER_TYPES,
    TableSchema,
    read_schema,
    validate_mariadb_flow,
    version_codec,
)
from migration.progress import Reporter, Silent
from migration.rowhash import needs_client_hash
from migration.verify import cassandra_checksum as cq
from migration.verify.chunks import Range
from migration.verify.compare import Comparer, compare_all
from migration.verify.drilldown import Classified
from migration.verify.mysql_checksum import SqlSide
from migration.verify.planner import ChunkPlanner, Quarantine, Versions, quarantine_of
from migration.verify.repair import RepairPolicy, ledger_quarantine, repair_pair
from migration.verify.report import TableReport, VerifyReport
from migration.verify.report_builder import fill_report
from migration.verify.sides import (
    CassandraTargetSide,
    MariaDbSide,
    Pair,
    Reads,
    Side,
    Throttle,
)
from migration.verify.window import Sampler, TimeWindow, ledger_window, parse_window


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
    # Cassandra reads, each a Consistency or its text (checked by run_verify): the checksum
    # pass over the whole ring, and the reads that confirm a difference it found
    scan_consistency: Consistency | str = Consistency.LOCAL_ONE
    consistency: Consistency | str = Consistency.LOCAL_QUORUM
    splits: int = 0                      # Cassandra token sub-ranges; 0 = 16 per worker
    scan_page_rows: int = cq.PAGE_ROWS   # rows per page of the Cassandra checksum pass
    repair: bool = False
    delete_extra: bool = False
    overwrite_newer: bool = False
    max_report_rows: int = 1000          # diff rows listed per table (counts stay exact)
    # the flow reversed: the target database against the legacy one, the reverse rounds'
    # copy (migration.flows.reverse); a repair writes the legacy, its lock and quarantine
    # stay in the target's ledger
    reverse: bool = False


def consistency_of(value: Consistency | str, option: str = "--consistency") -> Consistency:
    try:
        return Consistency(value)
    except ValueError:
        raise FuretError(f"{option} {value!r} is not one of "
                         f"{', '.join(Consistency.choices())}") from None


# --- building the pairs -------------------------------------------------------------------

def _sql_target_side(flow: Flow, tf: TableFlow, tm: TargetMap, settings: DbSettings,
                     schema: TableSchema, codec: VersionCodec | None) -> SqlSide:
    """A MariaDB target table as compared; its version column must be of the source's
    kind (an epoch integer, or a TIMESTAMP/DATETIME): the rounds copy the value as is, so
    the source's codec reads it. Without a version (``codec`` None) it has none either."""
    columns = tuple(ColumnMap(c.target, c.target) for c in tm.columns)
    types = {n: c.data_type for n, c in schema.columns.items()}
    if codec is None:
        return SqlSide(settings, flow.target_database, tm.table, tf.target_keys(tm), "",
                       columns, types, codec=None)
    version = tm.target_of(tf.version) or tf.version
    info = schema.columns[version]
    if info.data_type not in (TEMPORAL_TYPES if codec.temporal else INTEGER_TYPES):
        raise FuretError(f"flow {flow.name}: {settings.where} database {flow.target_database} "
                         f"table {tm.table}: version column {version!r} is "
                         f"{info.data_type.upper()} but the source's is {codec.describe()} "
                         "(verify compares versions of one kind)")
    return SqlSide(settings, flow.target_database, tm.table, tf.target_keys(tm), version,
                   columns, types, codec=codec)


def check_unversioned(flow: Flow, tables: Sequence[str], window: TimeWindow) -> None:
    """Refuse, before any connection, the compared tables without a version column
    (``tables``: the ``--table`` choice, empty for all) that verify cannot compare: into
    Cassandra (changes are found by SQL checksums on both sides, as the rounds do), or
    under ``--since/--until`` (no version selects their rows)."""
    for tf in flow.tables:
        if tf.version or (tables and tf.source not in tables):
            continue
        where = f"flow {flow.name} database {flow.source_database} table {tf.source}"
        if flow.target_kind == "cassandra":
            raise FuretError(f"{where}: `version: none` needs a MariaDB target (rounds refuse "
                             "it too); add a version with `furet legacy add-version --table "
                             f"{tf.source}`, or use --table to verify the others")
        if window.bounded:
            raise FuretError(f"{where} has no version column: --since/--until cannot select "
                             "its rows; use --table to verify the others")


def table_codec(flow: Flow, tf: TableFlow, schema: TableSchema) -> VersionCodec | None:
    """The codec of a compared table's version column (None: ``version: none``)."""
    return version_codec(flow, tf, schema)


def build_pairs(config: FuretConfig, flow: Flow, options: VerifyOptions,
                source: pymysql.connections.Connection,
                target: pymysql.connections.Connection | None, session: Any,
                reads: Reads, progress: Reporter, window: TimeWindow,
                scan_profile: str = cq.PROFILE) -> list[Pair]:
    """The compared pairs, each with its time window (``window``: epoch ms) in its
    version column's ledger units; Cassandra tables read their checksum pass with
    ``scan_profile``."""
    source_settings = config.db(flow.source_server)
    target_settings = config.db(flow.target_server)
    schemas = validate_mariadb_flow(flow, source, source_settings, target, target_settings)
    unknown = set(options.tables) - {tf.source for tf in flow.tables}
    if unknown:
        raise FuretError(f"flow {flow.name}: no source table {', '.join(sorted(unknown))} "
                         f"(tables: {', '.join(tf.source for tf in flow.tables)})")
    pairs = []
    for tf in flow.tables:
        if options.tables and tf.source not in options.tables:
            continue
        schema = schemas[tf.source]
        codec = table_codec(flow, tf, schema)
        # no version: check_unversioned refused a window
        table_window = TimeWindow() if codec is None else ledger_window(window, codec)
        types = {n: c.data_type for n, c in schema.columns.items()}
        numeric = tf.width == 1 and types[tf.keys[0]] in INTEGER_TYPES
        for tm in tf.targets:
            src = SqlSide(source_settings, flow.source_database, tf.source, tf.keys, tf.version,
                          tm.columns, types, client=needs_client_hash(tm.columns), codec=codec)
            names = tuple(c.target for c in tm.columns)
            tgt: Side
            if flow.target_kind == "cassandra":
                assert codec is not None  # check_unversioned refused it
                shape = cq.table_shape(session, flow.target_database, tm.table)
                table = cq.CassandraSide(
                    session, flow.target_database, tm.table, tf.target_keys(tm),
                    tm.target_of(tf.version) or tf.version, names, shape.partition_key,
                    shape.primary_key, codec=codec,
                    write_consistency=config.cassandra.write_consistency,
                    scan_profile=scan_profile,
                    types=tuple(shape.types.get(n, "") for n in names))
                tgt = CassandraTargetSide(table, reads, tf, progress,
                                          f"{tf.source} -> {tm.table}", table_window)
            else:
                assert target is not None
                tschema = read_schema(target, target_settings, flow.target_database, tm.table)
                assert tschema is not None  # validated above
                tgt = MariaDbSide(_sql_target_side(flow, tf, tm, target_settings, tschema,
                                                   codec), reads, tf, table_window)
            pairs.append(Pair(tf, tm, MariaDbSide(src, reads, tf, table_window), tgt, names,
                              numeric, table_window))
    return pairs


def _ledger_versions(settings: DbSettings, flow: str) -> Callable[[str], Versions]:
    """furet.quarantine's versions per row key of a source table (on the target), in
    batches of whole keys."""

    def versions(source_table: str) -> Iterator[dict[str, set[int]]]:
        try:
            yield from ledger.quarantined_version_batches(settings, flow, source_table)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "furet", "quarantine") from None

    return versions


def _forward_quarantine(settings: DbSettings, flow: Flow) -> Callable[[Pair], Quarantine] | None:
    """A reverse flow's legacy rows that its forward flow quarantined (furet.quarantine of
    ``flow.reverse_of``, at their current version) and the target does not hold: never
    migrated, they stay in the legacy as they are, expected there and nowhere else. Left
    out of both sides like quarantined rows (and never deleted by ``--delete-extra``)."""
    if not flow.reverse_of:
        return None
    forward_versions = _ledger_versions(settings, flow.reverse_of)

    def kept(pair: Pair) -> Quarantine:
        # the forward flow's source table is the reverse flow's target table
        versions = forward_versions(pair.tm.table)
        target = pair.target
        assert isinstance(target, MariaDbSide)  # reverse flows are MariaDB to MariaDB
        held = quarantine_of(versions, pair.tf.width, pair.numeric_key,
                             target.current_versions, versioned=bool(pair.tf.version))
        if not held:
            return held
        in_source = pair.source.current_versions([native for native, _ in held.entries()])
        return Quarantine((native, version) for native, version in held.entries()
                          if key_text(native) not in in_source)

    return kept


def _recheck(comparer: Comparer, pair: Pair) -> Callable[[Sequence[Range]], Classified]:
    """A repair's re-check: these ranges compared again (into a scratch report)."""
    scratch = table_report(pair, "recheck")

    def recheck(ranges: Sequence[Range]) -> Classified:
        return comparer.compare(pair, scratch, fixed=ranges)[1]

    return recheck


def table_report(pair: Pair, mode: str) -> TableReport:
    """An empty report of one pair: key column(s), version column and how it reads
    (a table without a version: version "", version_type "none", as a round's status)."""
    codec = pair.source.sql.codec
    if codec is None:
        return TableReport(pair.tf.source, pair.tm.table, ", ".join(pair.tf.keys), "", mode,
                           version_type="none")
    return TableReport(pair.tf.source, pair.tm.table, ", ".join(pair.tf.keys), pair.tf.version,
                       mode, version_type=codec.describe(), version_us=codec.micros(1))


def run_verify(config: FuretConfig, options: VerifyOptions,
               progress: Reporter | None = None) -> VerifyReport:
    """Verify (and with ``options.repair`` repair) one flow; see the module docstring."""
    consistency = consistency_of(options.consistency)
    scan_consistency = consistency_of(options.scan_consistency, "--scan-consistency")
    # the checksum pass has a profile of its own when its consistency is not the confirming
    # one (a chunk it finds different is then checksummed again at that one)
    scan_profile = cq.PROFILE if scan_consistency == consistency else cq.SCAN_PROFILE
    # the couplings of verify's flags are written once, in the command's contract
    COMMANDS["verify"].check({"repair": options.repair, "delete_extra": options.delete_extra,
                              "overwrite_newer": options.overwrite_newer})
    flow = load_for(options.flow, config.flows.dir, options.reverse)
    window = parse_window(options.since, options.until)
    check_unversioned(flow, options.tables, window)
    sampler = Sampler(options.sample, options.seed)  # checks the share before any connection
    sink: Reporter = progress or Silent()
    to_cassandra = flow.target_kind == "cassandra"
    source_settings = config.db(flow.source_server)
    target_settings = config.db(flow.target_server)  # the ledger stays on config.target
    started = time.monotonic()
    report = VerifyReport(
        flow=flow.name, source=f"{source_settings.where} database {flow.source_database}",
        target=(f"{config.cassandra.where} keyspace {flow.target_database}" if to_cassandra
                else f"{target_settings.where} database {flow.target_database}"),
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        since=window.since, until=window.until, sample=options.sample,
        consistency=consistency.value if to_cassandra else "",
        scan_consistency=scan_consistency.value if to_cassandra else "", repair=options.repair,
        delete_extra=options.delete_extra)
    with contextlib.ExitStack() as stack:
        if options.repair:
            # one writer per flow: a repair and the flow's rounds exclude each other
            stack.enter_context(flow_lock(config.target, flow.name,
                                          f"furet verify --repair --flow {flow.name}"))
        source = connect(source_settings)
        stack.callback(source.close)
        target = None
        if not to_cassandra:
            target = connect(target_settings)
            stack.callback(target.close)
        session = None
        if to_cassandra:
            from migration.cassandra_session import cassandra_session
            from migration.flows.validate import validate_cassandra_flow

            cluster, session = cassandra_session(config.cassandra)
            stack.callback(cluster.shutdown)
            validate_cassandra_flow(flow, session, config.cassandra)
            cq.add_profile(cluster, consistency.value, config.cassandra.local_dc)
            if scan_profile == cq.SCAN_PROFILE:
                cq.add_profile(cluster, scan_consistency.value, config.cassandra.local_dc,
                               scan_profile)
        reads = Reads(Throttle(options.max_rows_per_second), options.max_load,
                      options.workers, options.splits, options.scan_page_rows)
        stack.callback(reads.conns.close)
        pairs = build_pairs(config, flow, options, source, target, session, reads, sink,
                            window, scan_profile)
        comparer = Comparer(ChunkPlanner(sampler, options.chunk_time, options.initial_chunk),
                            reads, sink, _ledger_versions(config.target, flow.name),
                            options.max_report_rows,
                            _forward_quarantine(config.target, flow))
        # every table is compared before any is repaired
        reports = [table_report(pair, pair.mode) for pair in pairs]

        def named(pair: Pair) -> contextlib.AbstractContextManager[None]:
            return context(database=flow.source_database, table=pair.tf.source,
                           step=f"verify {pair.tm.table}")

        compared = []
        for pair, table, (done, found, seconds) in zip(
                pairs, reports, compare_all(comparer, pairs, reports, named), strict=True):
            fill_report(pair, table, done, found, options.max_report_rows)
            table.seconds = seconds
            compared.append((pair, table, done, found))
            report.tables.append(table)
        policy = RepairPolicy(options.delete_extra, options.overwrite_newer,
                              options.max_report_rows)
        record = ledger_quarantine(config.target, flow.name)
        for pair, table, done, found in compared:
            if options.repair and not found.clean:
                sink.phase(pair.name, "repair")
                table.repair = repair_pair(pair, done, found, _recheck(comparer, pair), record,
                                           policy)
    report.seconds = time.monotonic() - started
    return report
