"""Batched, idempotent, version-aware writes into MariaDB/Galera.

One multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` per target table and batch, where
every column takes the new value only if the incoming version is not older::

    c = IF(VALUES(v) >= v, VALUES(c), c), ..., v = GREATEST(v, VALUES(v))

The version column is assigned LAST: MariaDB evaluates the assignments left to right, so
an earlier ``v = ...`` would make every later comparison see the new version. Replaying a
batch is harmless (same version: same values), an older version never wins.

Rows the target would refuse are caught on the client first, from the target's live
schema: NULL in a NOT NULL column, a date the driver could not parse (legacy zero dates),
invalid UTF-8 (the ``utf8`` transform). They go to quarantine without a round trip. If a
statement still fails on one row's data (a value out of range, a constraint), the batch is
retried in halves in the same transaction and the failing rows go to quarantine; a clean
batch costs one statement per target table (and a SAVEPOINT). Measured on the lab with the
seed's 3 dirty rows per thousand: the client checks took round 1 of 515k rows from 36 s to
a third of that, as nearly every batch held a dirty row and paid for a bisection.

Round 1 of a table (no watermark in the ledger: its target is expected empty) first tries
each batch as a plain ``INSERT`` of the same rows: no version guards, and no collision check
after it (a row that collides fails the statement instead). A batch it cannot write whole
(a row the target refuses, a key already there) is undone and written the guarded way, so
the same rows reach quarantine with the same reasons; a duplicate of the row's own key
turns the plain ``INSERT`` off for that table for the rest of the run: the target was not
empty after all (a duplicate of another unique key is two source rows sharing a value).

Every statement runs after ``SAVEPOINT`` and a failed one is undone with ``ROLLBACK TO
SAVEPOINT``, never by the server's implicit statement rollback alone: on Galera (MariaDB
10.11, no binary log) a large multi-row statement that fails half-way leaves the row events
it had already flushed in the transaction's write set. The other nodes then apply rows the
writer never kept, fail with a duplicate key, and vote the writer out of the cluster
("Vote 0 (success) ... is inconsistent with group. Leaving cluster."). tests/lab shows it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pymysql

from migration.canonical import key_text
from migration.db import ROW_DATA_ERRORS, error_code
from migration.engine.quarantine import QuarantinedRow, original_values
from migration.engine.versions import VersionCodec
from migration.engine.writer import BatchOutcome
from migration.flows.mapping import TableFlow, TargetMap, TransformError
from migration.flows.validate import TableSchema
from migration.sql_literals import row_literal

SAVEPOINT = "furet_statement"
DUPLICATE_KEY = 1062
DATE_TYPES = frozenset({"date", "datetime", "timestamp"})
REASONS = {1048: "NULL not allowed", 1062: "duplicate key", 1264: "out of range",
           1265: "truncated", 1292: "bad date", 1366: "bad encoding", 1406: "too long",
           1452: "foreign key", 3819: "constraint", 4025: "constraint"}


def upsert_sql(database: str, table: str, columns: Sequence[str], key: Sequence[str],
               version: str, guard: bool = False) -> tuple[str, str]:
    """``(prefix, suffix)`` of the conditional upsert; rows go between them. Without a
    version column (``version: none``) the source's row always wins.

    ``guard`` (a target with unique keys besides the row's key): every assignment also
    requires the existing row to have the incoming row's key. ``ON DUPLICATE KEY UPDATE``
    updates whichever row a unique key conflicts with: without the guard a row whose
    secondary key collides with ANOTHER row would be merged into it; with it, that row is
    left untouched and the incoming row is not written (the writer then quarantines it).
    """
    cols = ", ".join(f"`{c}`" for c in columns)
    same = " AND ".join(f"`{k}` = VALUES(`{k}`)" for k in key) if guard else ""

    def when(condition: str) -> str:
        return " AND ".join(c for c in (same, condition) if c)

    if not version:
        updates = [(f"`{c}` = IF({same}, VALUES(`{c}`), `{c}`)" if guard else
                    f"`{c}` = VALUES(`{c}`)") for c in columns if c not in key]
        if not updates:  # a table that is only its key: nothing to update
            updates = [f"`{key[0]}` = `{key[0]}`"]
        return (f"INSERT INTO `{database}`.`{table}` ({cols}) VALUES ",
                " ON DUPLICATE KEY UPDATE " + ", ".join(updates))
    newer = when(f"VALUES(`{version}`) >= `{version}`")
    updates = [f"`{c}` = IF({newer}, VALUES(`{c}`), `{c}`)"
               for c in columns if c not in key and c != version]
    greatest = f"GREATEST(`{version}`, VALUES(`{version}`))"
    updates.append(f"`{version}` = " + (f"IF({same}, {greatest}, `{version}`)" if guard
                                        else greatest))
    return (f"INSERT INTO `{database}`.`{table}` ({cols}) VALUES ",
            " ON DUPLICATE KEY UPDATE " + ", ".join(updates))


def insert_sql(database: str, table: str, columns: Sequence[str]) -> str:
    """The prefix of a plain multi-row ``INSERT`` (rows follow it): round 1's first try into
    a target it finds empty (:meth:`GaleraWriter.write`)."""
    cols = ", ".join(f"`{c}`" for c in columns)
    return f"INSERT INTO `{database}`.`{table}` ({cols}) VALUES "


def absent_sql(database: str, table: str, key: Sequence[str],
               count: int) -> str:
    """Which of ``count`` keys (``%s`` per column, row after row) have no row in ``table``:
    the positions (0-based) of those keys. The server compares, with the columns'
    collations, so a key never looks absent because of case or trailing spaces."""
    first = ", ".join(f"%s AS `{k}`" for k in key)
    rest = ", ".join(["%s"] * len(key))
    rows = " UNION ALL ".join([f"SELECT 0 AS furet_i, {first}"] +
                              [f"SELECT {i}, {rest}" for i in range(1, count)])
    match = " AND ".join(f"t.`{k}` = v.`{k}`" for k in key)
    return (f"SELECT v.furet_i FROM ({rows}) v WHERE NOT EXISTS "
            f"(SELECT 1 FROM `{database}`.`{table}` t WHERE {match})")


def _execute_rows(cur: pymysql.cursors.Cursor, prefix: str,
                  literals: Sequence[str] | Sequence[bytes], rows: list[int], suffix: str
                  ) -> None:
    """One multi-row statement: ``prefix``, the literals of ``rows``, ``suffix``."""
    picked = [literals[i] for i in rows]
    if picked and isinstance(picked[0], bytes):
        cur.execute(prefix.encode("utf-8") + b",".join(cast(list[bytes], picked))
                    + suffix.encode("utf-8"))
    else:
        cur.execute(prefix + ",".join(cast(list[str], picked)) + suffix)


def _duplicate_key_name(exc: pymysql.MySQLError) -> str:
    """The key a duplicate-key error names ("... for key 'uq_x'"; MySQL 8: 'table.uq_x')."""
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    named = re.search(r"for key '(?:[^']*\.)?([^']+)'$", message)
    return named.group(1) if named else "?"


def _names_other_key(exc: pymysql.MySQLError, target: _Target) -> bool:
    """Whether a duplicate-key error names one of the target's other unique keys (two
    source rows sharing a value: dirt, not a target that holds rows already)."""
    return _duplicate_key_name(exc) in {n for n, _ in target.others}


@dataclass
class _Target:
    mapping: TargetMap
    columns: list[str]
    indexes: list[int]
    prefix: str
    suffix: str
    ref_time: bool
    not_null: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()
    key: tuple[str, ...] = ()
    # unique keys of the target besides the row's key: (name, columns)
    others: tuple[tuple[str, tuple[str, ...]], ...] = ()
    insert_prefix: str = ""


def _checks(schema: TableSchema | None) -> tuple[frozenset[str], frozenset[str]]:
    """(NOT NULL columns, date columns) of a target table; empty without a schema."""
    if schema is None:
        return frozenset(), frozenset()
    cols = schema.columns.values()
    return (frozenset(c.name for c in cols if not c.nullable),
            frozenset(c.name for c in cols if c.data_type in DATE_TYPES))


def quarantined(tf: TableFlow, codec: VersionCodec | None, columns: Sequence[str],
                row: Sequence[Any], target: str, reason: str) -> QuarantinedRow:
    """A source row as furet.quarantine records it: key text, ledger version (0 when the
    table has no version or the row's version is not an instant), original values."""
    width = tf.width
    version = codec.ledger(row[width]) if codec is not None else None
    return QuarantinedRow(tf.source, key_text(row[:width]), version or 0, target, reason,
                          original_values(columns, row))


class GaleraWriter:
    """Writes batches of source rows (tuples in ``TableFlow.source_columns`` order)."""

    def __init__(self, database: str, table_flow: TableFlow, strategy: str,
                 target_schemas: dict[str, TableSchema] | None = None,
                 codec: VersionCodec | None = None, insert_first: bool = False) -> None:
        self.database = database
        # round 1 of a table (no watermark yet): its target is expected empty, so each batch
        # is first tried as a plain INSERT; a duplicate of a row's own key turns it off
        self.insert_first = insert_first
        self.insert_off = ""  # why it was turned off
        self.tf = table_flow
        self.codec = codec
        self.source_columns = list(table_flow.source_columns)
        self.targets: list[_Target] = []
        for tm in table_flow.targets:
            columns = [c.target for c in tm.columns]
            ref_time = strategy == "id" and tm.ref_time is not None
            if ref_time and tm.ref_time is not None:
                columns.append(tm.ref_time.column)
            key = table_flow.target_keys(tm)
            version = (tm.target_of(table_flow.version) or table_flow.version
                       if table_flow.version else "")
            schema = (target_schemas or {}).get(tm.table)
            others = tuple(schema.other_unique_keys(key)) if schema else ()
            prefix, suffix = upsert_sql(database, tm.table, columns, key, version,
                                        guard=bool(others))
            not_null, dates = _checks(schema)
            self.targets.append(_Target(
                tm, columns, [self.source_columns.index(c.source) for c in tm.columns],
                prefix, suffix, ref_time, not_null, dates, key, others,
                insert_sql(database, tm.table, columns)))

    def _quarantine(self, row: Sequence[Any], target: str, reason: str) -> QuarantinedRow:
        return quarantined(self.tf, self.codec, self.source_columns, row, target, reason)

    def _transform(self, rows: Sequence[Sequence[Any]], outcome: BatchOutcome
                   ) -> list[tuple[Sequence[Any], list[tuple[Any, ...]]]]:
        good = []
        for row in rows:
            per_target = []
            try:
                for t in self.targets:
                    values = []
                    for c, i in zip(t.mapping.columns, t.indexes, strict=True):
                        try:
                            value = c.apply(row[i])
                        except TransformError as exc:
                            category, _, detail = str(exc).partition(": ")
                            raise TransformError(f"{category}: {t.mapping.table}: column "
                                                 f"{c.source}: {detail}") from None
                        if value is None and c.target in t.not_null:
                            raise TransformError(f"NULL not allowed: {t.mapping.table}: column "
                                                 f"{c.target} cannot be NULL")
                        if isinstance(value, str) and c.target in t.dates:
                            raise TransformError(f"bad date: {t.mapping.table}: column "
                                                 f"{c.target}: invalid date {value!r}")
                        values.append(value)
                    per_target.append(tuple(values))
            except TransformError as exc:
                outcome.quarantined.append(self._quarantine(row, self.targets[0].mapping.table,
                                                            str(exc)))
                continue
            good.append((row, per_target))
        return good

    def _ref_time_ids(self, cur: pymysql.cursors.Cursor, target: _Target,
                      rows: Sequence[Sequence[Any]]) -> list[int]:
        """Old ETL: the bo_ref_time id of each row's minute (inserted when missing)."""
        assert target.mapping.ref_time is not None
        ref = target.mapping.ref_time
        index = self.source_columns.index(ref.source)
        minutes = []
        for row in rows:
            t = datetime.datetime.fromtimestamp(int(row[index]) / 1000, datetime.UTC)
            minutes.append((t.day, t.month, t.year, t.hour, t.minute))
        table = f"`{self.database}`.`{ref.table}`"
        unique = sorted(set(minutes))
        values = ",".join(row_literal(m) for m in unique)
        cur.execute(f"INSERT IGNORE INTO {table} (day, month, year, hour, minute) VALUES {values}")
        cur.execute(f"SELECT id, day, month, year, hour, minute FROM {table} WHERE "
                    f"(day, month, year, hour, minute) IN ({values})")
        ids = {tuple(r[1:]): int(r[0]) for r in cur.fetchall()}
        return [ids[m] for m in minutes]

    def _write_isolating(self, cur: pymysql.cursors.Cursor, target: _Target,
                         literals: Sequence[str] | Sequence[bytes], rows: list[int],
                         on_row_error: Callable[[int, int, pymysql.MySQLError], None]) -> None:
        """One statement for ``rows``; if a row's data breaks it, bisect to find the rows."""
        cur.execute(f"SAVEPOINT {SAVEPOINT}")
        try:
            _execute_rows(cur, target.prefix, literals, rows, target.suffix)
            return
        except pymysql.MySQLError as exc:
            code = error_code(exc)
            if code not in ROW_DATA_ERRORS:
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            if len(rows) == 1:  # the statement failed as a whole: nothing of it was written
                on_row_error(rows[0], code, exc)
                return
        half = len(rows) // 2
        self._write_isolating(cur, target, literals, rows[:half], on_row_error)
        self._write_isolating(cur, target, literals, rows[half:], on_row_error)

    def _insert_plain(self, cur: pymysql.cursors.Cursor, target: _Target,
                      literals: Sequence[str] | Sequence[bytes], rows: list[int]) -> bool:
        """Round 1's fast path: ``rows`` as one plain ``INSERT``, without the version guards
        and without the collision check, which an empty target does not need. True if it
        wrote them all; else (a row the target refuses, a key it already holds) nothing of
        it is kept and the caller writes them the guarded way, which finds and quarantines
        the same rows for the same reasons. A duplicate key means the target is not empty:
        this writer stops trying."""
        if not self.insert_first or not rows:
            return False
        cur.execute(f"SAVEPOINT {SAVEPOINT}")
        try:
            _execute_rows(cur, target.insert_prefix, literals, rows, "")
            return True
        except pymysql.MySQLError as exc:
            code = error_code(exc)
            if code not in ROW_DATA_ERRORS:
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            if code == DUPLICATE_KEY and not _names_other_key(exc, target):
                # the row's own key is there already: the target is not empty
                self.insert_first = False
                # the key's name, never its value (row data stays out of the summary)
                self.insert_off = (f"round 1 found rows in {target.mapping.table} (a "
                                   f"duplicate of key {_duplicate_key_name(exc)})")
            return False

    def write(self, cur: pymysql.cursors.Cursor, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        """Write ``rows`` inside the caller's transaction; never commits."""
        outcome = BatchOutcome()
        good = self._transform(rows, outcome)
        failed: set[int] = set()
        for t_index, target in enumerate(self.targets):
            values = [per_target[t_index] for _, per_target in good]
            if target.ref_time and values:
                ids = self._ref_time_ids(cur, target, [row for row, _ in good])
                values = [(*v, ref_id) for v, ref_id in zip(values, ids, strict=True)]
            literals = [row_literal(v) for v in values]
            live = [i for i in range(len(good)) if i not in failed]
            if not live:
                break

            def quarantine(index: int, code: int, exc: pymysql.MySQLError,
                           target: _Target = target) -> None:
                failed.add(index)
                reason = f"{REASONS.get(code, f'error {code}')}: {target.mapping.table}: " \
                         f"{exc.args[1]}"
                outcome.quarantined.append(
                    self._quarantine(good[index][0], target.mapping.table, reason))

            if self._insert_plain(cur, target, literals, live):
                continue
            self._write_isolating(cur, target, literals, live, quarantine)
            if target.others:
                where = [target.columns.index(k) for k in target.key]
                keys = {i: tuple(values[i][p] for p in where) for i in live
                        if i not in failed}
                for i, reason in self._collisions(cur, target, keys, values).items():
                    failed.add(i)
                    outcome.quarantined.append(
                        self._quarantine(good[i][0], target.mapping.table, reason))
        outcome.written = len(good) - len(failed)
        return outcome

    def _collisions(self, cur: pymysql.cursors.Cursor, target: _Target,
                    keys: dict[int, tuple[Any, ...]],
                    values: Sequence[tuple[Any, ...]] | None = None) -> dict[int, str]:
        """Rows just upserted into a target with other unique keys that are not there:
        the guarded upsert left them out because another row holds one of their unique
        keys. Their positions, with the reason (naming that key and that row when the
        row's ``values`` in the target's columns are given)."""
        if not keys:
            return {}
        order = list(keys)
        cur.execute(absent_sql(self.database, target.mapping.table, target.key, len(order)),
                    [v for i in order for v in keys[i]])
        absent = [order[int(pos)] for (pos,) in cur.fetchall()]
        reasons = {}
        for i in absent:
            reason = (f"duplicate key: {target.mapping.table}: another row holds a unique "
                      f"key of this row ({', '.join(n for n, _ in target.others)})")
            for name, columns in target.others if values is not None else ():
                assert values is not None
                held = [values[i][target.columns.index(c)] for c in columns
                        if c in target.columns]
                if len(held) != len(columns):
                    continue
                match = " AND ".join(f"`{c}` = %s" for c in columns)
                cur.execute(f"SELECT {', '.join(f'`{k}`' for k in target.key)} FROM "
                            f"`{self.database}`.`{target.mapping.table}` WHERE {match} "
                            "LIMIT 1", held)
                other = cur.fetchone()
                if other is not None:
                    reason = (f"duplicate key: {target.mapping.table}: unique key {name} "
                              f"{key_text(tuple(held))} is held by the row "
                              f"{key_text(tuple(other))}")
                    break
            reasons[i] = reason + ", not merged"
        return reasons

    def write_literals(self, cur: pymysql.cursors.Cursor, literals: Sequence[Sequence[bytes]],
                       keys: Sequence[Any], originals: Callable[[list[Any]], list[tuple[Any, ...]]]
                       ) -> BatchOutcome:
        """Write clean rows given as server-built literals (one per target, see
        :mod:`migration.engine.sql_pushdown`), inside the caller's transaction.

        A row whose data the target still refuses (out of range, a constraint) is isolated
        by bisection as on the Python path, then read again with ``originals(keys)`` and
        handed to :meth:`write`, which quarantines it with its original values and reason.
        """
        failed: set[int] = set()
        for t_index, target in enumerate(self.targets):
            live = [i for i in range(len(literals)) if i not in failed]
            if not live:
                break
            column = [row[t_index] for row in literals]
            if self._insert_plain(cur, target, column, live):
                continue
            self._write_isolating(cur, target, column, live,
                                  lambda index, _code, _exc: failed.add(index))
            if target.others:
                # collided rows are found again, and quarantined, by the Python path
                absent = self._collisions(cur, target, {i: tuple(keys[i]) for i in live
                                                        if i not in failed})
                failed.update(absent)
        outcome = BatchOutcome(len(literals) - len(failed))
        if failed:
            again = self.write(cur, originals([keys[i] for i in sorted(failed)]))
            outcome.written += again.written
            outcome.quarantined.extend(again.quarantined)
        return outcome
