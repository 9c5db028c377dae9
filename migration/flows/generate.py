"""``furet flow init``: a complete, commented flow YAML from the source's information_schema.

Per base table of the source database (or of ``--tables``), in the flow format of
:mod:`migration.flows.mapping`:

- ``key:`` the primary key: a column name, or a list for a composite one
  (``key: [order_id, line_no]``). A table without a primary key is not emitted: it is
  listed in a comment at the end and reported (Galera replicates a row change by its
  primary key, and furet chunks, copies and compares rows by key).
- ``version:`` the first candidate by these rules, NOT NULL columns before nullable ones
  (a round never copies a row whose version is NULL), then the finer fractional precision
  within a rule (fewer rows share one version), then column order:

  1. a TIMESTAMP or DATETIME (any fsp) with ON UPDATE CURRENT_TIMESTAMP: the server stamps
     every write, whatever the application does (one named like a change column first);
  2. a TIMESTAMP or DATETIME named like a change column (:data:`CHANGE_NAME`: updated,
     modified, changed, last_update, mtime, French ``maj``, with prefixes like ``date_``
     and suffixes like ``_at``/``_ts``/``_on``; not ``updated_by``, not ``is_updated``);
  3. a BIGINT named so (epoch milliseconds), then 4. an INT named so (epoch seconds);

  else ``version: none`` with a comment pointing at ``furet legacy add-version``. An
  integer candidate whose indexed maximum is below 10^8 holds no epoch time and is passed
  over. The YAML comment on the line says why the column was chosen.
- ``version_unit:`` only where it differs from the engine's default for the type (BIGINT:
  ms, INT: s): when the column starts an index, its ``MAX()`` (one index lookup) says
  seconds (up to 10^10), milliseconds (up to 10^13) or microseconds.
- ``version_timezone:`` for DATETIME versions: UTC when the source server's own zone is
  UTC; otherwise written commented out, so that the engine refuses to run until someone
  says which zone the application writes in (a wrong zone shifts the windows).
- ``deletes: propagate`` on ``version: none`` tables (the migration's goal is a target equal
  to the source; ``keep`` is the other choice, in the comment).
- every column mapped to a target column of the same name (lower case for Cassandra,
  whose unquoted names are), except generated columns (commented: the target computes
  them, or has not got them).

Text encodings and the ``utf8`` transform: furet reads with a utf8mb4 connection, so for a
latin1 (MySQL's latin1 *is* cp1252), cp1251, ... CHAR/VARCHAR/TEXT/ENUM/SET column the
server converts every value to utf8mb4 and PyMySQL returns ``str``; the ``utf8`` transform
decodes *bytes* and passes ``str`` through, so it would do nothing there and is not
written (a comment on the column says so). It is written only where raw bytes
(BINARY/VARBINARY/BLOB) go to a text column of an existing target table (the demo's
``customer.city``): there it decodes them as UTF-8 and quarantines invalid bytes with their
reason instead of letting the target refuse the batch. A binary column whose target does
not exist yet stays binary (``furet target schema`` keeps the source's type), bytes copied
as they are. Not detected: UTF-8 bytes written into a latin1 column through a latin1
connection (double encoding); such a column reads back as mojibake and needs a decision
per column.
"""

from __future__ import annotations

import datetime
import json
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pymysql

from migration.config import DbSettings, FuretConfig
from migration.db import connection, db_error, query
from migration.engine.versions import INTEGER_VERSION_TYPES
from migration.enums import VersionUnit
from migration.errors import FuretError
from migration.flows.mapping import TARGET_KINDS
from migration.flows.source_schema import (
    TEXT_TYPES,
    UTF8_CHARSETS,
    Column,
    Database,
    Table,
    ident,
    read_database,
    split_names,
)

_STEM = (r"(?:last_?)?(?:updated?|modified|modify|modif(?:ication)?|changed?|upd)"
         r"|mtime|lastmod|maj")
_SUFFIX = r"(?:_?(?:at|on|ts|time|timestamp|date|datetime|dt|ms|millis|epoch|sec|secs|utc))*"
CHANGE_NAME = re.compile(rf"^(?:[a-z0-9]+_)*(?:{_STEM}){_SUFFIX}$")
NOT_CHANGE_PREFIX = re.compile(r"^(?:is|has|nb|num|count|cnt|n)_")
MIN_EPOCH = 10 ** 8  # 1973 in seconds: an integer version column holds more than this
UTC_NAMES = frozenset({"UTC", "ETC/UTC", "+00:00", "UNIVERSAL", "ZULU"})
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "none"})
_CQL_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")
WIDTH = 100
# Cassandra 5.0's reserved words (org/apache/cassandra/cql3/reserved_keywords.txt)
CQL_RESERVED = frozenset({
    "ADD", "ALLOW", "ALTER", "AND", "APPLY", "ASC", "AUTHORIZE", "BATCH", "BEGIN", "BY",
    "COLUMNFAMILY", "CREATE", "DELETE", "DESC", "DESCRIBE", "DROP", "ENTRIES", "EXECUTE",
    "FROM", "FULL", "GRANT", "IF", "IN", "INDEX", "INFINITY", "INSERT", "INTO", "IS",
    "KEYSPACE", "LIMIT", "MATERIALIZED", "MODIFY", "NAN", "NORECURSIVE", "NOT", "NULL", "OF",
    "ON", "OR", "ORDER", "PRIMARY", "RENAME", "REVOKE", "SCHEMA", "SELECT", "SET", "TABLE",
    "TO", "TOKEN", "TRUNCATE", "UNLOGGED", "UPDATE", "USE", "USING", "VIEW", "WHERE", "WITH"
})

