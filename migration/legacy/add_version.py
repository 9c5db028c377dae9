"""`furet legacy add-version`: introduce a version column on a legacy table, online.

It adds ``<column> TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE
CURRENT_TIMESTAMP(3)`` (the talk's conclusion 1: a table the web app writes without a
change column gets one before the migration), then backfills it in small batches.

The ALTER: the server is asked, never guessed. ``ALGORITHM=INSTANT`` is tried, then
``ALGORITHM=INPLACE, LOCK=NONE``; an algorithm or lock the server cannot do fails at once
(errors 1845/1846, or 1800/1801 on a server that does not know INSTANT, like MySQL 5.x)
without touching the table, and its answer ("Reason: ... Try LOCK=SHARED") names the
locking ALTER that would work. That one runs only with ``--allow-lock``; without it
furet refuses and prints that statement and the lock it takes. The ALTER waits at most
:data:`MDL_WAIT_S` for the table's metadata lock and retries: a pending ALTER queues every
new statement on the table behind it, so a long transaction must cost the web app a short
wait, never an outage. ``--dry-run`` asks the same questions of an empty copy of the
table (``CREATE TABLE ... LIKE`` in the same database, dropped at once: it needs CREATE,
ALTER and DROP there) and changes nothing else.

What the rows hold. With the column's default, every row that exists at the ALTER reads
one value, T0, the ALTER's time (INSTANT stores it in the table's metadata; a rebuild
writes it). That is already a correct version: every later insert or update gets its own
statement time, at or after T0, so a row never goes back and round 1 (a key-ordered copy
of everything) followed by windows on the column misses nothing. What one value does not
give is spread: millions of rows tied at one millisecond cannot be split by time (a
window's sub-ranges, ``verify --since/--until``), only walked by the ``(version, key)``
cursor, and T0 lives in metadata rather than in the rows. So the backfill gives each
existing row its own, later, value, monotonic in key order:

- keyset batches on the primary key (any number of columns): read the next
  ``--batch-rows`` keys (a plain read, no lock), then one autocommit
  ``UPDATE ... SET column = NOW(3) WHERE key in (cursor, last key] AND column <= T``,
  T being the server's time right after the ALTER: a row the web app changed since
  already has a real version and is left alone; T0 <= T < each batch's NOW(3);
- READ COMMITTED (no gap locks: inserts never wait for a batch), except on a server
  logging statements (``binlog_format=STATEMENT`` refuses it), which keeps REPEATABLE READ;
- ``innodb_lock_wait_timeout`` of :data:`ROW_WAIT_S` for the batch: it gives up rather
  than hold its row locks while waiting on the web app, and is retried (tenacity) on lock
  wait timeouts and deadlocks. Rows are locked in key order, so a web-app statement, or a
  transaction that locks rows in key order, cannot deadlock with a batch;
- other ``ON UPDATE CURRENT_TIMESTAMP`` columns of the table are set to themselves, so
  the backfill does not move the web app's own change times; UPDATE triggers do fire
  (the plan lists them);
- ``--pause-ms`` between batches leaves room for the web app and for replicas.

Run it before round 1: rows the backfill stamps after a round's window are copied again
by the next round (harmless, but work). An interrupted backfill leaves the rest of the
rows at T0, which is still a correct version. A second run finds the column and changes
nothing (idempotent); a table without a primary key is refused (no key to walk, and
Galera needs one anyway). Any new column breaks a web app that inserts without a column
list (``INSERT INTO t VALUES (...)``): check that first.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import pymysql
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from migration.config import DbSettings
from migration.db import connection, db_error, error_code, query
from migration.engine import keys
from migration.errors import FuretError
from migration.progress import Reporter, Silent

DEFAULT_DATABASE = "lf_runtime"
DEFAULT_COLUMN = "updated_ts"
DEFAULT_BATCH_ROWS = 1000
COLUMN_DEFINITION = ("TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
                     "ON UPDATE CURRENT_TIMESTAMP(3)")
MDL_WAIT_S = 2         # lock_wait_timeout of furet's session: the longest the web app waits
ROW_WAIT_S = 1         # innodb_lock_wait_timeout of a backfill batch
ALTER_ATTEMPTS = 6     # metadata lock waits before giving up (nothing changed then)
BATCH_ATTEMPTS = 10    # lock wait timeouts / deadlocks of one batch before giving up
NOT_SUPPORTED = frozenset({
    1845,  # ER_ALTER_OPERATION_NOT_SUPPORTED: "... is not supported ... Try ..."
    1846,  # ER_ALTER_OPERATION_NOT_SUPPORTED_REASON: "... Reason: ... Try ..."
    1800,  # ER_UNKNOWN_ALTER_ALGORITHM (no INSTANT before MariaDB 10.3 / MySQL 8.0)
    1801,  # ER_UNKNOWN_ALTER_LOCK
})
LOCK_ERRORS = frozenset({1205, 1213})  # lock wait timeout (rows or metadata), deadlock
PROBE_PREFIX = "_furet_probe_"
EXACT_COUNT_BELOW = 1_000_000  # rows (information_schema's estimate) counted exactly below

_TRY = re.compile(r"\bTry (ALGORITHM|LOCK)\s*=\s*(\w+)", re.IGNORECASE)
_REASON = re.compile(r"\bReason:\s*(.+?)\.?\s*(?:\bTry\b|$)", re.IGNORECASE)


class Outcome(StrEnum):
    ADDED = "added"      # the column was added and the rows backfilled
    EXISTS = "exists"    # the table already has a column of that name: nothing done
    PLANNED = "planned"  # --dry-run: the plan, nothing changed


@dataclass(frozen=True)
class Clause:
    """The ALTER's ``ALGORITHM=... [, LOCK=...]``."""

    algorithm: str
    lock: str | None = None

    @property
    def sql(self) -> str:
        return f"ALGORITHM={self.algorithm}" + (f", LOCK={self.lock}" if self.lock else "")

    @property
    def online(self) -> bool:
        return self.algorithm == "INSTANT" or self.lock == "NONE"

    @property
    def effect(self) -> str:
        """What the web app sees while it runs."""
        if self.algorithm == "INSTANT":
            return "metadata only: reads and writes go on (a brief metadata lock)"
        if self.lock == "NONE":
            return ("the table is rebuilt while reads and writes go on (brief metadata "
                    "locks at start and end)")
        if self.lock == "EXCLUSIVE":
            return "reads and writes wait for the whole ALTER"
        return "writes wait for the whole ALTER, reads go on"


