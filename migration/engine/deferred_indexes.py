"""Round 1 into empty MariaDB tables builds their secondary indexes once, at the end.

Inserting millions of rows keeps every index of the target up to date row by row; a unique
key on a random value (a ``uid``) costs a random B-tree page per row, which a buffer pool
smaller than the table turns into disk reads, on every Galera node. Measured on the lab
(1 M quotes, 5.15 M rows, 128 MB buffer pools): round 1 took 224 s with the indexes in
place, 65 s without them, plus 22 s to build them afterwards.

So an invocation of round 1 of a flow that finds nothing deferred yet
(``rounds.defer_indexes``, on by default), for each target table that is empty, records the
table's secondary indexes in the ledger (``furet.deferred_indexes``,
:mod:`migration.engine.ledger`: their exact definitions from ``SHOW CREATE TABLE``), then
drops them. Kept: the primary key, the unique key that is the flow's key in that table (the
upsert's conflict key) and a unique key on a column prefix; and every index of a table that
has or is referenced by a foreign key, that several source tables write, or that furet's
account may not alter. When the round's chunks are all done, :func:`restore` adds them back
in one ``ALTER TABLE`` per table; if that fails on a duplicate, rows that share a value of a
unique key (as the column's collation compares them) are found, the one with the lowest key
stays, the others go to quarantine with the reason the upsert would have given ("unique key
K v is held by the row R, not merged") and leave the table, and the indexes are added again.

A round killed in between resumes with the indexes still deferred: the ledger knows them,
the next invocation adds them back when its chunks are done, and only those still missing.

Trade-off: ``ALTER TABLE`` on Galera runs in total order on every node at once, and every
commit on the cluster waits for it (17 s for the 3.7 M-row offer table on the lab). The
tables are empty when their indexes are dropped, and nobody else writes to a target during
round 1 (``defer_indexes: false`` for a cluster that already serves an application).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.canonical import key_text
from migration.db import error_code, query
from migration.errors import FuretError

NOT_ALLOWED = frozenset({1044, 1142, 1227})  # access denied: database, table, privilege
DUPLICATE_KEY = 1062

# an index line of SHOW CREATE TABLE: "  UNIQUE KEY `uq_x` (`uid`)," (not PRIMARY)
_INDEX_LINE = re.compile(r"^\s*((?:UNIQUE |FULLTEXT |SPATIAL )?KEY `((?:[^`]|``)+)` .*?),?$")


@dataclass(frozen=True)
class Index:
    table: str
    name: str
    unique: bool
    columns: tuple[str, ...]
    definition: str           # as SHOW CREATE TABLE writes it: UNIQUE KEY `n` (`c`)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def secondary_indexes(conn: pymysql.connections.Connection, database: str, table: str,
                      key: Sequence[str]) -> list[Index]:
    """The indexes round 1 may defer on ``table``: none for a table in a foreign key."""
    fk = query(conn, "SELECT 1 FROM information_schema.referential_constraints WHERE "
                     "(constraint_schema = %s AND table_name = %s) OR "
                     "(unique_constraint_schema = %s AND referenced_table_name = %s) LIMIT 1",
               (database, table, database, table))
    if fk:
        return []
    columns: dict[str, list[str]] = {}
    prefixed: set[str] = set()
    for name, column, sub_part in query(
            conn, "SELECT index_name, column_name, sub_part FROM information_schema.statistics "
                  "WHERE table_schema = %s AND table_name = %s ORDER BY index_name, "
                  "seq_in_index", (database, table)):
        columns.setdefault(str(name), []).append(str(column))
        if sub_part is not None:
            prefixed.add(str(name))
    create = str(query(conn, f"SHOW CREATE TABLE {_quote(database)}.{_quote(table)}")[0][1])
    found = []
    for line in create.splitlines():
        match = _INDEX_LINE.match(line)
        if not match:
            continue
        definition, name = match.group(1), match.group(2).replace("``", "`")
        unique = definition.startswith("UNIQUE ")
        cols = tuple(columns.get(name, ()))
        if unique and {c.lower() for c in cols} == {k.lower() for k in key}:
            continue  # the flow's key in this table: the upsert's conflict key
        if unique and name in prefixed:
            continue  # UNIQUE (c(8)): its duplicates are not whole values, left to the upsert
        found.append(Index(table, name, unique, cols, definition))
    return found


def pending(conn: pymysql.connections.Connection, flow: str, database: str
            ) -> dict[str, list[Index]]:
    """The indexes a round of ``flow`` deferred and has not added back, per table, in
    their order in the table (added back in that order, the table reads as it did)."""
    out: dict[str, list[Index]] = {}
    for table, name, unique, cols, definition in query(
            conn, "SELECT target_table, index_name, is_unique, columns_json, definition FROM "
                  "furet.deferred_indexes WHERE flow = %s AND target_database = %s "
                  "ORDER BY target_table, seq", (flow, database)):
        out.setdefault(str(table), []).append(
            Index(str(table), str(name), bool(unique), tuple(json.loads(cols)), str(definition)))
    return out


def defer(conn: pymysql.connections.Connection, flow: str, round_no: int, database: str,
          keys: Mapping[str, Sequence[str]]) -> dict[str, list[Index]]:
    """Drop the secondary indexes of the tables of ``keys`` (target table: the flow's key
    columns in it) that are empty, after recording them; return what is deferred now
    (the earlier invocation's, when the round resumes)."""
    deferred = pending(conn, flow, database)
    if deferred:
        return deferred
    for table, key in keys.items():
        if query(conn, f"SELECT 1 FROM {_quote(database)}.{_quote(table)} LIMIT 1"):
            continue
        indexes = secondary_indexes(conn, database, table, key)
        if not indexes:
            continue
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT IGNORE INTO furet.deferred_indexes (flow, round_no, target_database, "
                "target_table, index_name, seq, is_unique, columns_json, definition) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(flow, round_no, database, table, i.name, seq, int(i.unique),
                  json.dumps(i.columns), i.definition) for seq, i in enumerate(indexes)])
        conn.commit()  # recorded before they are dropped: a kill in between loses nothing
        try:
            query(conn, f"ALTER TABLE {_quote(database)}.{_quote(table)} " +
                  ", ".join(f"DROP INDEX IF EXISTS {_quote(i.name)}" for i in indexes))
        except pymysql.MySQLError as exc:
            if error_code(exc) not in NOT_ALLOWED:
                raise
            # an account without ALTER/INDEX on the table: round 1 keeps its indexes
            query(conn, "DELETE FROM furet.deferred_indexes WHERE flow = %s AND "
                        "target_database = %s AND target_table = %s", (flow, database, table))
            conn.commit()
            continue
        deferred[table] = indexes
    return deferred


