"""Idempotent, version-aware writes into Cassandra query tables.

One prepared ``INSERT ... USING TIMESTAMP ?`` per target table, executed concurrently for
a batch (``execute_concurrent_with_args``, never one blocking round trip per row). The
write timestamp is the source version in microseconds (``updated_ts * 1000``): Cassandra
keeps the cell with the highest write timestamp, so replaying a batch is harmless and an
older version can never overwrite a newer one, whatever the order the writes arrive in.

The batch checkpoint goes to the ledger on the target Galera after the Cassandra writes
succeeded; a crash in between replays the batch, which the write timestamps make safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

from migration.engine.galera_writer import BatchOutcome
from migration.engine.quarantine import QuarantinedRow, original_values
from migration.flows.mapping import TableFlow, TransformError

CONCURRENCY = 64


class CassandraWriter:
    def __init__(self, session: Any, keyspace: str, table_flow: TableFlow) -> None:
        self.session = session
        self.tf = table_flow
        self.source_columns = list(table_flow.source_columns)
        self.version_index = self.source_columns.index(table_flow.version)
        self.targets = []
        for tm in table_flow.targets:
            cols = [c.target for c in tm.columns]
            statement = session.prepare(
                f"INSERT INTO {keyspace}.{tm.table} ({', '.join(cols)}) VALUES "
                f"({', '.join('?' for _ in cols)}) USING TIMESTAMP ?")
            indexes = [self.source_columns.index(c.source) for c in tm.columns]
            self.targets.append((tm, statement, indexes))

    def _quarantine(self, row: Sequence[Any], table: str, reason: str) -> QuarantinedRow:
        return QuarantinedRow(self.tf.source, str(row[0]), int(row[1]), table, reason,
                              original_values(self.source_columns, row))

    def write(self, cur: pymysql.cursors.Cursor | None,
              rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        """Write ``rows`` to every query table; ``cur`` (the ledger) is not used here."""
        from cassandra.concurrent import execute_concurrent

        outcome = BatchOutcome()
        bad: set[int] = set()
        work: list[tuple[Any, tuple[()]]] = []
        owners: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            bound = []
            try:
                for tm, statement, indexes in self.targets:
                    values = []
                    for col, index in zip(tm.columns, indexes, strict=True):
                        try:
                            values.append(col.apply(row[index]))
                        except TransformError as exc:
                            category, _, detail = str(exc).partition(": ")
                            raise TransformError(f"{category}: {tm.table}: column "
                                                 f"{col.source}: {detail}") from None
                    try:
                        bound.append((tm.table, statement.bind(
                            (*values, int(row[self.version_index]) * 1000))))
                    except (TypeError, ValueError, OverflowError) as exc:
                        raise TransformError(f"bad value: {tm.table}: {exc}") from None
            except TransformError as exc:
                bad.add(i)
                outcome.quarantined.append(self._quarantine(row, self.targets[0][0].table,
                                                            str(exc)))
                continue
            for table, statement in bound:
                work.append((statement, ()))
                owners.append((i, table))
        results = execute_concurrent(self.session, [(s, None) for s, _ in work],
                                     concurrency=CONCURRENCY, raise_on_first_error=False)
        failures = [(owners[n], result) for n, (ok, result) in enumerate(results) if not ok]
        for (i, table), exc in failures:
            if i in bad:
                continue
            # a timeout or an unavailable replica is not the row's fault: fail the batch
            if type(exc).__name__ != "InvalidRequest":
                raise exc
            bad.add(i)
            outcome.quarantined.append(self._quarantine(rows[i], table,
                                                        f"rejected: {table}: {exc}"))
        outcome.written = len(rows) - len(bad)
        return outcome
