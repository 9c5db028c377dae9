"""Idempotent, version-aware writes into Cassandra query tables.

One prepared ``INSERT ... USING TIMESTAMP ?`` per target table. The rows of a batch are
sorted by partition key and grouped into small UNLOGGED batches (at most ``GROUP_ROWS``
rows and ``GROUP_PARTITIONS`` partitions, under Cassandra's batch size and
cross-partition warning thresholds), executed concurrently: a fraction of the requests of
one statement per row, which is what the client and the coordinators spend their CPU on
(measured on the lab: 1.5k quotes/s with one request per row). A group that Cassandra
rejects is replayed statement by statement to find the row at fault. The
write timestamp is the source version in microseconds (whatever its column type:
:meth:`migration.engine.versions.VersionCodec.micros`): Cassandra
keeps the cell with the highest write timestamp, so replaying a batch is harmless and an
older version can never overwrite a newer one, whatever the order the writes arrive in.

The batch checkpoint goes to the ledger on the target Galera after the Cassandra writes
succeeded; a crash in between replays the batch, which the write timestamps make safe.
Every statement carries the configured consistency (``cassandra.write_consistency``,
default LOCAL_QUORUM; :class:`~migration.enums.WriteConsistency` has no single-replica
level), never the driver's default LOCAL_ONE: "succeeded" means that many replicas
acknowledged, so a checkpoint never advances on one replica's word.

A row one query table refuses is quarantined and taken back out of the flow's other
query tables (a delete stamped with the row's own write time): a source row is in all of
its query tables or in none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.engine.galera_writer import quarantined
from migration.engine.quarantine import QuarantinedRow
from migration.engine.versions import VersionCodec
from migration.engine.writer import BatchOutcome
from migration.enums import WriteConsistency
from migration.errors import FuretError
from migration.flows.mapping import TableFlow, TransformError

CONCURRENCY = 64
# Driver errors that are the store's state, not the rows' fault: retried with backoff.
TRANSIENT = frozenset({"WriteTimeout", "Unavailable", "OperationTimedOut", "WriteFailure",
                       "CoordinationFailure", "OverloadedErrorMessage", "NoHostAvailable",
                       "ConnectionException"})
ATTEMPTS = 6
BACKOFF_S = 0.5
GROUP_ROWS = 20        # like cqlsh COPY's MAXBATCHSIZE
GROUP_PARTITIONS = 10  # unlogged_batch_across_partitions_warn_threshold


class CassandraWriter:
    consistency: WriteConsistency = WriteConsistency.LOCAL_QUORUM

    def __init__(self, session: Any, keyspace: str, table_flow: TableFlow,
                 codec: VersionCodec,
                 consistency: WriteConsistency | str = WriteConsistency.LOCAL_QUORUM) -> None:
        from cassandra import ConsistencyLevel

        self.session = session
        self.keyspace = keyspace
        self.consistency = WriteConsistency(str(consistency).upper())
        self.level = getattr(ConsistencyLevel, self.consistency.value)
        self.tf = table_flow
        self.codec = codec
        self.source_columns = list(table_flow.source_columns)
        self.version_index = table_flow.width
        self.targets = []
        for tm in table_flow.targets:
            cols = [c.target for c in tm.columns]
            statement = session.prepare(
                f"INSERT INTO {keyspace}.{tm.table} ({', '.join(cols)}) VALUES "
                f"({', '.join('?' for _ in cols)}) USING TIMESTAMP ?")
            statement.consistency_level = self.level  # bound statements inherit it
            indexes = [self.source_columns.index(c.source) for c in tm.columns]
            self.targets.append((tm, statement, indexes))
        self.partition_indexes = {
            tm.table: _partition_indexes(session, keyspace, tm.table,
                                         [c.target for c in tm.columns])
            for tm, _, _ in self.targets}
        self.deletes: dict[str, tuple[Any, list[int]]] = {}

    def _quarantine(self, row: Sequence[Any], table: str, reason: str) -> QuarantinedRow:
        return quarantined(self.tf, self.codec, self.source_columns, row, table, reason)

    def _mapped(self, row: Sequence[Any]) -> tuple[int, list[list[Any]]]:
        """The row's write time (its version in microseconds) and each query table's mapped
        values; TransformError (one line naming the table and column) when a transform
        fails or the version is not an instant."""
        version = self.codec.ledger(row[self.version_index])
        if version is None:
            raise TransformError(f"bad version: column {self.tf.version}: "
                                 f"{row[self.version_index]!r} is not an instant")
        per_table = []
        for tm, _, indexes in self.targets:
            values = []
            for col, index in zip(tm.columns, indexes, strict=True):
                try:
                    values.append(col.apply(row[index]))
                except TransformError as exc:
                    category, _, detail = str(exc).partition(": ")
                    raise TransformError(f"{category}: {tm.table}: column "
                                         f"{col.source}: {detail}") from None
            per_table.append(values)
        return self.codec.micros(version), per_table

    def _bind(self, row: Sequence[Any]) -> tuple[int, list[tuple[str, Any, list[Any]]], str]:
        """The row's write time and, per query table, the bound INSERT and the mapped
        values; or why the row cannot be written (a transform, a value the column's type
        cannot hold, a version that is not an instant)."""
        bound = []
        try:
            write_time, per_table = self._mapped(row)
            for (tm, statement, _), values in zip(self.targets, per_table, strict=True):
                try:
                    bound.append((tm.table, statement.bind((*values, write_time)), values))
                except (TypeError, ValueError, OverflowError) as exc:
                    raise TransformError(f"bad value: {tm.table}: {exc}") from None
        except TransformError as exc:
            return 0, [], str(exc)
        return write_time, bound, ""

    def write(self, cur: pymysql.cursors.Cursor | None,
              rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        """Write ``rows`` to every query table; ``cur`` (the ledger) is not used here."""

        outcome = BatchOutcome()
        bad: set[int] = set()
        per_table: dict[str, list[tuple[int, list[Any], Any]]] = {}
        sent: dict[int, tuple[int, list[tuple[str, list[Any]]]]] = {}  # row: stamp, writes
        for i, row in enumerate(rows):
            write_time, bound, reason = self._bind(row)
            if reason:
                bad.add(i)
                outcome.quarantined.append(self._quarantine(row, self.targets[0][0].table,
                                                            reason))
                continue
            for table, statement, values in bound:
                per_table.setdefault(table, []).append((i, values, statement))
            sent[i] = (write_time, [(table, values) for table, _, values in bound])
        groups = []
        for table, items in per_table.items():
            groups += _groups(items, self.partition_indexes[table], table, self.level)
        results = self._execute([g.statement for g in groups])
        for group, (ok, _) in zip(groups, results, strict=True):
            if not ok:
                self._find_rejected(group, rows, bad, outcome)
        self._take_back([sent[i] for i in sorted(bad) if i in sent])
        outcome.written = len(rows) - len(bad)
        return outcome

    def _take_back(self, refused: Sequence[tuple[int, list[tuple[str, list[Any]]]]]) -> None:
        """Rows a query table refused come out of every query table of the flow: the
        others took them in the same concurrent pass. ``DELETE ... USING TIMESTAMP`` the
        row's own write time (a tombstone wins a tie): the copy just written goes, and an
        older one, so the quarantined version is absent everywhere, as verify expects;
        a newer version written since stays. A delete the table refuses too (its key is
        what it refused) has nothing to delete."""
        statements = []
        for stamp, writes in refused:
            for table, values in writes:
                delete, positions = self._delete(table)
                try:
                    statements.append(delete.bind((stamp, *(values[p] for p in positions))))
                except (TypeError, ValueError, OverflowError):
                    continue
        if statements:
            self._execute(statements)

    def _delete(self, table: str) -> tuple[Any, list[int]]:
        """The prepared delete by primary key of a query table, and the primary key's
        positions among its mapped columns (prepared once, when first needed)."""
        cached = self.deletes.get(table)
        if cached is None:
            (tm,) = [tm for tm, _, _ in self.targets if tm.table == table]
            columns = [c.target for c in tm.columns]
            try:
                meta = self.session.cluster.metadata.keyspaces[self.keyspace].tables[table]
                primary = [c.name for c in meta.primary_key]
            except (AttributeError, KeyError):
                raise FuretError(f"cassandra keyspace {self.keyspace} table {table}: no "
                                 "metadata for its primary key") from None
            where = " AND ".join(f"{c} = ?" for c in primary)
            statement = self.session.prepare(f"DELETE FROM {self.keyspace}.{table} USING "
                                             f"TIMESTAMP ? WHERE {where}")
            level = getattr(self, "level", None)
            if level is not None:  # the writes' consistency
                statement.consistency_level = level
            cached = self.deletes[table] = (statement, [columns.index(c) for c in primary])
        return cached

    def _execute(self, statements: Sequence[Any]) -> list[tuple[bool, Any]]:
        """Run ``statements`` concurrently; (ok, result) of each, a rejection (the rows'
        fault: InvalidRequest) as (False, error). A timeout or an unavailable replica is not
        the rows' fault: those statements are sent again, with backoff (the write
        timestamps make a replay harmless), and a store still failing after
        :data:`ATTEMPTS` is one FuretError naming the keyspace and the error."""
        from cassandra.concurrent import execute_concurrent

        results: list[tuple[bool, Any]] = [(True, None)] * len(statements)
        pending = list(range(len(statements)))
        for attempt in range(ATTEMPTS):
            answers = execute_concurrent(self.session, [(statements[i], None) for i in pending],
                                         concurrency=CONCURRENCY, raise_on_first_error=False)
            again: list[int] = []
            last: Any = None
            for i, (ok, result) in zip(pending, answers, strict=True):
                kind = type(result).__name__
                if ok or kind == "InvalidRequest":
                    results[i] = (ok, result)
                elif kind in TRANSIENT:
                    again.append(i)
                    last = result
                else:
                    raise FuretError(f"cassandra keyspace {self.keyspace}: {kind}: "
                                     f"{str(result)[:300]} (consistency {self.consistency})")
            if not again:
                return results
            pending = again
            if attempt + 1 < ATTEMPTS:
                time.sleep(min(BACKOFF_S * 2 ** attempt, 10.0))
        raise FuretError(f"cassandra keyspace {self.keyspace}: {len(pending)} write(s) still "
                         f"failing after {ATTEMPTS} attempts: {type(last).__name__}: "
                         f"{str(last)[:300]} (consistency {self.consistency}, "
                         "cassandra.write_consistency)")

    def _find_rejected(self, group: _Group, rows: Sequence[Sequence[Any]], bad: set[int],
                       outcome: BatchOutcome) -> None:
        """Replay a rejected group one statement per row: quarantine the rows at fault."""
        results = self._execute(group.members)
        for i, (ok, result) in zip(group.owners, results, strict=True):
            if ok or i in bad:
                continue
            bad.add(i)
            outcome.quarantined.append(self._quarantine(rows[i], group.table,
                                                        f"rejected: {group.table}: {result}"))


@dataclass
class _Group:
    table: str
    owners: list[int]
    members: list[Any]
    statement: Any


def _partition_indexes(session: Any, keyspace: str, table: str,
                       columns: list[str]) -> list[int]:
    """Positions of the table's partition key columns among the mapped columns."""
    try:
        meta = session.cluster.metadata.keyspaces[keyspace].tables[table]
        names = [c.name for c in meta.partition_key]
    except (AttributeError, KeyError):
        return []
    return [columns.index(n) for n in names if n in columns]