INSTANT = Clause("INSTANT")
ONLINE = Clause("INPLACE", "NONE")


@dataclass(frozen=True)
class Refusal:
    """The server's answer to an ALTER clause it cannot do."""

    clause: Clause
    code: int
    message: str

    @property
    def reason(self) -> str:
        """The server's reason, else what it says is not supported."""
        match = _REASON.search(self.message)
        if match:
            return match.group(1)
        return "not supported for this operation" if self.code == 1845 \
            else self.message.rstrip(".")

    @property
    def suggestion(self) -> tuple[str, str] | None:
        """``("LOCK", "SHARED")`` from ``... Try LOCK=SHARED``; None when it names none."""
        match = _TRY.search(self.message)
        return (match.group(1).upper(), match.group(2).upper()) if match else None

    def short(self) -> str:
        """``ALGORITHM=INSTANT (not supported for this operation; try ALGORITHM=COPY)``."""
        hint = f"; try {'='.join(self.suggestion)}" if self.suggestion else ""
        return f"{self.clause.sql} ({self.reason}{hint})"


def refusal(clause: Clause, exc: BaseException) -> Refusal | None:
    """The refusal ``exc`` is when it says the server cannot do ``clause``, else None."""
    code = error_code(exc)
    if code not in NOT_SUPPORTED:
        return None
    return Refusal(clause, code, str(exc.args[1]) if len(exc.args) > 1 else str(exc))


def locking_clause(last: Refusal) -> Clause:
    """The clause the server's last refusal points at: ``Try LOCK=X`` keeps the algorithm
    with lock X, ``Try ALGORITHM=COPY`` is a copy (which takes at least LOCK=SHARED);
    without a suggestion, the copy."""
    suggestion = last.suggestion
    if suggestion is not None and suggestion[0] == "LOCK" and suggestion[1] != "NONE":
        algorithm = last.clause.algorithm if last.clause.algorithm != "INSTANT" else "INPLACE"
        return Clause(algorithm, suggestion[1])
    if suggestion is not None and suggestion == ("ALGORITHM", "INPLACE"):
        return Clause("INPLACE", "SHARED")
    return Clause("COPY", "SHARED")


