"""Server-built literals: the source builds each row's SQL tuple text for a MariaDB target.

Profiling a worker showed Python CPU per row as the limit of a round: parsing every column
in PyMySQL, then escaping it again with :mod:`migration.sql_literals`. When every mapped
column can be expressed in SQL, the batch read instead asks the source for, per row::

    key columns, version[, cursor column], reason or literal of target 1[, literal 2 ...]

- ``literal``: the ``(v1,v2,...)`` text of the row for one target's upsert, built with
  ``QUOTE()`` (NULL becomes the bare word NULL), ``CONVERT(... USING utf8mb4)`` (the target
  connection's charset) and ``HEX()`` for raw bytes; returned as bytes, joined as they are;
- ``reason``: NULL when the row is clean (the column then holds the literal), else why it
  is not, in the order and with the categories the Python path uses (``bad encoding``,
  ``NULL not allowed``, ``bad date``) or ``recheck`` when SQL cannot tell exactly what
  Python would do (leading or trailing whitespace other than spaces for ``trim``,
  non-ASCII text for ``lower``, a 0xED byte that may be a UTF-16 surrogate for ``utf8``).

Rows with a reason are read again by key and go through the Python path
(:meth:`GaleraWriter.write`), which quarantines them with their original values and the
same reasons as before, or writes them when they are fine after all. The SQL checks only
decide which rows take the slow path, never what is written for them.

A table uses this path only if every column of every target has an exact SQL literal:
integers, DECIMAL, text and ENUM columns (no transform, ``utf8``, ``trim``, ``lower``),
binary columns (``utf8``, or raw bytes as ``X'..'``) and DATE. Anything else (floats,
DATETIME/TIMESTAMP text, ``ms_to_day``, the ``ref_time`` minute ids of ``--strategy id``, a
target table without a schema) keeps the whole table on the Python path; :func:`plan`
says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from migration.engine.galera_writer import DATE_TYPES
from migration.flows.mapping import TableFlow
from migration.flows.validate import INTEGER_TYPES, ColumnInfo, TableSchema

NUMBER_TYPES = INTEGER_TYPES | {"decimal"}
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


def _text(value: str) -> str:
    """A constant SQL string (table and column names inside reasons)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class Pushdown:
    """The server-side part of one source table's batch read."""

    table: str
    keys: tuple[str, ...]
    version: str
    reason: str                  # SQL: NULL for a clean row
    literals: tuple[str, ...]    # SQL: one row literal per target, as bytes

    def select_list(self, cursor_columns: tuple[str, ...]) -> tuple[str, list[int], int]:
        """(select list, indexes of the cursor columns, index of the first literal) of a
        batch read: ``key columns, version[, cursor column], reason or literal 1[, ...]``.

        The reason and the first literal share one column (every column costs PyMySQL CPU
        per row): ``!<reason>`` for a row to recheck in Python, the literal otherwise.
        """
        head = [f"`{c}`" for c in (*self.keys, *([self.version] if self.version else []))]
        cursor_index = list(range(len(self.keys)))
        if cursor_columns != self.keys:
            cursor_index = []
            for column in cursor_columns:
                cursor_index.append(len(head))
                head.append(f"`{column}`")
        first = self.literals[0] if self.reason == "NULL" else \
            f"COALESCE(CONVERT(CONCAT('!', {self.reason}) USING binary), {self.literals[0]})"
        return ", ".join([*head, first, *self.literals[1:]]), cursor_index, len(head)


class _NotExpressible(Exception):
    pass


