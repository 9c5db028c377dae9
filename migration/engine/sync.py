"""Tables without a version column (``version: none``): rounds after the first find the
key ranges whose rows changed by checksums, re-copy only those, and delete target rows
whose source row is gone when the flow says ``deletes: propagate``.

A *sync* chunk is a key range, planned like round 1's. Its check is the one verify makes
(:mod:`migration.rowhash`): ``COUNT(*)`` and ``BIT_XOR`` of the row hashes of the mapped
columns, computed inside each server, so an unchanged range costs one index range scan on
each side and moves no row. In a range whose checksums differ, each side's (key, row
hash) pairs are read and compared: only the rows missing or different on the target are
copied again through the round's writer (the source's row always wins: there is no
version to compare); with ``deletes: propagate`` the target rows whose key the source no
longer holds are deleted, else they are kept (and counted by verify as extra). A source
table whose transforms have no SQL form (``trim``, ``lower``) cannot be hashed in SQL:
each of its ranges is copied again whole.

Cost, stated in the README: every round reads the whole table on both sides (as
pt-table-sync does); only changed ranges are written. Rows changed while the round runs
are caught by the next round; the final round, during the write freeze, leaves the target
equal to the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

from migration.canonical import key_text
from migration.db import query
from migration.engine import keys as k
from migration.engine.plan import ChunkSpec
from migration.flows.mapping import Flow, TableFlow, TargetMap
from migration.flows.validate import TableSchema
from migration.rowhash import needs_client_hash, sql_hash_operand, sql_row_hash

DELETE_BATCH = 500


def range_where(columns: Sequence[str], spec: ChunkSpec) -> tuple[str, list[Any]]:
    """`` WHERE`` clause (or "") of a key range ``(key_lo, key_hi]`` on ``columns``."""
    parts: list[str] = []
    args: list[Any] = []
    if spec.key_lo is not None:
        sql, values = k.after(columns, spec.key_lo)
        parts.append(f"({sql})")
        args += values
    if spec.key_hi is not None:
        sql, values = k.up_to(columns, spec.key_hi)
        parts.append(f"({sql})")
        args += values
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


def _texts(tm: TargetMap, source_schema: TableSchema, target_schemas: dict[str, TableSchema]
           ) -> tuple[list[str], list[str]] | None:
    """What the row hash is made of on each side (rowhash.sql_hash_operand of the mapped
    columns); None when a side cannot be hashed in SQL."""
    tschema = target_schemas.get(tm.table)
    if tschema is None or needs_client_hash(tm.columns):
        return None
    return ([sql_hash_operand(c.source, source_schema.columns[c.source].data_type,
                              c.transform) for c in tm.columns],
            [sql_hash_operand(c.target, tschema.columns[c.target].data_type)
             for c in tm.columns])


def _checksum(conn: pymysql.connections.Connection, database: str, table: str,
              texts: list[str], key_columns: Sequence[str],
              spec: ChunkSpec) -> tuple[int, int]:
    where, args = range_where(key_columns, spec)
    count, xor = query(conn, f"SELECT COUNT(*), COALESCE(BIT_XOR({sql_row_hash(texts)}), 0) "
                             f"FROM {k.quote(database)}.{k.quote(table)}{where}", args)[0]
    return int(count), int(xor)


def unchanged(source: pymysql.connections.Connection, target: pymysql.connections.Connection,
              flow: Flow, tf: TableFlow, spec: ChunkSpec, source_schema: TableSchema,
              target_schemas: dict[str, TableSchema]) -> tuple[bool, int]:
    """(every target table holds this range as the source does, source rows in it)."""
    rows = 0
    same = True
    for tm in tf.targets:
        texts = _texts(tm, source_schema, target_schemas)
        if texts is None:
            return False, 0
        src = _checksum(source, flow.source_database, tf.source, texts[0], tf.keys, spec)
        tgt = _checksum(target, flow.target_database, tm.table, texts[1], tf.target_keys(tm),
                        spec)
        rows = src[0]
        same = same and src == tgt
    return same, rows


def _hashes(conn: pymysql.connections.Connection, database: str, table: str,
            texts: list[str], key_columns: Sequence[str],
            spec: ChunkSpec) -> dict[str, tuple[k.Key, int]]:
    where, args = range_where(key_columns, spec)
    rows = query(conn, f"SELECT {k.select_list(key_columns)}, {sql_row_hash(texts)} FROM "
                       f"{k.quote(database)}.{k.quote(table)}{where}", args)
    width = len(key_columns)
    return {key_text(r[:width]): (tuple(r[:width]), int(r[width])) for r in rows}


def differences(source: pymysql.connections.Connection,
                target: pymysql.connections.Connection, flow: Flow, tf: TableFlow,
                spec: ChunkSpec, source_schema: TableSchema,
                target_schemas: dict[str, TableSchema]
                ) -> tuple[list[k.Key], dict[str, list[k.Key]]]:
    """(source keys to copy again, per target table the keys its source row lost) of a
    range whose checksums differ. Without SQL hashes: every source key of the range."""
    copy: dict[str, k.Key] = {}
    gone: dict[str, list[k.Key]] = {}
    for tm in tf.targets:
        texts = _texts(tm, source_schema, target_schemas)
        if texts is None:
            src_keys = _keys_in(source, flow.source_database, tf.source, tf.keys, spec)
            copy.update((key_text(key), key) for key in src_keys)
            gone[tm.table] = gone_keys(source, target, flow, tf, tm, spec)
            continue
        src = _hashes(source, flow.source_database, tf.source, texts[0], tf.keys, spec)
        tgt = _hashes(target, flow.target_database, tm.table, texts[1], tf.target_keys(tm),
                      spec)
        copy.update((text, key) for text, (key, digest) in src.items()
                    if tgt.get(text, (None, None))[1] != digest)
        gone[tm.table] = [key for text, (key, _) in tgt.items() if text not in src]
    return list(copy.values()), gone


def _keys_in(conn: pymysql.connections.Connection, database: str, table: str,
             columns: Sequence[str], spec: ChunkSpec) -> list[tuple[Any, ...]]:
    where, args = range_where(columns, spec)
    return [tuple(r) for r in query(conn, f"SELECT {k.select_list(columns)} FROM "
                                          f"{k.quote(database)}.{k.quote(table)}{where}", args)]


def gone_keys(source: pymysql.connections.Connection, target: pymysql.connections.Connection,
              flow: Flow, tf: TableFlow, tm: TargetMap, spec: ChunkSpec) -> list[k.Key]:
    """Keys of ``tm`` in this range whose source row no longer exists."""
    kept = {key_text(key) for key in _keys_in(source, flow.source_database, tf.source,
                                              tf.keys, spec)}
    return [key for key in _keys_in(target, flow.target_database, tm.table,
                                    tf.target_keys(tm), spec) if key_text(key) not in kept]


def delete_statements(flow: Flow, tf: TableFlow, table: str,
                      gone: Sequence[k.Key]) -> list[tuple[str, list[Any]]]:
    """The DELETEs of ``gone`` keys in the target ``table``, in batches."""
    tm = next(t for t in tf.targets if t.table == table)
    out = []
    for start in range(0, len(gone), DELETE_BATCH):
        clause, args = k.among(tf.target_keys(tm), gone[start:start + DELETE_BATCH])
        out.append((f"DELETE FROM {k.quote(flow.target_database)}.{k.quote(table)} "
                    f"WHERE {clause}", args))
    return out