Highest = Callable[[Column], int | None]


@dataclass(frozen=True)
class FlowTarget:
    kind: str   # mariadb or cassandra
    name: str   # the database or the keyspace


def parse_target(text: str) -> FlowTarget:
    """``mariadb:DB`` or ``cassandra:KS``."""
    kind, sep, name = text.partition(":")
    if not sep or kind.strip().lower() not in TARGET_KINDS or not name.strip():
        raise FuretError(f"--target {text!r}: expected mariadb:DATABASE or cassandra:KEYSPACE")
    return FlowTarget(kind.strip().lower(), name.strip())


@dataclass(frozen=True)
class VersionChoice:
    column: str = ""        # "": version: none
    reason: str = ""        # the YAML comment of the version line
    unit: str = ""          # version_unit: to write ("": the type's default)
    unit_reason: str = ""
    temporal: str = ""      # timestamp or datetime


@dataclass(frozen=True)
class Skipped:
    table: str
    reason: str


@dataclass(frozen=True)
class GeneratedFlow:
    name: str
    text: str
    tables: tuple[str, ...]
    skipped: tuple[Skipped, ...]


def named_like_change(name: str) -> bool:
    low = name.lower()
    return bool(CHANGE_NAME.match(low)) and not NOT_CHANGE_PREFIX.match(low)


def _tier(column: Column) -> int | None:
    if column.is_generated:
        return None
    named = named_like_change(column.name)
    if column.data_type in ("timestamp", "datetime"):
        if column.on_update:
            return 0
        return 1 if named else None
    if named and column.data_type == "bigint":
        return 2
    if named and column.data_type == "int":
        return 3
    return None


def _unit_of(highest: int) -> VersionUnit:
    if highest <= 10 ** 10:
        return VersionUnit.S
    return VersionUnit.MS if highest <= 10 ** 13 else VersionUnit.US


def choose_version(table: Table, highest: Highest = lambda column: None) -> VersionChoice:
    """The version column by the rules of the module docstring. ``highest(column)`` is the
    column's maximum (None: empty table); it is asked only for integer candidates that
    start an index."""
    # NOT NULL first, then the tier, a change-like name, the finer precision (fewer ties
    # per version), then the column order
    ranked = sorted(((c.nullable, tier, tier == 0 and not named_like_change(c.name),
                      -(c.precision or 0), i, c)
                     for i, c in enumerate(table.columns)
                     if (tier := _tier(c)) is not None), key=lambda t: t[:5])
    for _, tier, _, _, _, column in ranked:
        indexed = table.indexed_first(column.name)
        notes = []
        if column.nullable:
            notes.append("nullable: a row whose version is NULL is never copied by a round")
        if not indexed:
            notes.append(f"no index starts with {column.name}: every round scans the table")
        if tier == 0:
            reason = (f"{column.describe()} ON UPDATE {column.on_update.upper()}: the server "
                      "stamps every write")
        elif tier == 1:
            reason = (f"{column.describe()} named like a change column (no ON UPDATE: the "
                      "application must set it on every write)")
        else:
            default = INTEGER_VERSION_TYPES[column.data_type]
            top = highest(column) if indexed else None
            if top is not None and top < MIN_EPOCH:
                continue  # a counter or a flag, not an epoch time
            unit = _unit_of(top) if top is not None and column.data_type == "bigint" else default
            reason = (f"{column.data_type.upper()} named like a change column: "
                      f"epoch {default} ({column.data_type.upper()})")
            if not indexed:
                notes.insert(0, "unit assumed from the type (not sampled)")
            if unit != default:
                reason = f"{column.data_type.upper()} named like a change column"
                return VersionChoice(
                    column.name, "; ".join([reason, *notes]), str(unit),
                    f"MAX({column.name}) = {top}: epoch {unit}, not the "
                    f"{column.data_type.upper()} default ({default})")
        return VersionChoice(column.name, "; ".join([reason, *notes]),
                             temporal=column.data_type if tier < 2 else "")
    return VersionChoice(
        "", f"no change column (no TIMESTAMP/DATETIME ON UPDATE CURRENT_TIMESTAMP, none named "
            f"like updated/modified/changed/last_update/mtime): `furet legacy add-version "
            f"--table {table.name}` adds one; with none, each round compares chunk checksums "
            "and reads the whole table")


