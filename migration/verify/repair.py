"""``furet verify --repair``: put the target back in line with the source, then re-check.

- missing and different rows are re-read from the source and written through the SAME
  version-aware writers the rounds use (:class:`~migration.engine.galera_writer.GaleraWriter`,
  :class:`~migration.engine.cassandra_writer.CassandraWriter`): an older version never
  replaces a newer one, rows the writer refuses go to furet.quarantine;
- extra rows are deleted only with ``--delete-extra`` (by key on MariaDB, by primary key on
  Cassandra);
- the repaired chunks are checked again. A row still wrong after a version-aware write is
  *shadowed*: the target holds something newer than the source's version (on MariaDB a
  higher version column; on Cassandra a write or a tombstone with a later write time, e.g.
  a row deleted or edited by hand). It is reported, and overwritten only with
  ``--overwrite-newer`` (MariaDB: an unconditional upsert; Cassandra: ``USING TIMESTAMP``
  now), then checked once more. Overwriting is a choice for the operator: a source change
  stamped before now and not yet copied would lose against it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pymysql

from migration.db import connect, db_error
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.galera_writer import GaleraWriter
from migration.engine.ledger import ensure_ledger
from migration.engine.quarantine import QuarantinedRow, insert_statements
from migration.flows.mapping import TransformError
from migration.sql_literals import row_literal
from migration.verify import cassandra_checksum as cq
from migration.verify import mysql_checksum as mq
from migration.verify.drilldown import Classified
from migration.verify.mysql_checksum import RowInfo, SqlSide
from migration.verify.normalise import quote_ident
from migration.verify.report import RepairReport, TableReport

if TYPE_CHECKING:
    from migration.verify.run import Pair, Verifier, _Chunk

BATCH = 500
REPAIR_ROUND_NO = 0  # furet.quarantine.round_no of rows refused during a repair


def _batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _record_quarantine(v: Verifier, rows: list[QuarantinedRow]) -> None:
    if not rows:
        return
    conn = connect(v.config.target, autocommit=True)
    try:
        ensure_ledger(conn)
        with conn.cursor() as cur:
            for statement in insert_statements(v.flow.name, REPAIR_ROUND_NO, rows):
                cur.execute(statement)
    except pymysql.MySQLError as exc:
        raise db_error(exc, v.config.target, "furet", "quarantine") from None
    finally:
        conn.close()


def copy_rows(v: Verifier, pair: Pair, keys: Sequence[Any]) -> tuple[int, int]:
    """Re-copy the source rows of ``keys`` through the round's writer: (written, quarantined)."""
    if not keys:
        return 0, 0
    rows = mq.source_rows(v.conns.get(pair.source.settings), pair.source,
                          pair.tf.source_columns, keys)
    written, refused = 0, []
    if isinstance(pair.target, cq.CassandraSide):
        cwriter = CassandraWriter(pair.target.session, v.flow.target_database, pair.tf)
        for batch in _batches(rows):
            outcome = cwriter.write(None, batch)
            written += outcome.written
            refused.extend(outcome.quarantined)
    else:
        gwriter = GaleraWriter(v.flow.target_database, pair.tf, "ts")
        conn = connect(v.config.target, autocommit=False, strict=True)
        try:
            for batch in _batches(rows):
                conn.begin()
                with conn.cursor() as cur:
                    outcome = gwriter.write(cur, batch)
                conn.commit()
                written += outcome.written
                refused.extend(outcome.quarantined)
        except pymysql.MySQLError as exc:
            raise db_error(exc, v.config.target, v.flow.target_database, pair.tm.table) from None
        finally:
            conn.close()
    _record_quarantine(v, refused)
    return written, len(refused)


def delete_rows(v: Verifier, pair: Pair, extra: Sequence[tuple[str, RowInfo]]) -> int:
    if not extra:
        return 0
    if isinstance(pair.target, cq.CassandraSide):
        from cassandra.concurrent import execute_concurrent_with_args

        side = pair.target
        where = " AND ".join(f"{c} = ?" for c in side.primary_key)
        statement = side.session.prepare(f"DELETE FROM {side.keyspace}.{side.table} "
                                         f"WHERE {where}")
        indexes = [side.columns.index(c) for c in side.primary_key]
        args = [tuple(row.native[i] for i in indexes) for _, row in extra
                if row.native is not None]
        execute_concurrent_with_args(side.session, statement, args, concurrency=64)
        return len(args)
    target = pair.target
    assert isinstance(target, SqlSide)
    keys = sorted({row.key for _, row in extra}, key=str)
    conn = connect(target.settings, autocommit=True)
    deleted = 0
    try:
        with conn.cursor() as cur:
            for batch in _batches(keys):
                marks = ", ".join(["%s"] * len(batch))
                deleted += cur.execute(f"DELETE FROM {target.fqtn} WHERE "
                                       f"{quote_ident(target.key)} IN ({marks})", list(batch))
    except pymysql.MySQLError as exc:
        raise target.error(exc) from None
    finally:
        conn.close()
    return deleted