@dataclass(frozen=True)
class Duplicate:
    key: tuple[Any, ...]      # the row's values of the flow's key, in the target
    reason: str


def duplicates(conn: pymysql.connections.Connection, database: str, index: Index,
               key: Sequence[str]) -> list[Duplicate]:
    """Rows that share a value of the unique ``index`` with a row of a lower key: all but
    the first of each value (NULLs never collide in a unique key)."""
    table = f"{_quote(database)}.{_quote(index.table)}"
    cols = ", ".join(_quote(c) for c in index.columns)
    keys = ", ".join(_quote(k) for k in key)
    not_null = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in index.columns)
    # grouped and ordered by the server, with the columns' collations (as the unique key
    # compares them: 'Bob' and 'bob ' are one value of a _ci column)
    window = f"PARTITION BY {cols} ORDER BY {keys}"
    picked = ", ".join([f"{_quote(c)} AS furet_c{i}" for i, c in enumerate(index.columns)] +
                       [f"{_quote(k)} AS furet_k{i}" for i, k in enumerate(key)] +
                       [f"FIRST_VALUE({_quote(k)}) OVER ({window}) AS furet_f{i}"
                        for i, k in enumerate(key)])
    rows = query(conn, f"SELECT * FROM (SELECT {picked}, ROW_NUMBER() OVER ({window}) AS "
                       f"furet_rn FROM {table} WHERE ({cols}) IN (SELECT {cols} FROM {table} "
                       f"WHERE {not_null} GROUP BY {cols} HAVING COUNT(*) > 1)) d "
                       "WHERE furet_rn > 1")
    width, size = len(index.columns), len(key)
    out = []
    for row in rows:
        value, row_key = tuple(row[:width]), tuple(row[width:width + size])
        first = tuple(row[width + size:width + 2 * size])
        out.append(Duplicate(row_key, f"duplicate key: {index.table}: unique key "
                                      f"{index.name} {key_text(value)} is held by the row "
                                      f"{key_text(first)}, not merged"))
    return sorted(out, key=lambda d: d.key)


def _added(conn: pymysql.connections.Connection, database: str, table: str,
           indexes: Sequence[Index]) -> bool:
    """``ALTER TABLE ... ADD`` the indexes (one sorted build each); False if rows share a
    value of a unique one (nothing is added then)."""
    try:
        # IF NOT EXISTS: an ALTER of a killed invocation may have finished on the server
        query(conn, f"ALTER TABLE {_quote(database)}.{_quote(table)} " +
              ", ".join("ADD " + i.definition.replace("KEY ", "KEY IF NOT EXISTS ", 1)
                        for i in indexes))
    except pymysql.MySQLError as exc:
        if error_code(exc) != DUPLICATE_KEY:
            raise
        return False
    return True


def restore(conn: pymysql.connections.Connection, flow: str, database: str,
            keys: Mapping[str, Sequence[str]],
            set_aside: Callable[[str, list[Duplicate]], None]) -> list[str]:
    """Add back the indexes ``flow`` deferred, one ``ALTER TABLE`` per table; if rows
    break a unique one, ``set_aside(table, duplicates)`` quarantines and deletes them (in
    its own transaction) and the table's indexes are added again. Returns the tables
    done."""
    done = []
    for table, indexes in pending(conn, flow, database).items():
        present = {str(n) for (n,) in query(
            conn, "SELECT DISTINCT index_name FROM information_schema.statistics WHERE "
                  "table_schema = %s AND table_name = %s", (database, table))}
        missing = [i for i in indexes if i.name not in present]
        if missing and not _added(conn, database, table, missing):
            # rows share a value of a unique key: all but the first of each are set aside
            # (looked for only now: a GROUP BY over millions of rows is not free)
            key = keys.get(table, ())
            for index in missing:
                found = duplicates(conn, database, index, key) if index.unique and key else []
                if found:
                    set_aside(table, found)
            if not _added(conn, database, table, missing):
                raise FuretError(
                    f"flow {flow}: table {database}.{table}: its deferred unique keys could "
                    "not be added back (rows share a value); remove those rows and run the "
                    "round again: the ledger keeps the indexes to add")
        query(conn, "DELETE FROM furet.deferred_indexes WHERE flow = %s AND "
                    "target_database = %s AND target_table = %s", (flow, database, table))
        conn.commit()
        done.append(table)
    return done
