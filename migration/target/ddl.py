"""``furet target schema``: a flow's target tables, made from the source's definitions.

Printed as a script (stdout, so it can be reviewed or kept), created with ``--apply``.
Idempotent: ``CREATE ... IF NOT EXISTS`` throughout, and an existing table is left as it is
(``furet flow check`` says whether it fits the flow), so a second ``--apply`` changes
nothing. A source table without a primary key is refused with the reason: Galera
replicates a row change by its primary key (and furet chunks and compares by key).

MariaDB/Galera target (``CREATE DATABASE IF NOT EXISTS`` in utf8mb4, then per target table
of the flow), each mapped column in the flow's order with the source's type:

- text (CHAR, VARCHAR, TEXT types, ENUM and SET with their values) in utf8mb4, with the
  utf8mb4 collation of the same behaviour (:func:`utf8mb4_collation`: ``_bin``/``_cs`` ->
  utf8mb4_bin, ``general_ci`` and latin1_swedish_ci -> utf8mb4_general_ci, ``unicode_ci``,
  ``unicode_520_ci`` kept, MySQL 8's ``0900`` -> MariaDB's ``uca1400``); TINYTEXT, TEXT and
  MEDIUMTEXT of a single-byte charset (latin1...) move one size up, as their capacity is in
  bytes and a latin1 character takes up to 3 in UTF-8; a VARCHAR longer than utf8mb4
  allows (16383) becomes MEDIUMTEXT;
- every other type as the source shows it (COLUMN_TYPE: DECIMAL(p,s), UNSIGNED, the fsp
  of TIME/DATETIME/TIMESTAMP, BIT, YEAR, BLOBs, JSON);
- NULL / NOT NULL, DEFAULT (but not a zero date, which the strict target refuses: noted),
  ON UPDATE CURRENT_TIMESTAMP and AUTO_INCREMENT, so that the application finds after the
  cutover the table it wrote to;
- a ``utf8`` transform from a binary column makes it text (VARBINARY(n) -> VARCHAR(n),
  BLOB -> TEXT, utf8mb4_bin); ``ms_to_day`` makes a DATE;
- generated columns (which ``flow init`` does not map) are left out, with a note giving
  their expression to recreate by hand (MySQL and MariaDB expressions differ); one that a
  flow maps anyway becomes a plain column of its type, its value copied.

Then ``ENGINE=InnoDB``, the source's primary key and its unique and secondary indexes
(prefix lengths, FULLTEXT, SPATIAL kept), translated to target column names; an index on a
column the flow does not copy is left out, with a note. If no index starts with the
version column, ``KEY furet_version (version)`` is added: rounds and verify select by it.
Not created: foreign keys (rounds copy tables independently, in chunks), CHECK
constraints other than JSON's, triggers.

Cassandra target (``CREATE KEYSPACE IF NOT EXISTS`` only when the keyspace is missing, with
``--replication``, default that of ``furet cassandra init``, since furet's role may lack
CREATE on all keyspaces; then ``CREATE TABLE IF NOT EXISTS``): the primary key is the
source's, the partition key its first column, clustering columns the others. Types:

==============================================  ==========================================
MySQL / MariaDB                                 CQL
==============================================  ==========================================
TINYINT, SMALLINT, INT, BIGINT                  tinyint, smallint, int, bigint
MEDIUMINT (signed or not)                       int
TINYINT/SMALLINT/INT UNSIGNED                   smallint/int/bigint (one size up)
BIGINT UNSIGNED                                 varint
DECIMAL, FLOAT, DOUBLE                          decimal, float, double
CHAR, VARCHAR, TEXT types, ENUM, SET, JSON      text
BINARY, VARBINARY, BLOB types, BIT, geometry    blob (text with a ``utf8`` transform)
DATE, TIME, DATETIME, TIMESTAMP                 date, time, timestamp (ms), timestamp (ms)
YEAR                                            smallint
UUID, INET4/INET6 (MariaDB)                     uuid, inet
any column with ``ms_to_day``                   date
==============================================  ==========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymysql

from migration.config import DbSettings, FuretConfig
from migration.db import connection, db_error, query
from migration.errors import FuretError
from migration.flows.generate import CQL_RESERVED
from migration.flows.mapping import Flow, TableFlow, TargetMap, load_flow
from migration.flows.source_schema import (
    BINARY_TYPES,
    UTF8_CHARSETS,
    Column,
    Table,
    ident,
    read_database,
)
from migration.hold import refuse_if_held
from migration.target.cassandra_schema import DEFAULT_REPLICATION

UTF8MB4_DEFAULT = "utf8mb4_unicode_ci"
WIDER_TEXT = {"tinytext": "text", "text": "mediumtext", "mediumtext": "longtext"}
TEXT_OF_BINARY = {"binary": "char", "varbinary": "varchar", "tinyblob": "tinytext",
                  "blob": "text", "mediumblob": "mediumtext", "longblob": "longtext"}
MAX_UTF8MB4_VARCHAR = 16383
VERSION_INDEX = "furet_version"
_ZERO_DATE = re.compile(r"^'?0000-00-00")
_MYSQL8_COLLATIONS = {"utf8mb4_0900_ai_ci": "utf8mb4_uca1400_ai_ci",
                      "utf8mb4_0900_as_ci": "utf8mb4_uca1400_as_ci",
                      "utf8mb4_0900_as_cs": "utf8mb4_uca1400_as_cs",
                      "utf8mb4_0900_bin": "utf8mb4_bin"}
CQL_TYPES = {
    "tinyint": "tinyint", "smallint": "smallint", "mediumint": "int", "int": "int",
    "bigint": "bigint", "decimal": "decimal", "float": "float", "double": "double",
    "char": "text", "varchar": "text", "tinytext": "text", "text": "text",
    "mediumtext": "text", "longtext": "text", "enum": "text", "set": "text", "json": "text",
    "binary": "blob", "varbinary": "blob", "tinyblob": "blob", "blob": "blob",
    "mediumblob": "blob", "longblob": "blob", "bit": "blob",
    "geometry": "blob", "point": "blob", "linestring": "blob", "polygon": "blob",
    "multipoint": "blob", "multilinestring": "blob", "multipolygon": "blob",
    "geometrycollection": "blob",
    "date": "date", "time": "time", "datetime": "timestamp", "timestamp": "timestamp",
    "year": "smallint", "uuid": "uuid", "inet4": "inet", "inet6": "inet",
}
CQL_UNSIGNED = {"tinyint": "smallint", "smallint": "int", "mediumint": "int", "int": "bigint",
                "bigint": "varint"}
_CQL_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")


def utf8mb4_collation(collation: str | None) -> str:
    """The utf8mb4 collation that sorts and compares like ``collation`` (see the module
    docstring); unknown case-insensitive ones get utf8mb4_unicode_ci."""
    if not collation:
        return UTF8MB4_DEFAULT
    low = collation.lower()
    if low.startswith("utf8mb4_"):
        return _MYSQL8_COLLATIONS.get(low, low)
    if low.endswith(("_bin", "_cs")):
        return "utf8mb4_bin"
    if low.startswith(("utf8_", "utf8mb3_")):
        return "utf8mb4_" + low.split("_", 1)[1]
    for kind in ("unicode_520_ci", "unicode_ci", "general_ci"):
        if low.endswith(kind):
            return f"utf8mb4_{kind}"
    return "utf8mb4_general_ci" if low == "latin1_swedish_ci" else UTF8MB4_DEFAULT


def _length(column_type: str) -> str:
    match = re.search(r"\(\d+\)", column_type)
    return match.group(0) if match else ""


def _text_type(column: Column, notes: list[str]) -> str:
    ctype = column.column_type
    single_byte = bool(column.charset) and column.charset not in UTF8_CHARSETS
    if single_byte and column.data_type in WIDER_TEXT:
        ctype = WIDER_TEXT[column.data_type]
        notes.append(f"{column.name}: {column.charset} {column.data_type} -> {ctype} (a "
                     f"{column.data_type}'s capacity is in bytes; utf8mb4 takes up to 3 for "
                     f"a {column.charset} character)")
    elif column.data_type == "varchar" and int(_length(ctype)[1:-1] or 0) > MAX_UTF8MB4_VARCHAR:
        ctype = "mediumtext"
        notes.append(f"{column.name}: {column.column_type} -> mediumtext (utf8mb4 VARCHAR "
                     f"holds at most {MAX_UTF8MB4_VARCHAR} characters)")
    return f"{ctype} CHARACTER SET utf8mb4 COLLATE {utf8mb4_collation(column.collation)}"


def mariadb_column(column: Column, target: str, transform: str = "",
                   notes: list[str] | None = None) -> str:
    """One column definition of a target table: `` `name` type NULL DEFAULT ...``."""
    notes = [] if notes is None else notes
    retyped = True
    if transform == "ms_to_day":
        ctype = "date"
    elif transform == "utf8" and column.is_binary:
        ctype = (f"{TEXT_OF_BINARY[column.data_type]}{_length(column.column_type)} "
                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    else:
        retyped = False
        ctype = _text_type(column, notes) if column.is_text else column.column_type
    parts = [ident(target), ctype, "NULL" if column.nullable else "NOT NULL"]
    default = column.default
    if default is not None and not retyped:
        if _ZERO_DATE.match(default):
            notes.append(f"{column.name}: DEFAULT {default} left out (the strict target "
                         "refuses zero dates)")
        elif default.upper() != "NULL":
            parts.append(f"DEFAULT {default}")
        elif column.nullable:
            parts.append("DEFAULT NULL")
    if column.on_update and not retyped:
        parts.append(f"ON UPDATE {column.on_update}")
    if column.auto_increment and not retyped:
        parts.append("AUTO_INCREMENT")
    return " ".join(parts)


@dataclass(frozen=True)
class TableDDL:
    table: str                 # the target table
    source: str                # its source table
    statement: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemaPlan:
    flow: str
    kind: str                  # mariadb or cassandra
    where: str                 # the target server or cluster
    database: str              # database or keyspace
    create_database: str
    tables: tuple[TableDDL, ...]
    source: str = ""           # the source server and database, for the script's header

    def script(self) -> str:
        """The statements as one script, notes as comments."""
        noun = "database" if self.kind == "mariadb" else "keyspace"
        lines = [f"-- furet target schema: flow {self.flow}, {self.source} -> {self.where} "
                 f"{noun} {self.database}"]
        if self.kind == "cassandra":
            lines.append("-- (the keyspace is created only if it does not exist yet)")
        lines += [self.create_database + ";"]
        for table in self.tables:
            lines += ["", f"-- {table.table} (source table {table.source})"]
            lines += [f"-- {note}" for note in table.notes]
            lines.append(table.statement + ";")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Applied:
    table: str
    created: bool              # False: it existed, left as it was


@dataclass(frozen=True)
class SchemaResult:
    plan: SchemaPlan
    applied: tuple[Applied, ...] = ()
    database_created: bool = False


def _source_error(flow: Flow, settings: DbSettings, table: str, what: str) -> FuretError:
    return FuretError(f"flow {flow.name}: {settings.where} database {flow.source_database} "
                      f"table {table}: {what}")


def _version_column(tf: TableFlow) -> str:
    return "" if tf.version in ("", "none") else tf.version


def _target_primary_key(flow: Flow, settings: DbSettings, source: Table, tm: TargetMap,
                        store: str) -> tuple[str, ...]:
    if not source.primary_key:
        reason = ("Galera needs one (it replicates row changes by primary key)"
                  if store == "mariadb" else "the Cassandra table's primary key is made from it")
        raise _source_error(flow, settings, source.name, f"no primary key: {reason}; add one "
                            "first")
    names = []
    for column in source.primary_key:
        target = tm.target_of(column)
        if target is None:
            raise _source_error(flow, settings, source.name,
                                f"primary key column {column} is not mapped to target table "
                                f"{tm.table} (its primary key is the source's)")
        names.append(target)
    return tuple(names)


def _columns(flow: Flow, settings: DbSettings, source: Table,
             tm: TargetMap) -> list[tuple[str, Column, str]]:
    """(target name, source column, transform) of each mapped column."""
    mapped = []
    for col in tm.columns:
        column = source.column(col.source)
        if column is None:
            raise _source_error(flow, settings, source.name,
                                f"unknown column {col.source!r} in the mapping")
        mapped.append((col.target, column, col.transform))
    return mapped


def mariadb_table(flow: Flow, settings: DbSettings, tf: TableFlow, tm: TargetMap,
                  source: Table) -> TableDDL:
    """CREATE TABLE IF NOT EXISTS of one target table of a MariaDB flow."""
    notes: list[str] = []
    pk = _target_primary_key(flow, settings, source, tm, "mariadb")
    mapped = _columns(flow, settings, source, tm)
    lines = [mariadb_column(column, target, transform, notes)
             for target, column, transform in mapped]
    copied = {column.name for _, column, _ in mapped}
    notes += [f"{c.name}: generated column ({c.generated_kind} AS {c.generation or '?'}) not "
              "created: add it by hand if the application reads it"
              for c in source.columns if c.is_generated and c.name not in copied]
    if tm.ref_time and tm.target_of(tm.ref_time.column) is None:
        lines.append(f"{ident(tm.ref_time.column)} INT UNSIGNED NULL")
        notes.append(f"{tm.ref_time.column}: ref_time of the old ETL (--strategy id only)")
    lines.append(f"PRIMARY KEY ({', '.join(ident(c) for c in pk)})")
    firsts = {pk[0]}
    for index in source.indexes:
        if index.name == "PRIMARY":
            continue
        targets = [tm.target_of(c) for c in index.columns]
        missing = [c for c, t in zip(index.columns, targets, strict=True) if t is None]
        if missing:
            notes.append(f"index {index.name} left out: column {missing[0]} is not copied")
            continue
        parts = ", ".join(ident(str(t)) + (f"({p})" if p else "")
                          for t, p in zip(targets, index.prefixes, strict=True))
        kind = index.kind.upper()
        word = ("FULLTEXT KEY" if kind == "FULLTEXT" else "SPATIAL KEY" if kind == "SPATIAL"
                else "UNIQUE KEY" if index.unique else "KEY")
        lines.append(f"{word} {ident(index.name)} ({parts})")
        firsts.add(str(targets[0]))
    version = _version_column(tf)
    version_target = tm.target_of(version) if version else None
    if version_target and version_target not in firsts:
        lines.append(f"KEY {ident(VERSION_INDEX)} ({ident(version_target)})")
        notes.append(f"{VERSION_INDEX}: added, rounds and verify select by version")
    body = ",\n  ".join(lines)
    statement = (f"CREATE TABLE IF NOT EXISTS {ident(flow.target_database)}.{ident(tm.table)} "
                 f"(\n  {body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                 f"COLLATE={utf8mb4_collation(source.collation)}")
    return TableDDL(tm.table, source.name, statement, tuple(notes))


def cql_ident(name: str) -> str:
    """A CQL identifier, double-quoted unless plain (lower case, not a reserved word)."""
    if _CQL_PLAIN.match(name) and name.upper() not in CQL_RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def cql_type(column: Column, transform: str = "") -> str:
    if transform == "ms_to_day":
        return "date"
    if transform == "utf8" and column.data_type in BINARY_TYPES:
        return "text"
    if column.unsigned and column.data_type in CQL_UNSIGNED:
        return CQL_UNSIGNED[column.data_type]
    if column.data_type not in CQL_TYPES:
        raise FuretError(f"column {column.name}: no CQL type for {column.column_type}")
    return CQL_TYPES[column.data_type]


def cassandra_table(flow: Flow, settings: DbSettings, tm: TargetMap, source: Table) -> TableDDL:
    """CREATE TABLE IF NOT EXISTS of one target table of a Cassandra flow."""
    pk = _target_primary_key(flow, settings, source, tm, "cassandra")
    lines = []
    for target, column, transform in _columns(flow, settings, source, tm):
        try:
            lines.append(f"{cql_ident(target)} {cql_type(column, transform)}")
        except FuretError as exc:
            raise _source_error(flow, settings, source.name, str(exc)) from None
    clustering = "".join(f", {cql_ident(c)}" for c in pk[1:])
    lines.append(f"PRIMARY KEY (({cql_ident(pk[0])}){clustering})")
    body = ",\n  ".join(lines)
    statement = (f"CREATE TABLE IF NOT EXISTS {cql_ident(flow.target_database)}."
                 f"{cql_ident(tm.table)} (\n  {body}\n)")
    notes = (f"partition key {pk[0]}" + (f", clustering {', '.join(pk[1:])}" if pk[1:] else ""),)
    return TableDDL(tm.table, source.name, statement, notes)


def plan_schema(flow: Flow, settings: DbSettings, sources: dict[str, Table], where: str,
                replication: str = DEFAULT_REPLICATION) -> SchemaPlan:
    """The statements for ``flow``'s target tables (pure: ``sources`` already read)."""
    tables: list[TableDDL] = []
    seen: set[str] = set()
    for tf in flow.tables:
        for tm in tf.targets:
            if tm.table in seen:
                continue
            seen.add(tm.table)
            if flow.target_kind == "mariadb":
                tables.append(mariadb_table(flow, settings, tf, tm, sources[tf.source]))
            else:
                tables.append(cassandra_table(flow, settings, tm, sources[tf.source]))
    if flow.target_kind == "mariadb":
        create = (f"CREATE DATABASE IF NOT EXISTS {ident(flow.target_database)} DEFAULT "
                  f"CHARACTER SET utf8mb4 COLLATE {UTF8MB4_DEFAULT}")
    else:
        create = (f"CREATE KEYSPACE IF NOT EXISTS {cql_ident(flow.target_database)} WITH "
                  f"replication = {replication}")
    return SchemaPlan(flow.name, flow.target_kind, where, flow.target_database, create,
                      tuple(tables),
                      f"{settings.where} database {flow.source_database}")


