"""A MySQL/MariaDB database's table definitions, read from information_schema and typed.

One reader for ``furet flow init`` (which flow to write) and ``furet target schema`` (which
tables to create): base tables only (no views), their columns (COLUMN_TYPE, DATA_TYPE,
DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_DEFAULT, EXTRA,
GENERATION_EXPRESSION, IS_NULLABLE) and indexes (statistics), in four queries per database
whatever its number of tables.

The two servers differ in what they show, and this module hides it:

- COLUMN_DEFAULT: MariaDB (10.2.7+) shows SQL (``'a''b'``, ``NULL``,
  ``current_timestamp(3)``), MySQL the bare value (``a'b``, SQL NULL, ``CURRENT_TIMESTAMP``,
  an expression flagged ``DEFAULT_GENERATED``): :attr:`Column.default` is SQL either way.
- JSON: MariaDB stores it as LONGTEXT with a ``json_valid(col)`` column CHECK
  (information_schema.CHECK_CONSTRAINTS); such a column is read back as ``json``.
- Generated columns: MariaDB leaves GENERATION_EXPRESSION NULL for the others, MySQL ``''``;
  MySQL 8 also writes ``DEFAULT_GENERATED`` in EXTRA for expression *defaults*, which are
  not generated columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql

from migration.config import DbSettings
from migration.db import db_error, query
from migration.errors import FuretError
from migration.sql_literals import literal

TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext",
                        "enum", "set"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob",
                          "longblob"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
NUMERIC_TYPES = INTEGER_TYPES | {"decimal", "float", "double", "bit"}
TEMPORAL_TYPES = frozenset({"date", "time", "datetime", "timestamp", "year"})
UTF8_CHARSETS = frozenset({"utf8", "utf8mb3", "utf8mb4"})
_ON_UPDATE = re.compile(r"on update (current_timestamp(?:\(\d*\))?)", re.I)
_GENERATED = re.compile(r"\b(virtual|stored|persistent) generated\b|^(virtual|stored|persistent)$",
                        re.I)
_JSON_CHECK = re.compile(r"^json_valid\(`?([^`)]+)`?\)$", re.I)


@dataclass(frozen=True)
class Column:
    name: str
    column_type: str          # as the server shows it: int(10) unsigned, enum('a','b')
    data_type: str            # lower case: int, varchar, timestamp, json...
    nullable: bool
    default: str | None = None  # the default as SQL text; None: no default
    extra: str = ""           # EXTRA: auto_increment, on update current_timestamp(3)...
    charset: str | None = None
    collation: str | None = None
    precision: int | None = None  # fractional seconds of TIME/DATETIME/TIMESTAMP
    generation: str = ""      # the expression of a generated column, "" for the others

    @property
    def is_text(self) -> bool:
        return self.data_type in TEXT_TYPES

    @property
    def is_binary(self) -> bool:
        return self.data_type in BINARY_TYPES

    @property
    def is_generated(self) -> bool:
        return bool(self.generation) or bool(_GENERATED.search(self.extra))

    @property
    def generated_kind(self) -> str:
        """VIRTUAL or STORED (MariaDB's PERSISTENT)."""
        match = _GENERATED.search(self.extra)
        kind = (match.group(1) or match.group(2)).upper() if match else "VIRTUAL"
        return "STORED" if kind == "PERSISTENT" else kind

    @property
    def auto_increment(self) -> bool:
        return "auto_increment" in self.extra.lower()

    @property
    def on_update(self) -> str:
        """``current_timestamp(3)`` for ON UPDATE CURRENT_TIMESTAMP(3), else ``""``."""
        match = _ON_UPDATE.search(self.extra)
        return match.group(1) if match else ""

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    def describe(self) -> str:
        """``TIMESTAMP(3)``, ``DATETIME``, ``BIGINT``, ``INT UNSIGNED``: for comments."""
        name = self.data_type.upper()
        if self.data_type in ("datetime", "timestamp", "time") and self.precision:
            name += f"({self.precision})"
        return name + (" UNSIGNED" if self.unsigned else "")


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool
    kind: str = "BTREE"                       # BTREE, HASH, FULLTEXT, SPATIAL
    prefixes: tuple[int | None, ...] = ()     # SUB_PART per column (prefix indexes)


@dataclass(frozen=True)
class Table:
    database: str
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    engine: str = ""
    collation: str | None = None

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None

    @property
    def primary_key(self) -> tuple[str, ...]:
        for index in self.indexes:
            if index.name == "PRIMARY":
                return index.columns
        return ()

    def indexed_first(self, column: str) -> bool:
        """An index (the primary key included) starts with ``column``."""
        return any(index.columns[:1] == (column,) for index in self.indexes)


@dataclass(frozen=True)
class Database:
    name: str
    server_version: str
    tables: dict[str, Table]

    @property
    def mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()


def ident(name: str) -> str:
    """A MySQL identifier, backquoted."""
    return "`" + name.replace("`", "``") + "`"


def split_names(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``a,b , c`` (or a sequence of such) as names, in order, once each."""
    items = [text] if isinstance(text, str) else list(text or ())
    names: list[str] = []
    for item in items:
        for name in item.split(","):
            if name.strip() and name.strip() not in names:
                names.append(name.strip())
    return tuple(names)


def default_sql(raw: str | None, data_type: str, extra: str, mariadb: bool) -> str | None:
    """COLUMN_DEFAULT as SQL text (see the module docstring)."""
    if raw is None:
        return None
    if mariadb:
        return raw
    if data_type in ("datetime", "timestamp") and raw.upper().startswith("CURRENT_TIMESTAMP"):
        return raw
    if "default_generated" in extra.lower():
        return f"({raw})"
    if data_type == "bit" and raw.lower().startswith("b'"):
        return raw
    if data_type in NUMERIC_TYPES and re.fullmatch(r"-?\d+(\.\d+)?(e[-+]?\d+)?", raw, re.I):
        return raw
    return literal(raw)


def read_database(conn: pymysql.connections.Connection, settings: DbSettings, database: str,
                  tables: Sequence[str] = (), *, missing_ok: bool = False) -> Database:
    """The base tables of ``database`` (only ``tables`` when given, in that order). Raises a
    FuretError naming the server, database and table for an unknown database, a table that
    does not exist or a view; ``missing_ok`` reads an absent database as empty."""
    try:
        version = str(query(conn, "SELECT VERSION()")[0][0])
        exists = query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                       (database,))
        if not exists:
            if missing_ok:
                return Database(database, version, {})
            raise FuretError(f"{settings.where}: unknown database {database}")
        table_rows = query(conn, "SELECT table_name, table_type, engine, table_collation "
                                 "FROM information_schema.tables WHERE table_schema = %s "
                                 "ORDER BY table_name", (database,))
        column_rows = query(
            conn, "SELECT table_name, column_name, column_type, data_type, is_nullable, "
                  "column_default, extra, character_set_name, collation_name, "
                  "datetime_precision, generation_expression FROM information_schema.columns "
                  "WHERE table_schema = %s ORDER BY table_name, ordinal_position", (database,))
        index_rows = query(
            conn, "SELECT table_name, index_name, non_unique, column_name, sub_part, "
                  "index_type FROM information_schema.statistics WHERE table_schema = %s "
                  "ORDER BY table_name, index_name = 'PRIMARY' DESC, non_unique, index_name, "
                  "seq_in_index", (database,))
        mariadb = "mariadb" in version.lower()
        json_columns = _json_columns(conn, database) if mariadb else set()
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, database) from None
    kinds = {str(r[0]): str(r[1]) for r in table_rows}
    for name in tables:
        if name not in kinds:
            raise FuretError(f"{settings.where} database {database} table {name}: "
                             "table does not exist")
        if kinds[name] != "BASE TABLE":
            raise FuretError(f"{settings.where} database {database} table {name}: is a "
                             f"{kinds[name].lower()}, not a table")
    columns: dict[str, list[Column]] = {}
    for (table, name, ctype, dtype, nullable, default, extra, charset, collation, precision,
         generation) in column_rows:
        data_type, column_type = str(dtype).lower(), str(ctype)
        if (str(table), str(name)) in json_columns and data_type == "longtext":
            data_type, column_type, charset, collation = "json", "json", None, None
        columns.setdefault(str(table), []).append(Column(
            str(name), column_type, data_type, nullable == "YES",
            default_sql(None if default is None else str(default), data_type, str(extra or ""),
                        mariadb),
            str(extra or ""), charset and str(charset), collation and str(collation),
            None if precision is None else int(precision), str(generation or "")))
    indexes: dict[str, dict[str, tuple[list[str], bool, str, list[int | None]]]] = {}
    for table, index, non_unique, column, sub_part, index_type in index_rows:
        entry = indexes.setdefault(str(table), {}).setdefault(
            str(index), ([], not int(non_unique), str(index_type or "BTREE"), []))
        entry[0].append(str(column))
        entry[3].append(None if sub_part is None else int(sub_part))
    wanted = list(tables) or sorted(t for t, kind in kinds.items() if kind == "BASE TABLE")
    engines = {str(r[0]): (str(r[2] or ""), r[3] and str(r[3])) for r in table_rows}
    result = {}
    for name in wanted:
        result[name] = Table(
            database, name, tuple(columns.get(name, ())),
            tuple(Index(index, tuple(cols), unique, kind, tuple(prefixes))
                  for index, (cols, unique, kind, prefixes) in indexes.get(name, {}).items()),
            engines[name][0], engines[name][1])
    return Database(database, version, result)


def _json_columns(conn: pymysql.connections.Connection, database: str) -> set[tuple[str, str]]:
    """MariaDB's JSON columns: a column-level ``json_valid(col)`` CHECK."""
    rows = query(conn, "SELECT table_name, constraint_name, check_clause FROM "
                       "information_schema.check_constraints WHERE constraint_schema = %s",
                 (database,))
    found = set()
    for table, name, clause in rows:
        match = _JSON_CHECK.match(str(clause).strip())
        if match and match.group(1) == str(name):
            found.add((str(table), str(name)))
    return found