def _mapped(pair: Pair, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Source rows -> this pair's target values (rows a transform refuses are left out)."""
    columns = list(pair.tf.source_columns)
    indexes = [columns.index(c.source) for c in pair.tm.columns]
    out = []
    for row in rows:
        try:
            out.append(tuple(c.apply(row[i]) for c, i in zip(pair.tm.columns, indexes,
                                                             strict=True)))
        except TransformError:
            continue
    return out


def overwrite_rows(v: Verifier, pair: Pair, keys: Sequence[Any]) -> int:
    """``--overwrite-newer``: write the source's rows over a newer target copy."""
    if not keys:
        return 0
    rows = _mapped(pair, mq.source_rows(v.conns.get(pair.source.settings), pair.source,
                                        pair.tf.source_columns, keys))
    names = [c.target for c in pair.tm.columns]
    if isinstance(pair.target, cq.CassandraSide):
        from cassandra.concurrent import execute_concurrent_with_args

        side = pair.target
        statement = side.session.prepare(
            f"INSERT INTO {side.keyspace}.{side.table} ({', '.join(names)}) VALUES "
            f"({', '.join('?' for _ in names)}) USING TIMESTAMP ?")
        now_us = int(time.time() * 1_000_000)
        execute_concurrent_with_args(side.session, statement,
                                     [(*row, now_us) for row in rows], concurrency=64)
        return len(rows)
    target = pair.target
    assert isinstance(target, SqlSide)
    cols = ", ".join(quote_ident(n) for n in names)
    updates = ", ".join(f"{quote_ident(n)} = VALUES({quote_ident(n)})" for n in names
                        if n != target.key)
    conn = connect(target.settings, autocommit=False, strict=True)
    try:
        with conn.cursor() as cur:
            for batch in _batches(rows):
                cur.execute(f"INSERT INTO {target.fqtn} ({cols}) VALUES "
                            f"{','.join(row_literal(r) for r in batch)} "
                            f"ON DUPLICATE KEY UPDATE {updates}")
        conn.commit()
    except pymysql.MySQLError as exc:
        raise target.error(exc) from None
    finally:
        conn.close()
    return len(rows)


def _source_keys(found: Classified) -> list[Any]:
    keys = [s.key for s in found.missing.values()]
    keys += [s.key for s, _ in found.different.values()]
    return sorted(set(keys), key=str)


def repair_pair(v: Verifier, pair: Pair, done: list[_Chunk], found: Classified) -> RepairReport:
    """Repair one compared table, then re-check its mismatching chunks."""
    report = RepairReport()
    chunks = [c for c in done if c.report.status == "mismatch"]
    ranges = [c.rng for c in chunks]
    report.copied, report.quarantined = copy_rows(v, pair, _source_keys(found))
    if v.options.delete_extra:
        report.deleted = delete_rows(v, pair, found.extra)
    else:
        report.extra_kept = len(found.extra)
    scratch = TableReport(pair.tf.source, pair.tm.table, pair.tf.key, pair.tf.version, "recheck")
    _, after = v.compare(pair, scratch, fixed=ranges)
    shadowed = _source_keys(after)
    report.shadowed = shadowed[:v.options.max_report_rows]
    if shadowed and v.options.overwrite_newer:
        report.overwritten = overwrite_rows(v, pair, shadowed)
        _, after = v.compare(pair, scratch, fixed=ranges)
    report.rechecked_chunks = len(ranges)
    report.missing_after = len(after.missing)
    report.extra_after = len(after.extra)
    report.different_after = len(after.different)
    still = {c.rng.no for c in _rechecked_bad(after, chunks)}
    for chunk in chunks:
        chunk.report.status = "unrepaired" if chunk.rng.no in still else "repaired"
    return report


def _rechecked_bad(after: Classified, chunks: list[_Chunk]) -> list[_Chunk]:
    """Chunks still holding a wrong row after the repair (by key, or by version range)."""
    bad = []
    rows = [s for s in after.missing.values()] + [t for _, t in after.extra]
    rows += [s for s, _ in after.different.values()]
    for chunk in chunks:
        for row in rows:
            value = row.version if chunk.rng.kind == "version" else row.key
            if value is not None and chunk.rng.contains(int(value) if chunk.rng.kind ==
                                                        "version" else value):
                bad.append(chunk)
                break
    return bad