quote = keys.quote


def alter_sql(database: str, table: str, column: str, clause: Clause) -> str:
    return (f"ALTER TABLE {quote(database)}.{quote(table)} ADD COLUMN {quote(column)} "
            f"{COLUMN_DEFINITION}, {clause.sql}")


def _count(number: int, word: str) -> str:
    return f"{number:,} {word}{'' if number == 1 else 'es' if word.endswith('h') else 's'}"


def batches_estimate(rows: int, batch_rows: int) -> int:
    return math.ceil(max(rows, 0) / max(batch_rows, 1))


def backfill_sql(database: str, table: str, column: str, key: Sequence[str],
                 pinned: Sequence[str], cursor: Sequence[Any] | None,
                 last: Sequence[Any]) -> tuple[str, list[Any]]:
    """One batch: rows with key in ``(cursor, last]`` still at or before the threshold (the
    last ``%s``) get ``NOW(3)``; ``pinned`` columns are set to themselves (their own ON
    UPDATE does not fire)."""
    sets = ", ".join([f"{quote(column)} = NOW(3)", *(f"{quote(c)} = {quote(c)}"
                                                      for c in pinned)])
    where, args = keys.up_to(key, last)
    if cursor is not None:
        lower, lower_args = keys.after(key, cursor)
        where, args = f"({lower}) AND ({where})", [*lower_args, *args]
    return (f"UPDATE {quote(database)}.{quote(table)} SET {sets} "
            f"WHERE ({where}) AND {quote(column)} <= %s", args)


def next_keys_sql(database: str, table: str, key: Sequence[str],
                  cursor: Sequence[Any] | None, limit: int) -> tuple[str, list[Any]]:
    """The next ``limit`` keys after ``cursor`` (None: from the first), in key order."""
    sql = f"SELECT {keys.select_list(key)} FROM {quote(database)}.{quote(table)}"
    args: list[Any] = []
    if cursor is not None:
        where, args = keys.after(key, cursor)
        sql += f" WHERE {where}"
    return f"{sql} ORDER BY {keys.order_by(key)} LIMIT {int(limit)}", args