def cql_name(name: str) -> str:
    """A Cassandra name for a MySQL one, usable unquoted (the Cassandra writer does not
    quote): lower case (Cassandra folds unquoted names), characters other than a-z, 0-9 and
    _ replaced by _, a CQL reserved word (``token``, ``order``...) suffixed with _."""
    low = re.sub(r"[^a-z0-9_]", "_", name.lower())
    low = low if _CQL_PLAIN.match(low) else f"c_{low}"
    return f"{low}_" if low.upper() in CQL_RESERVED else low


def _y(text: str) -> str:
    """A YAML scalar: plain when safe, else double-quoted."""
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def commented(indent: int, line: str, comment: str = "") -> list[str]:
    """``line`` with ``comment`` after it, or above it (wrapped) when the whole would pass
    :data:`WIDTH` columns: the repository's yamllint allows 120, flows may live there."""
    pad = " " * indent
    if not comment:
        return [pad + line]
    if len(pad) + len(line) + len(comment) + 4 <= WIDTH:
        return [f"{pad}{line}  # {comment}"]
    wrapped = textwrap.wrap(comment, WIDTH - indent - 2, break_on_hyphens=False)
    return [f"{pad}# {part}" for part in wrapped] + [pad + line]


def _column_lines(column: Column, target_name: str, target: Table | None) -> list[str]:
    if target_name != column.name and target_name != column.name.lower():
        return commented(10, f"{_y(target_name)}: {_y(column.name)}",
                         f"renamed: {column.name} is no plain CQL name")
    existing = target.column(target_name) if target is not None else None
    source = _y(column.name)
    if column.is_binary and existing is not None and existing.data_type in TEXT_TYPES:
        return commented(10, f"{_y(target_name)}: {{from: {source}, transform: utf8}}",
                         f"{column.data_type} into {existing.column_type} "
                         f"{existing.charset or ''}: decoded as UTF-8, invalid bytes "
                         "quarantined")
    comment = ""
    if column.is_text and column.charset and column.charset not in UTF8_CHARSETS:
        comment = f"{column.charset} {column.data_type}: read as utf8mb4, no transform needed"
    elif column.is_binary:
        comment = f"{column.data_type}: bytes copied as they are"
    return commented(10, f"{_y(target_name)}: {source}", comment)


def is_utc(zone: str) -> bool:
    """A server time zone label (``UTC``, ``SYSTEM (UTC)``, ``+00:00``) that is UTC all year
    (not GMT, which is Europe/London's winter)."""
    name = zone.split(" ")[0].upper()
    system = zone[zone.find("(") + 1:zone.rfind(")")].upper() if "(" in zone else ""
    return name in UTC_NAMES or (name == "SYSTEM" and system in UTC_NAMES)


def _header(source: Database, where: str, server_zone: str) -> list[str]:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# Generated by `furet flow init` from {where} database {source.name}",
        f"# ({source.server_version}, time zone {server_zone}) on {when}.",
        "# Next: furet target schema --flow THIS_FILE --apply; furet flow check THIS_FILE.",
        "# key: the primary key. version: a TIMESTAMP/DATETIME with ON UPDATE",
        "# CURRENT_TIMESTAMP, else one named like updated/modified/changed/last_update/mtime,",
        "# else such a BIGINT (epoch ms) or INT (epoch s), else none (see each line's comment).",
        "# Text: furet reads through a utf8mb4 connection, so latin1/cp1252 text arrives",
        "# converted and needs no transform; `transform: utf8` is written only where raw bytes",
        "# (BINARY/VARBINARY/BLOB) go to a text column of an existing target table. A binary",
        "# column holding text: make its target column VARCHAR/TEXT utf8mb4 and add",
        "# `{from: col, transform: utf8}` (invalid UTF-8 is then quarantined).",
    ]


