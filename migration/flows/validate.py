"""Check a flow against the live schemas (information_schema) before any row moves.

Unknown tables or columns on either side, a key that is not unique in the target, a
version column of a type that cannot be one, a NOT NULL target column without default that
nothing fills: each is one FuretError naming the flow, the server, the database, the table
and the column. :func:`version_codec` gives each table's version column codec
(:mod:`migration.engine.versions`), from the same schema read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from migration.config import CassandraSettings, DbSettings
from migration.db import db_error, query
from migration.engine.versions import VersionCodec, codec_for
from migration.errors import FuretError
from migration.flows.mapping import Flow, TableFlow

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str
    nullable: bool
    has_default: bool
    auto_increment: bool
    precision: int = 0          # fractional seconds of TIMESTAMP/DATETIME/TIME
    charset: str = ""           # text columns' character set


@dataclass(frozen=True)
class TableSchema:
    database: str
    table: str
    columns: dict[str, ColumnInfo]
    unique_keys: tuple[tuple[str, ...], ...]
    unique_names: tuple[str, ...] = ()     # index name of each unique key (PRIMARY, ...)

    def other_unique_keys(self, key: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
        """(name, columns) of the unique keys that are not ``key``: a row can collide with
        another row on them."""
        names = self.unique_names or tuple(f"unique{i}" for i in range(len(self.unique_keys)))
        return [(n, cols) for n, cols in zip(names, self.unique_keys, strict=True)
                if set(cols) != set(key)]


def read_schema(conn: pymysql.connections.Connection, settings: DbSettings, database: str,
                table: str) -> TableSchema | None:
    try:
        rows = query(conn, "SELECT column_name, data_type, is_nullable, column_default, extra, "
                           "datetime_precision, character_set_name "
                           "FROM information_schema.columns WHERE table_schema = %s AND "
                           "table_name = %s ORDER BY ordinal_position", (database, table))
        keys = query(conn, "SELECT index_name, column_name FROM information_schema.statistics "
                           "WHERE table_schema = %s AND table_name = %s AND non_unique = 0 "
                           "ORDER BY index_name, seq_in_index", (database, table))
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, database, table) from None
    if not rows:
        return None
    columns = {
        str(name): ColumnInfo(str(name), str(dtype).lower(), nullable == "YES",
                              default is not None, "auto_increment" in str(extra),
                              int(precision or 0), str(charset or ""))
        for name, dtype, nullable, default, extra, precision, charset in rows
    }
    unique: dict[str, list[str]] = {}
    for index, column in keys:
        unique.setdefault(str(index), []).append(str(column))
    return TableSchema(database, table, columns, tuple(tuple(v) for v in unique.values()),
                       tuple(unique))


def version_codec(flow: Flow, tf: TableFlow, schema: TableSchema) -> VersionCodec | None:
    """The codec of ``tf``'s version column (None for ``version: none``)."""
    if not tf.version:
        return None
    info = schema.columns[tf.version]
    where = f"flow {flow.name} database {flow.source_database} table {tf.source}"
    return codec_for(where, tf.version, info.data_type, info.precision, tf.version_unit,
                     tf.version_timezone)


def _fail(flow: Flow, settings: DbSettings, database: str, table: str, what: str) -> FuretError:
    return FuretError(f"flow {flow.name}: {settings.where} database {database} "
                      f"table {table}: {what}")


def _names(columns: tuple[str, ...]) -> str:
    return repr(columns[0]) if len(columns) == 1 else "(" + ", ".join(columns) + ")"


def validate_mariadb_flow(flow: Flow, source: pymysql.connections.Connection,
                          source_settings: DbSettings,
                          target: pymysql.connections.Connection | None,
                          target_settings: DbSettings | None) -> dict[str, TableSchema]:
    """Raise on the first mapping error; return the source schema of each source table."""
    sources: dict[str, TableSchema] = {}
    for tf in flow.tables:
        schema = read_schema(source, source_settings, flow.source_database, tf.source)
        if schema is None:
            raise _fail(flow, source_settings, flow.source_database, tf.source,
                        "table does not exist (run `furet legacy init`?)")
        for column in tf.source_columns:
            if column not in schema.columns:
                raise _fail(flow, source_settings, flow.source_database, tf.source,
                            f"unknown column {column!r} in the mapping")
        if not any(set(keys) == set(tf.keys) for keys in schema.unique_keys):
            raise _fail(flow, source_settings, flow.source_database, tf.source,
                        f"key {_names(tf.keys)} is not a primary or unique key")
        version_codec(flow, tf, schema)
        sources[tf.source] = schema
        if target is None or target_settings is None:
            continue
        for tm in tf.targets:
            tschema = read_schema(target, target_settings, flow.target_database, tm.table)
            if tschema is None:
                raise _fail(flow, target_settings, flow.target_database, tm.table,
                            "table does not exist (run `furet target init`?)")
            mapped = {c.target for c in tm.columns}
            if tm.ref_time:
                mapped.add(tm.ref_time.column)
            for column in sorted(mapped):
                if column not in tschema.columns:
                    raise _fail(flow, target_settings, flow.target_database, tm.table,
                                f"unknown column {column!r} in the mapping")
            key_target = tf.target_keys(tm)
            if not any(set(keys) == set(key_target) for keys in tschema.unique_keys):
                raise _fail(flow, target_settings, flow.target_database, tm.table,
                            f"key {_names(key_target)} is not a primary or unique key "
                            "(upserts need one)")
            for info in tschema.columns.values():
                if (info.name not in mapped and not info.nullable and not info.has_default
                        and not info.auto_increment):
                    raise _fail(flow, target_settings, flow.target_database, tm.table,
                                f"NOT NULL column {info.name!r} has no default and no mapping")
    return sources


def validate_cassandra_flow(flow: Flow, session: Any, settings: CassandraSettings) -> None:
    """Every target table and column of the flow exists in the keyspace."""
    for tf in flow.tables:
        for tm in tf.targets:
            rows = session.execute("SELECT column_name FROM system_schema.columns WHERE "
                                   "keyspace_name = %s AND table_name = %s",
                                   (flow.target_database, tm.table))
            columns = {r.column_name for r in rows}
            where = (f"flow {flow.name}: {settings.where} keyspace {flow.target_database} "
                     f"table {tm.table}")
            if not columns:
                raise FuretError(f"{where}: table does not exist (run `furet cassandra init`?)")
            for col in tm.columns:
                if col.target not in columns:
                    raise FuretError(f"{where}: unknown column {col.target!r} in the mapping")