@dataclass(frozen=True)
class AlterChoice:
    """The ALTER furet runs (or would run) and what the server refused before it."""

    statement: str
    clause: Clause
    refusals: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What add-version does to one table; :meth:`lines` is the ``--dry-run`` output."""

    where: str                  # "legacy 127.0.0.11:3306 database d table t"
    database: str
    table: str
    column: str
    engine: str
    key: tuple[str, ...]
    alter: AlterChoice
    rows_estimate: int
    batch_rows: int
    isolation: str
    pinned: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    probed_on_copy: bool = False

    @property
    def batches(self) -> int:
        return batches_estimate(self.rows_estimate, self.batch_rows)

    def lines(self) -> list[str]:
        clause = self.alter.clause
        source = "the server's answer on an empty copy of the table" if self.probed_on_copy \
            else "the server's answer"
        out = [f"{self.where}: add-version plan",
               f"  1. {self.alter.statement}",
               f"     {clause.sql} ({source}): {clause.effect}"]
        out += [f"     refused by the server: {r.short()}" for r in self.alter.refusals]
        if not clause.online:
            out.append(f"     NOT ONLINE: it locks {self.database}.{self.table} "
                       f"(LOCK={clause.lock}); furet runs it only with --allow-lock")
        key = ", ".join(quote(k) for k in self.key)
        batches = _count(self.batches, "batch")
        out.append(f"  2. backfill: ~{self.rows_estimate:,} rows in ~{batches} of "
                   f"{self.batch_rows:,} rows by primary key ({key})")
        out.append(f"     one autocommit UPDATE per batch at {self.isolation}: "
                   f"{quote(self.column)} = NOW(3) where it still holds the ALTER's time")
        if self.pinned:
            out.append(f"     leaves {', '.join(quote(c) for c in self.pinned)} unchanged "
                       "(set to itself: its own ON UPDATE CURRENT_TIMESTAMP does not fire)")
        if self.triggers:
            out.append(f"     UPDATE triggers fire for every backfilled row: "
                       f"{', '.join(self.triggers)}")
        return out


@dataclass(frozen=True)
class AddVersionResult:
    outcome: Outcome
    where: str
    column: str
    plan: Plan | None = None
    existing_type: str = ""        # EXISTS: the column's type as the server shows it
    alter_seconds: float = 0.0
    threshold: datetime | None = None  # the server's time (UTC) right after the ALTER
    rows_walked: int = 0
    rows_backfilled: int = 0
    batches: int = 0
    alter_retries: int = 0         # ALTERs redone after a metadata lock wait
    batch_retries: int = 0         # batches redone after a lock wait timeout or deadlock
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """What the CLI prints."""
        if self.outcome is Outcome.EXISTS:
            return [f"{self.where}: already has column {self.column} ({self.existing_type}); "
                    "nothing changed"]
        assert self.plan is not None
        if self.outcome is Outcome.PLANNED:
            return [*self.plan.lines(), f"{self.where}: dry run, nothing changed"]
        alter_waits = (f" (retried after {_count(self.alter_retries, 'metadata lock wait')})"
                       if self.alter_retries else "")
        batch_waits = (f" ({self.batch_retries} retried after lock waits)"
                       if self.batch_retries else "")
        return [f"{self.where}: added {self.column} {COLUMN_DEFINITION} with "
                f"{self.plan.alter.clause.sql} in {self.alter_seconds:.1f}s{alter_waits}; "
                f"backfilled {self.rows_backfilled:,} of {self.rows_walked:,} rows in "
                f"{_count(self.batches, 'batch')}{batch_waits}, {self.seconds:.1f}s in all"]


@dataclass
class _Table:
    """What information_schema says about the table."""

    engine: str
    rows: int
    key: tuple[str, ...]
    existing_type: str | None
    pinned: tuple[str, ...]
    triggers: tuple[str, ...]


@dataclass
class _Counter:
    retries: int = 0

    def before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.MySQLError) and error_code(exc) in LOCK_ERRORS


def _retrying(attempts: int, counter: _Counter) -> Retrying:
    """Lock wait timeouts and deadlocks: wait a little, then redo the statement."""
    return Retrying(retry=retry_if_exception(_is_lock_error), reraise=True,
                    wait=wait_exponential(multiplier=0.1, max=3),
                    stop=stop_after_attempt(attempts), before_sleep=counter.before_sleep)


def _inspect(conn: pymysql.connections.Connection, where: str, database: str, table: str,
             column: str) -> _Table:
    found = query(conn, "SELECT TABLE_TYPE, ENGINE, COALESCE(TABLE_ROWS, 0) "
                        "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = %s", (database, table))
    if not found:
        raise FuretError(f"{where}: no such table")
    table_type, engine, rows = found[0]
    if table_type != "BASE TABLE":
        raise FuretError(f"{where}: is a {str(table_type).lower()}, not a table")
    columns = query(conn, "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS "
                          "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                    (database, table))
    existing = [str(t) for name, t, _ in columns if str(name).lower() == column.lower()]
    pinned = tuple(str(name) for name, _, extra in columns
                   if "on update" in str(extra).lower() and str(name).lower() != column.lower())
    key = query(conn, "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
                      "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' "
                      "ORDER BY SEQ_IN_INDEX", (database, table))
    triggers = query(conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                           "WHERE EVENT_OBJECT_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s "
                           "AND EVENT_MANIPULATION = 'UPDATE' ORDER BY TRIGGER_NAME",
                     (database, table))
    return _Table(str(engine), int(rows), tuple(str(r[0]) for r in key),
                  existing[0] if existing else None, pinned, tuple(str(r[0]) for r in triggers))


def _isolation(conn: pymysql.connections.Connection) -> str:
    log_bin, binlog_format = query(conn, "SELECT @@log_bin, @@binlog_format")[0]
    if int(log_bin or 0) and str(binlog_format).upper() == "STATEMENT":
        return "REPEATABLE READ"
    return "READ COMMITTED"


def _session(conn: pymysql.connections.Connection, isolation: str) -> None:
    query(conn, "SET SESSION time_zone = '+00:00', lock_wait_timeout = %s, "
                "innodb_lock_wait_timeout = %s", (MDL_WAIT_S, ROW_WAIT_S))
    query(conn, f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")


def _ladder(conn: pymysql.connections.Connection, where: str, database: str, table: str,
            column: str, allow_lock: bool, counter: _Counter,
            ) -> tuple[Clause, tuple[Refusal, ...], bool]:
    """Try INSTANT, then INPLACE/LOCK=NONE, then (``allow_lock``) the locking clause the
    server names; (clause, refusals, applied). Not applied: the locking clause it would
    take. Each attempt either fails at once (refused) or runs, waiting at most
    MDL_WAIT_S per attempt for the metadata lock."""
    refusals: list[Refusal] = []

    def attempt(clause: Clause) -> bool:
        try:
            for retry in _retrying(ALTER_ATTEMPTS, counter):
                with retry:
                    query(conn, alter_sql(database, table, column, clause))
        except pymysql.MySQLError as exc:
            refused = refusal(clause, exc)
            if refused is None:
                if _is_lock_error(exc):
                    raise FuretError(
                        f"{where}: the ALTER waited {ALTER_ATTEMPTS} times {MDL_WAIT_S}s for "
                        "the table's metadata lock (a long transaction or another DDL holds "
                        "it: information_schema.innodb_trx, SHOW PROCESSLIST); nothing "
                        "changed") from None
                raise
            refusals.append(refused)
            return False
        return True

    for clause in (INSTANT, ONLINE):
        if attempt(clause):
            return clause, tuple(refusals), True
    tried: set[Clause] = {INSTANT, ONLINE}
    locking = locking_clause(refusals[-1])
    while allow_lock and locking not in tried:
        tried.add(locking)
        if attempt(locking):
            return locking, tuple(refusals), True
        locking = locking_clause(refusals[-1])
    if allow_lock:
        raise FuretError(f"{where}: the server refuses every ALTER furet tried: "
                         + "; ".join(r.short() for r in refusals))
    return locking, tuple(refusals), False


def _probe(conn: pymysql.connections.Connection, where: str, database: str, table: str,
           column: str) -> tuple[Clause, tuple[Refusal, ...]]:
    """The ladder on an empty copy of the table (dropped after): what the server would do,
    down to the lock a locking ALTER needs."""
    probe = f"{PROBE_PREFIX}{int(time.time() * 1000) % 10**9}"[:64]
    try:
        query(conn, f"CREATE TABLE {quote(database)}.{quote(probe)} LIKE "
                    f"{quote(database)}.{quote(table)}")
    except pymysql.MySQLError as exc:
        raise FuretError(f"{where}: --dry-run asks the server on an empty copy of the table "
                         f"and could not create it ({error_code(exc)}: "
                         f"{exc.args[1] if len(exc.args) > 1 else exc}); it needs CREATE, "
                         f"ALTER and DROP on database {database}") from None
    try:
        clause, refusals, _ = _ladder(conn, where, database, probe, column, True, _Counter())
    finally:
        query(conn, f"DROP TABLE IF EXISTS {quote(database)}.{quote(probe)}")
    return clause, refusals


def _backfill(conn: pymysql.connections.Connection, plan: Plan, threshold: datetime,
              progress: Reporter, pause_s: float, counter: _Counter) -> tuple[int, int, int]:
    """Keyset batches by primary key; (rows walked, rows stamped, batches)."""
    name = f"{plan.database}.{plan.table}"
    progress.table(name, plan.rows_estimate or None)
    cursor: tuple[Any, ...] | None = None
    walked = stamped = batches = 0
    while True:
        sql, args = next_keys_sql(plan.database, plan.table, plan.key, cursor, plan.batch_rows)
        batch = query(conn, sql, args)
        if not batch:
            break
        last = tuple(batch[-1])
        update, update_args = backfill_sql(plan.database, plan.table, plan.column, plan.key,
                                           plan.pinned, cursor, last)
        try:
            for retry in _retrying(BATCH_ATTEMPTS, counter):
                with retry, conn.cursor() as cur:
                    changed = cur.execute(update, [*update_args, threshold])
        except pymysql.MySQLError as exc:
            if not _is_lock_error(exc):
                raise
            raise FuretError(f"{plan.where}: the backfill batch after key {cursor} met "
                             f"{BATCH_ATTEMPTS} lock waits or deadlocks in a row and stopped; "
                             "the rows from there keep the ALTER's time, which is still a "
                             "correct version") from None
        walked += len(batch)
        stamped += int(changed)
        batches += 1
        progress.advance(name, len(batch))
        cursor = last
        if len(batch) < plan.batch_rows:
            break
        if pause_s:
            time.sleep(pause_s)
    return walked, stamped, batches


def add_version(settings: DbSettings, table: str, *, database: str = DEFAULT_DATABASE,
                column: str = DEFAULT_COLUMN, dry_run: bool = False, allow_lock: bool = False,
                batch_rows: int = DEFAULT_BATCH_ROWS, pause_ms: int = 0,
                progress: Reporter | None = None) -> AddVersionResult:
    """Add the version column to ``database.table`` online and backfill it (see the module
    docstring); ``dry_run``: only the plan. Raises FuretError (one line) when the table is
    missing, has no primary key, or needs a locking ALTER without ``allow_lock``."""
    started = time.monotonic()
    where = f"{settings.where} database {database} table {table}"
    progress = progress or Silent()
    alter_counter, batch_counter = _Counter(), _Counter()
    try:
        with connection(settings) as conn:
            found = _inspect(conn, where, database, table, column)
            if found.existing_type is not None:
                return AddVersionResult(Outcome.EXISTS, where, column,
                                        existing_type=found.existing_type)
            if not found.key:
                raise FuretError(f"{where}: no primary key: add-version backfills by primary "
                                 "key in small batches (and Galera needs one too); add one "
                                 "first")
            if found.rows < EXACT_COUNT_BELOW:  # InnoDB's estimate is rough (0 when new)
                found.rows = int(query(conn, f"SELECT COUNT(*) FROM {quote(database)}."
                                             f"{quote(table)}")[0][0])
            isolation = _isolation(conn)
            _session(conn, isolation)

            def plan_for(clause: Clause, refusals: tuple[Refusal, ...]) -> Plan:
                return Plan(where, database, table, column, found.engine, found.key,
                            AlterChoice(alter_sql(database, table, column, clause), clause,
                                        refusals),
                            found.rows, batch_rows, isolation, found.pinned, found.triggers,
                            probed_on_copy=dry_run)

            if dry_run:
                plan = plan_for(*_probe(conn, where, database, table, column))
                return AddVersionResult(Outcome.PLANNED, where, column, plan,
                                        seconds=time.monotonic() - started)
            alter_started = time.monotonic()
            try:
                clause, refusals, applied = _ladder(conn, where, database, table, column,
                                                    allow_lock, alter_counter)
            except pymysql.MySQLError as exc:
                if error_code(exc) == 1060:  # added meanwhile by another run
                    return AddVersionResult(Outcome.EXISTS, where, column,
                                            existing_type="added meanwhile by another run")
                raise
            plan = plan_for(clause, refusals)
            if not applied:
                refused = " and ".join(r.short() for r in refusals)
                raise FuretError(
                    f"{where}: no online ALTER: the server refuses {refused}; it would take "
                    f"`{plan.alter.statement}`, which locks the table (LOCK={clause.lock}: "
                    f"{clause.effect}); nothing changed; --allow-lock runs it")
            alter_seconds = time.monotonic() - alter_started
            threshold = query(conn, "SELECT NOW(3)")[0][0]
            walked, stamped, batches = _backfill(conn, plan, threshold, progress,
                                                 pause_ms / 1000, batch_counter)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, database, table) from None
    return AddVersionResult(Outcome.ADDED, where, column, plan, alter_seconds=alter_seconds,
                            threshold=threshold, rows_walked=walked, rows_backfilled=stamped,
                            batches=batches, alter_retries=alter_counter.retries,
                            batch_retries=batch_counter.retries,
                            seconds=time.monotonic() - started)


__all__ = ["AddVersionResult", "Clause", "Outcome", "Plan", "Refusal", "add_version",
           "alter_sql", "backfill_sql", "locking_clause", "next_keys_sql", "refusal"]