def render_flow(source: Database, where: str, target: FlowTarget, name: str,
                versions: dict[str, VersionChoice], server_zone: str,
                target_tables: dict[str, Table] | None = None) -> GeneratedFlow:
    """The flow's YAML text (pure: everything read is passed in)."""
    utc = is_utc(server_zone)
    lines = _header(source, where, server_zone)
    lines += [f"name: {_y(name)}",
              f"description: {_y(f'{source.name} -> {target.kind} {target.name} (flow init)')}",
              f"source: {{server: legacy, database: {_y(source.name)}}}"]
    if target.kind == "mariadb":
        lines.append(f"target: {{kind: mariadb, server: target, database: {_y(target.name)}}}")
    else:
        lines.append(f"target: {{kind: cassandra, keyspace: {_y(target.name)}}}")
    lines.append("tables:")
    emitted: list[str] = []
    skipped: list[Skipped] = []
    for table in source.tables.values():
        pk = table.primary_key
        if not pk:
            skipped.append(Skipped(table.name, "no primary key (Galera needs one)"))
            continue
        generated_pk = [c for c in pk if (col := table.column(c)) is None or col.is_generated]
        if generated_pk:
            skipped.append(Skipped(table.name, f"primary key column {generated_pk[0]} is a "
                                               "generated column"))
            continue
        emitted.append(table.name)
        rename: Callable[[str], str] = cql_name if target.kind == "cassandra" else str
        key = _y(pk[0]) if len(pk) == 1 else "[" + ", ".join(_y(c) for c in pk) + "]"
        choice = versions[table.name]
        lines += ([""] if emitted[1:] else []) + [f"  - source: {_y(table.name)}",
                                                   f"    key: {key}"]
        if choice.column:
            lines += commented(4, f"version: {_y(choice.column)}", choice.reason)
        else:
            lines += commented(4, "version: none", choice.reason)
            lines += commented(4, "deletes: propagate", "later rounds delete target rows "
                               "whose source row is gone (keep: leave them)")
        if choice.unit:
            lines += commented(4, f"version_unit: {choice.unit}", choice.unit_reason)
        if choice.temporal == "datetime" and utc:
            lines += commented(4, "version_timezone: UTC", "DATETIME has no zone: this says "
                               "which zone the application writes it in")
        elif choice.temporal == "datetime":
            lines += commented(4, "# version_timezone: UTC",
                               f"CHECK: DATETIME has no zone and the source server's is "
                               f"{server_zone}: say which zone the application writes it in "
                               "(furet refuses to run until then)")
        target_table = rename(table.name)
        lines.append("    targets:")
        comment = ""
        if target.kind == "cassandra":
            cols = [rename(c) for c in pk]
            comment = (f"partition key ({cols[0]})"
                       + (f", clustering ({', '.join(cols[1:])})" if cols[1:] else ""))
        lines += commented(6, f"- table: {_y(target_table)}", comment)
        lines.append("        columns:")
        existing = (target_tables or {}).get(target_table)
        for column in table.columns:
            if column.is_generated:
                lines.append(f"          # {column.name}: generated column "
                             f"({column.generated_kind}), not copied")
                continue
            lines += _column_lines(column, rename(column.name), existing)
    if skipped:
        lines += ["", "# Not in this flow: tables without a usable primary key. Galera "
                      "replicates a row change", "# by its primary key, and furet chunks, "
                      "copies and compares rows by key: add one,", "# then run flow init "
                      "again."]
        lines += [f"#   - {s.table}: {s.reason}" for s in skipped]
    if not emitted:
        raise FuretError(f"{where} database {source.name}: no table with a primary key to "
                         "migrate" + (f" ({', '.join(s.table for s in skipped)} have none)"
                                      if skipped else ""))
    return GeneratedFlow(name, "\n".join(lines) + "\n", tuple(emitted), tuple(skipped))


def _server_zone(conn: pymysql.connections.Connection) -> str:
    zone, system = query(conn, "SELECT @@global.time_zone, @@system_time_zone")[0]
    return f"{zone} ({system})" if str(zone).upper() == "SYSTEM" else str(zone)


def _highest(conn: pymysql.connections.Connection, settings: DbSettings,
             table: Table) -> Highest:
    def highest(column: Column) -> int | None:
        try:
            value = query(conn, f"SELECT MAX({ident(column.name)}) FROM "
                                f"{ident(table.database)}.{ident(table.name)}")[0][0]
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, table.database, table.name) from None
        return None if value is None else int(value)
    return highest


def flow_init(config: FuretConfig, source_db: str, tables: Sequence[str] | str | None,
              target: FlowTarget | str, name: str | None = None) -> GeneratedFlow:
    """Read the legacy server's ``source_db`` (and, for a MariaDB target, the target
    database's existing tables) and write the flow."""
    spec = parse_target(target) if isinstance(target, str) else target
    settings = config.legacy
    with connection(settings) as conn:
        source = read_database(conn, settings, source_db, split_names(tables))
        zone = _server_zone(conn)
        versions = {t.name: choose_version(t, _highest(conn, settings, t))
                    for t in source.tables.values() if t.primary_key}
    existing: dict[str, Table] = {}
    if spec.kind == "mariadb":
        with connection(config.target) as conn:
            existing = read_database(conn, config.target, spec.name, missing_ok=True).tables
    default = (source_db if spec.kind == "mariadb" and spec.name == source_db
               else f"{source_db}_to_{spec.name}")
    return render_flow(source, settings.where, spec, name or default, versions, zone, existing)
