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

The parts: :mod:`~migration.verify.planner` (chunks, sample, quarantine exclusions),
:mod:`~migration.verify.sides` (a MariaDB side, a Cassandra side),
:mod:`~migration.verify.compare` (checksums, drill-down), :mod:`~migration.verify.repair`
and :mod:`~migration.verify.report_builder`; this module builds the pairs and runs them.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.config import DbSettings, FuretConfig
from migration.contract import COMMANDS
from migration.db import connect, db_error
from migration.engine import ledger
from migration.enums import Consistency
from migration.errors import FuretError
from migration.flows.mapping import ColumnMap, Flow, TableFlow, TargetMap, load_flow
from migration.flows.validate import (
    INTEGER_TYPES,
    TableSchema,
    read_schema,
    validate_mariadb_flow,
)
from migration.progress import Reporter, Silent
from migration.verify import cassandra_checksum as cq
from migration.verify.chunks import Range
from migration.verify.compare import Comparer
from migration.verify.drilldown import Classified
from migration.verify.mysql_checksum import SqlSide
from migration.verify.normalise import needs_client_hash
from migration.verify.planner import ChunkPlanner
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
from migration.verify.window import Sampler, parse_window


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
    # Cassandra reads: a Consistency or its text (checked by run_verify)
    consistency: Consistency | str = Consistency.LOCAL_QUORUM
    splits: int = 0                      # Cassandra token sub-ranges; 0 = 16 per worker
    repair: bool = False
    delete_extra: bool = False
    overwrite_newer: bool = False
    max_report_rows: int = 1000          # diff rows listed per table (counts stay exact)


def consistency_of(value: Consistency | str) -> Consistency:
    try:
        return Consistency(value)
    except ValueError:
        raise FuretError(f"--consistency {value!r} is not one of "
                         f"{', '.join(Consistency.choices())}") from None


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
                target: pymysql.connections.Connection | None, session: Any,
                reads: Reads, progress: Reporter) -> list[Pair]:
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
            tgt: Side
            if flow.target_kind == "cassandra":
                part, primary = cq.table_keys(session, flow.target_database, tm.table)
                table = cq.CassandraSide(
                    session, flow.target_database, tm.table, tm.target_of(tf.key) or tf.key,
                    tm.target_of(tf.version) or tf.version, names, part, primary)
                tgt = CassandraTargetSide(table, reads, tf, progress,
                                          f"{tf.source} -> {tm.table}")
            else:
                assert target is not None
                tschema = read_schema(target, config.target, flow.target_database, tm.table)
                assert tschema is not None  # validated above
                tgt = MariaDbSide(_sql_target_side(flow, tf, tm, config.target, tschema),
                                  reads, tf)
            pairs.append(Pair(tf, tm, MariaDbSide(src, reads, tf), tgt, names, numeric))
    return pairs


def _ledger_versions(reads: Reads, settings: DbSettings,
                     flow: str) -> Callable[[str], dict[str, set[int]]]:
    """furet.quarantine's versions per row key of a source table (on the target)."""

    def versions(source_table: str) -> dict[str, set[int]]:
        try:
            return ledger.quarantined_versions(reads.conns.get(settings), flow, source_table)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "furet", "quarantine") from None

    return versions


def _recheck(comparer: Comparer, pair: Pair) -> Callable[[Sequence[Range]], Classified]:
    """A repair's re-check: these ranges compared again (into a scratch report)."""
    scratch = TableReport(pair.tf.source, pair.tm.table, pair.tf.key, pair.tf.version,
                          "recheck")

    def recheck(ranges: Sequence[Range]) -> Classified:
        return comparer.compare(pair, scratch, fixed=ranges)[1]

    return recheck


def run_verify(config: FuretConfig, options: VerifyOptions,
               progress: Reporter | None = None) -> VerifyReport:
    """Verify (and with ``options.repair`` repair) one flow; see the module docstring."""
    consistency = consistency_of(options.consistency)
    # the couplings of verify's flags are written once, in the command's contract
    COMMANDS["verify"].check({"repair": options.repair, "delete_extra": options.delete_extra,
                              "overwrite_newer": options.overwrite_newer})
    flow = load_flow(options.flow)
    window = parse_window(options.since, options.until)
    sampler = Sampler(options.sample, options.seed)  # checks the share before any connection
    sink: Reporter = progress or Silent()
    to_cassandra = flow.target_kind == "cassandra"
    source_settings = config.db(flow.source_server)
    started = time.monotonic()
    report = VerifyReport(
        flow=flow.name, source=f"{source_settings.where} database {flow.source_database}",
        target=(f"{config.cassandra.where} keyspace {flow.target_database}" if to_cassandra
                else f"{config.target.where} database {flow.target_database}"),
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        since=window.since, until=window.until, sample=options.sample,
        consistency=consistency.value if to_cassandra else "", repair=options.repair,
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
            cq.add_profile(cluster, consistency.value, config.cassandra.local_dc)
        reads = Reads(window, Throttle(options.max_rows_per_second), options.max_load,
                      options.workers, options.splits)
        stack.callback(reads.conns.close)
        pairs = build_pairs(config, flow, options, source, target, session, reads, sink)
        comparer = Comparer(ChunkPlanner(window, sampler, options.chunk_time,
                                         options.initial_chunk),
                            reads, sink, _ledger_versions(reads, config.target, flow.name),
                            options.max_report_rows)
        compared = []
        for pair in pairs:  # every table is compared before any is repaired
            table_started = time.monotonic()
            table = TableReport(pair.tf.source, pair.tm.table, pair.tf.key, pair.tf.version,
                                pair.mode)
            done, found = comparer.compare(pair, table)
            fill_report(pair, table, done, found, options.max_report_rows)
            table.seconds = time.monotonic() - table_started
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