def _read_sources(flow: Flow, settings: DbSettings) -> dict[str, Table]:
    names: list[str] = []
    for tf in flow.tables:
        if tf.source not in names:
            names.append(tf.source)
    with connection(settings) as conn:
        return read_database(conn, settings, flow.source_database, names).tables


def _apply_mariadb(plan: SchemaPlan, settings: DbSettings) -> SchemaResult:
    applied = []
    with connection(settings) as conn:
        try:
            had = query(conn, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                        (plan.database,))
            query(conn, plan.create_database)
            existing = {str(r[0]) for r in query(
                conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (plan.database,))}
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, plan.database) from None
        for table in plan.tables:
            if table.table in existing:
                applied.append(Applied(table.table, False))
                continue
            try:
                query(conn, table.statement)
            except pymysql.MySQLError as exc:
                raise db_error(exc, settings, plan.database, table.table) from None
            applied.append(Applied(table.table, True))
    return SchemaResult(plan, tuple(applied), not had)


def _apply_cassandra(plan: SchemaPlan, config: FuretConfig) -> SchemaResult:
    from migration.cassandra_session import cassandra_session

    settings = config.cassandra
    cluster, session = cassandra_session(settings)
    applied = []
    try:
        keyspace = cluster.metadata.keyspaces.get(plan.database)
        statements = [] if keyspace is not None else [("", plan.create_database)]
        existing = set(keyspace.tables) if keyspace is not None else set()
        statements += [(t.table, t.statement) for t in plan.tables if t.table not in existing]
        for table, statement in statements:
            try:
                session.execute(statement, timeout=60)
            except Exception as exc:  # InvalidRequest, Unauthorized, timeouts
                what = f" table {table}" if table else ""
                raise FuretError(f"{settings.where} keyspace {plan.database}{what}: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
        applied = [Applied(t.table, t.table not in existing) for t in plan.tables]
    finally:
        cluster.shutdown()
    return SchemaResult(plan, tuple(applied), keyspace is None)


def _refuse_if_held(ledger_settings: DbSettings) -> None:
    """No schema change while the platform is on hold (migration/hold.py: a Galera upgrade
    with the nodes on mixed versions)."""
    try:
        with connection(ledger_settings) as conn:
            refuse_if_held(conn, ledger_settings.where)
    except pymysql.MySQLError as exc:
        raise db_error(exc, ledger_settings, "furet", "locks") from None


def target_schema(config: FuretConfig, flow_ref: str, apply: bool = False,
                  replication: str | None = None) -> SchemaResult:
    """The target tables of flow ``flow_ref`` (a name or a path); created with ``apply``."""
    flow = load_flow(flow_ref, flows_dir=config.flows.dir)
    source_settings = config.db(flow.source_server)
    sources = _read_sources(flow, source_settings)
    target = config.db(flow.target_server) if flow.target_kind == "mariadb" else None
    where = target.where if target is not None else config.cassandra.where
    plan = plan_schema(flow, source_settings, sources, where, replication or DEFAULT_REPLICATION)
    if not apply:
        return SchemaResult(plan)
    _refuse_if_held(config.target)
    if target is not None:
        return _apply_mariadb(plan, target)
    return _apply_cassandra(plan, config)