def _groups(items: list[tuple[int, list[Any], Any]], pk: list[int], table: str,
            level: Any = None) -> list[_Group]:
    """Statements sorted by partition key, cut into UNLOGGED batches of at most GROUP_ROWS
    rows and GROUP_PARTITIONS partitions, each at consistency ``level`` (a batch does not
    take its members' level); a group of one is sent as the bare statement."""
    from cassandra.query import BatchStatement, BatchType

    def key(item: tuple[int, list[Any], Any]) -> tuple[str, ...]:
        return tuple(repr(item[1][n]) for n in pk)

    ordered = sorted(items, key=key) if pk else items
    cut: list[list[tuple[int, list[Any], Any]]] = []
    partitions: set[tuple[str, ...]] = set()
    for item in ordered:
        k = key(item)
        if not cut or len(cut[-1]) >= GROUP_ROWS or (
                k not in partitions and len(partitions) >= GROUP_PARTITIONS):
            cut.append([])
            partitions = set()
        cut[-1].append(item)
        partitions.add(k)
    groups = []
    for members in cut:
        statements = [m[2] for m in members]
        if len(statements) == 1:
            statement = statements[0]
        else:
            statement = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=level)
            for bound in statements:
                statement.add(bound)
        groups.append(_Group(table, [m[0] for m in members], statements, statement))
    return groups