def _column(table: str, source: ColumnInfo, target: ColumnInfo, transform: str,
            source_name: str, target_name: str) -> tuple[str, list[tuple[str, str]]]:
    """(literal SQL, [(condition, reason SQL)] in the Python path's order) of one column."""
    col = f"`{source_name}`"
    stype, ttype = source.data_type, target.data_type
    checks: list[tuple[str, str]] = []
    where = f"{table}: column {source_name}"
    if transform not in ("", "utf8", "trim", "lower"):
        raise _NotExpressible(f"{where}: transform {transform} runs in Python")
    if stype in NUMBER_TYPES:
        literal = f"IFNULL({col}, 'NULL')"
    elif stype in TEXT_TYPES:
        text = f"CONVERT({col} USING utf8mb4)"
        if transform == "trim":
            text = f"TRIM({text})"
            checks.append((f"CHAR_LENGTH({text}) > 0 AND (ORD(LEFT({text}, 1)) NOT BETWEEN 33 "
                           f"AND 126 OR ORD(RIGHT({text}, 1)) NOT BETWEEN 33 AND 126)",
                           _text(f"recheck: {where}: whitespace other than spaces")))
        elif transform == "lower":
            checks.append((f"LENGTH({text}) <> CHAR_LENGTH({text})",
                           _text(f"recheck: {where}: non-ASCII text")))
            text = f"LOWER({text})"
        literal = f"QUOTE({text})"
    elif stype in BINARY_TYPES:
        if transform == "utf8":
            text = f"CONVERT({col} USING utf8mb4)"
            checks.append((f"CONVERT({text} USING binary) <> {col}",
                           _text(f"bad encoding: {where}: invalid UTF-8")))
            # MariaDB's utf8mb4 takes UTF-16 surrogates (ED A0..BF ..), Python does not
            checks.append((f"LOCATE(X'ED', {col}) > 0",
                           _text(f"recheck: {where}: possible UTF-16 surrogate")))
            literal = f"QUOTE({text})"
        else:  # trim and lower leave bytes alone, as in Python
            literal = (f"IF({col} IS NULL, 'NULL', IF(LENGTH({col}) = 0, '''''', "
                       f"CONCAT('X''', HEX({col}), '''')))")
    elif stype == "date":
        literal = f"QUOTE({col})"
    else:
        raise _NotExpressible(f"{where}: {stype} has no exact server-built literal")
    if ttype in DATE_TYPES and stype != "date":
        raise _NotExpressible(f"{table}: column {target_name}: {stype} into {ttype}")
    if not target.nullable and source.nullable:
        checks.append((f"{col} IS NULL", _text(f"NULL not allowed: {table}: column "
                                                f"{target_name} cannot be NULL")))
    if ttype in DATE_TYPES:
        # what PyMySQL cannot parse into a date (zero dates, zero month or day) is a bad date
        valid = (f"YEAR({col}) >= 1 AND MONTH({col}) >= 1 AND DAYOFMONTH({col}) >= 1 AND "
                 f"DAYOFMONTH({col}) <= DAYOFMONTH(LAST_DAY({col}))")
        checks.append((f"{col} IS NOT NULL AND IFNULL({valid}, 0) = 0",
                       f"CONCAT({_text(f'bad date: {table}: column {target_name}: invalid date ')}"
                       f", '''', {col}, '''')"))
    return literal, checks


def plan(table_flow: TableFlow, source: TableSchema, targets: dict[str, TableSchema],
         strategy: str) -> tuple[Pushdown | None, str]:
    """The table's pushdown, or None and why its rows stay on the Python path."""
    checks: list[tuple[str, str]] = []
    literals: list[str] = []
    try:
        for tm in table_flow.targets:
            if strategy == "id" and tm.ref_time is not None:
                raise _NotExpressible(f"{tm.table}: ref_time ids are looked up in Python")
            schema = targets.get(tm.table)
            if schema is None:
                raise _NotExpressible(f"{tm.table}: no target schema to check rows against")
            parts = []
            for c in tm.columns:
                literal, column_checks = _column(tm.table, source.columns[c.source],
                                                 schema.columns[c.target], c.transform,
                                                 c.source, c.target)
                parts.append(literal)
                checks.extend(column_checks)
            literals.append(f"CONVERT(CONCAT('(', CONCAT_WS(',', {', '.join(parts)}), ')') "
                            "USING binary)")
    except _NotExpressible as exc:
        return None, str(exc)
    reason = ("CASE " + " ".join(f"WHEN {cond} THEN {why}" for cond, why in checks) + " END"
              if checks else "NULL")
    return Pushdown(table_flow.source, table_flow.keys, table_flow.version, reason,
                    tuple(literals)), "server-built literals"
