"""The ledger: rounds, per-table windows, chunk checkpoints, quarantine and the flows' locks
in ``furet``.

It lives on the target, so a batch's rows, its quarantined rows and its chunk checkpoint
(cursor and counts) commit in ONE transaction: after a kill -9 the chunk resumes from the
last committed cursor, no batch is applied twice and none is skipped. The checkpoint
update is conditional on the batch number the worker expects, so two runners can never
both apply the same batch.

This module owns the ``furet`` database: every statement on its tables is here, nowhere
else. The schema carries a version (``furet.ledger_schema``) and upgrades itself forward
(:func:`ensure_ledger`, steps in :data:`UPGRADES`), so a target written by an older furet
is upgraded in place the first time a newer one runs a round or reads the status.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration import __version__
from migration.config import DbSettings
from migration.db import connect, query
from migration.engine import keys
from migration.engine.plan import ChunkSpec
from migration.engine.quarantine import QuarantinedRow
from migration.engine.results import QuarantineCount, RoundSummary, StatusReport, TableSummary
from migration.enums import Strategy
from migration.errors import FuretError
from migration.sql_literals import values_batches

# Version 1: the ledger as furet 0.1 created it (no version table: a ledger with
# furet.rounds and without furet.ledger_schema is version 1). Never edit a released step:
# add the next one to UPGRADES.
V1 = (
    "CREATE DATABASE IF NOT EXISTS furet DEFAULT CHARACTER SET utf8mb4",
    """CREATE TABLE IF NOT EXISTS furet.rounds (
      flow VARCHAR(64) NOT NULL, round_no INT NOT NULL, strategy VARCHAR(8) NOT NULL,
      kind VARCHAR(8) NOT NULL, final TINYINT NOT NULL DEFAULT 0,
      status VARCHAR(8) NOT NULL, now_ms BIGINT NULL, overlap_ms BIGINT NOT NULL,
      safety_lag_ms BIGINT NOT NULL, chunks INT NOT NULL DEFAULT 0,
      rows_read BIGINT NOT NULL DEFAULT 0, rows_written BIGINT NOT NULL DEFAULT 0,
      rows_quarantined BIGINT NOT NULL DEFAULT 0, invocations INT NOT NULL DEFAULT 1,
      started_at DATETIME(3) NOT NULL DEFAULT NOW(3), finished_at DATETIME(3) NULL,
      seconds DOUBLE NULL,
      PRIMARY KEY (flow, round_no))""",
    """CREATE TABLE IF NOT EXISTS furet.round_tables (
      flow VARCHAR(64) NOT NULL, round_no INT NOT NULL, source_table VARCHAR(64) NOT NULL,
      window_lo BIGINT NULL, window_hi BIGINT NULL, watermark BIGINT NULL,
      status VARCHAR(8) NOT NULL,
      PRIMARY KEY (flow, round_no, source_table))""",
    """CREATE TABLE IF NOT EXISTS furet.chunks (
      flow VARCHAR(64) NOT NULL, round_no INT NOT NULL, source_table VARCHAR(64) NOT NULL,
      chunk_no INT NOT NULL, kind VARCHAR(8) NOT NULL, key_column VARCHAR(64) NOT NULL,
      key_lo VARCHAR(255) NULL, key_hi VARCHAR(255) NULL, ts_lo BIGINT NULL, ts_hi BIGINT NULL,
      cursor_ts BIGINT NULL, cursor_key VARCHAR(255) NULL,
      status VARCHAR(8) NOT NULL DEFAULT 'pending', attempts INT NOT NULL DEFAULT 0,
      batches INT NOT NULL DEFAULT 0, rows_read BIGINT NOT NULL DEFAULT 0,
      rows_written BIGINT NOT NULL DEFAULT 0, rows_quarantined BIGINT NOT NULL DEFAULT 0,
      started_at DATETIME(3) NULL, finished_at DATETIME(3) NULL,
      PRIMARY KEY (flow, round_no, source_table, chunk_no))""",
    """CREATE TABLE IF NOT EXISTS furet.quarantine (
      id BIGINT NOT NULL AUTO_INCREMENT, flow VARCHAR(64) NOT NULL,
      source_table VARCHAR(64) NOT NULL, row_key VARCHAR(255) NOT NULL,
      version BIGINT NOT NULL, round_no INT NOT NULL, target_table VARCHAR(64) NOT NULL,
      reason VARCHAR(512) NOT NULL, original LONGTEXT NOT NULL,
      first_seen DATETIME(3) NOT NULL DEFAULT NOW(3), last_seen DATETIME(3) NULL,
      seen INT NOT NULL DEFAULT 1,
      PRIMARY KEY (id), UNIQUE KEY uq_quarantine_row (flow, source_table, row_key, version))""",
)

# Forward upgrades: (version, statements). Each statement is idempotent (IF NOT EXISTS), so
# two runners upgrading the same ledger at once, or a step killed half-way, are harmless.
UPGRADES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, V1),
    (2, ("""CREATE TABLE IF NOT EXISTS furet.ledger_schema (
           id TINYINT NOT NULL, version INT NOT NULL,
           upgraded_at DATETIME(3) NOT NULL DEFAULT NOW(3), PRIMARY KEY (id))""",
         # which furet ran a round (mixed versions during an upgrade are visible)
         "ALTER TABLE furet.rounds ADD COLUMN IF NOT EXISTS furet_version VARCHAR(32) NULL")),
    # any legacy schema: composite keys (JSON key texts), the version column's type per
    # table (a watermark is only reused with the type it was taken in)
    (3, ("ALTER TABLE furet.chunks MODIFY key_column VARCHAR(255) NOT NULL, "
         "MODIFY key_lo TEXT NULL, MODIFY key_hi TEXT NULL, MODIFY cursor_key TEXT NULL",
         "ALTER TABLE furet.round_tables ADD COLUMN IF NOT EXISTS version_type VARCHAR(64) "
         "NULL",
         "ALTER TABLE furet.quarantine MODIFY row_key VARCHAR(512) NOT NULL",
         # tables without a version: rows a round deleted (`deletes: propagate`)
         "ALTER TABLE furet.chunks ADD COLUMN IF NOT EXISTS rows_deleted BIGINT NOT NULL "
         "DEFAULT 0")),
    # quarantine keys whole: the unique key on a SHA-256 of the key text (SHA2 here and
    # hashlib in quarantine_statements hash the same UTF-8 bytes), the text itself in a
    # TEXT (512 characters cut long composite keys into each other); the flows' lock
    # (migration.engine.flow_lock: rounds and repairs of a flow exclude each other)
    (4, ("ALTER TABLE furet.quarantine ADD COLUMN IF NOT EXISTS key_hash CHAR(64) NULL "
         "AFTER source_table",
         "UPDATE furet.quarantine SET key_hash = SHA2(row_key, 256) WHERE key_hash IS NULL",
         "ALTER TABLE furet.quarantine MODIFY key_hash CHAR(64) NOT NULL, "
         "DROP INDEX IF EXISTS uq_quarantine_row, ADD UNIQUE KEY IF NOT EXISTS "
         "uq_quarantine_key (flow, source_table, key_hash, version)",
         "ALTER TABLE furet.quarantine MODIFY row_key TEXT NOT NULL",
         """CREATE TABLE IF NOT EXISTS furet.locks (
           flow VARCHAR(64) NOT NULL, token CHAR(32) NOT NULL, host VARCHAR(255) NOT NULL,
           pid INT NOT NULL, command VARCHAR(255) NOT NULL,
           started_at DATETIME(3) NOT NULL DEFAULT NOW(3),
           heartbeat_at DATETIME(3) NOT NULL DEFAULT NOW(3),
           PRIMARY KEY (flow))""")),
    # the cutover's journal (migration.cutover): one run per `fab cutover run`, one row per
    # step of it, so `resume` continues after a kill and `status` shows where it stands
    (5, ("""CREATE TABLE IF NOT EXISTS furet.cutover_runs (
           run_id INT NOT NULL AUTO_INCREMENT, kind VARCHAR(12) NOT NULL,
           runbook_sha CHAR(64) NOT NULL, options TEXT NULL,
           status VARCHAR(12) NOT NULL, who VARCHAR(255) NOT NULL, detail TEXT NULL,
           started_at DATETIME(3) NOT NULL DEFAULT NOW(3), finished_at DATETIME(3) NULL,
           PRIMARY KEY (run_id))""",
         """CREATE TABLE IF NOT EXISTS furet.cutover_steps (
           run_id INT NOT NULL, seq INT NOT NULL, step_id VARCHAR(64) NOT NULL,
           status VARCHAR(12) NOT NULL, attempts INT NOT NULL DEFAULT 1,
           host VARCHAR(255) NOT NULL, who VARCHAR(255) NOT NULL, detail TEXT NULL,
           started_at DATETIME(3) NOT NULL DEFAULT NOW(3), finished_at DATETIME(3) NULL,
           PRIMARY KEY (run_id, step_id), KEY (run_id, seq))""")),
    # the backups furet took (migration/backup/catalog.py) and their restore tests: the
    # cutover's preflight refuses a backup too old or not proven by a restore test
    (6, ("""CREATE TABLE IF NOT EXISTS furet.backups (
           backup_id VARCHAR(255) NOT NULL, kind VARCHAR(12) NOT NULL,
           host VARCHAR(255) NOT NULL, path VARCHAR(1024) NOT NULL,
           manifest_sha256 CHAR(64) NOT NULL, created_at DATETIME(3) NOT NULL,
           recorded_at DATETIME(3) NOT NULL DEFAULT NOW(3),
           restore_tested_at DATETIME(3) NULL, restore_result VARCHAR(8) NULL,
           restore_detail TEXT NULL,
           PRIMARY KEY (host, path(255)), KEY (kind, created_at))""",)),
    # the secondary indexes round 1 dropped from empty target tables, to be added back when
    # its chunks are done (migration.engine.deferred_indexes)
    (7, ("""CREATE TABLE IF NOT EXISTS furet.deferred_indexes (
           flow VARCHAR(64) NOT NULL, round_no INT NOT NULL,
           target_database VARCHAR(64) NOT NULL, target_table VARCHAR(64) NOT NULL,
           index_name VARCHAR(64) NOT NULL, seq INT NOT NULL, is_unique TINYINT NOT NULL,
           columns_json TEXT NOT NULL, definition TEXT NOT NULL,
           deferred_at DATETIME(3) NOT NULL DEFAULT NOW(3),
           PRIMARY KEY (flow, target_database, target_table, index_name))""",)),
)
LEDGER_VERSION = UPGRADES[-1][0]
LEDGER_TABLES = ("rounds", "round_tables", "chunks", "quarantine", "cutover_steps",
                 "cutover_runs", "deferred_indexes")
NO_LEDGER_ERRORS = (1049, 1146)  # unknown database, unknown table


@dataclass
class Chunk:
    flow: str
    round_no: int
    source_table: str
    spec: ChunkSpec
    cursor_ts: int | None
    cursor_key: keys.Key | None
    status: str
    batches: int
    rows_read: int


@dataclass
class RoundRow:
    flow: str
    round_no: int
    strategy: Strategy
    kind: str
    final: bool
    status: str
    now_ms: int | None


def schema_version(conn: pymysql.connections.Connection) -> int:
    """The ledger's schema version on this target: 0 when there is none."""
    tables = {str(t) for (t,) in query(
        conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'furet' "
              "AND table_name IN ('rounds', 'ledger_schema')")}
    if "ledger_schema" in tables:
        rows = query(conn, "SELECT version FROM furet.ledger_schema WHERE id = 1")
        if rows:
            return int(rows[0][0])
    return 1 if "rounds" in tables else 0


def ensure_ledger(conn: pymysql.connections.Connection) -> int:
    """Create the ledger, or upgrade it in place to :data:`LEDGER_VERSION`; return the
    version found. A ledger written by a newer furet is refused, never downgraded."""
    found = schema_version(conn)
    if found > LEDGER_VERSION:
        raise FuretError(f"the furet ledger on this target is version {found}; this furet "
                         f"({__version__}) knows up to {LEDGER_VERSION}: upgrade furet")
    if found == LEDGER_VERSION:
        return found
    with conn.cursor() as cur:
        for version, statements in UPGRADES:
            if version <= found:
                continue
            for statement in statements:
                cur.execute(statement)
            if version >= 2:
                cur.execute("INSERT INTO furet.ledger_schema (id, version) VALUES (1, %s) "
                            "ON DUPLICATE KEY UPDATE version = GREATEST(version, "
                            "VALUES(version)), upgraded_at = NOW(3)", (version,))
    return found


@contextlib.contextmanager
def opened(settings: DbSettings) -> Iterator[pymysql.connections.Connection]:
    """A connection to the ledger's server (strict, no autocommit), the ledger made or
    upgraded first; closed on exit."""
    conn = connect(settings, autocommit=False, strict=True)
    try:
        ensure_ledger(conn)
        yield conn
    finally:
        conn.close()


def exists(conn: pymysql.connections.Connection) -> bool:
    return schema_version(conn) > 0


# --- the flows' lock (policy and heartbeat: migration.engine.flow_lock) ---------------------

LOCK_STALE_S = 60  # a holder whose heartbeat is older is presumed gone (kill -9, dead host)


@dataclass(frozen=True)
class LockHolder:
    token: str
    host: str
    pid: int
    command: str
    started_at: str            # UTC, as the ledger server wrote it
    heartbeat_age_s: float     # on the ledger server's clock


def insert_lock(conn: pymysql.connections.Connection, flow: str, token: str, host: str,
                pid: int, command: str) -> bool:
    """Take ``flow``'s lock if nobody holds it (``conn`` autocommit). A concurrent insert of
    the same row on another Galera node loses at certification; the autocommit statement
    is retried (``wsrep_retry_autocommit``) and then finds the row: both end as False and
    True, never both True. Checked by reading the token back."""
    with conn.cursor() as cur:
        cur.execute("INSERT IGNORE INTO furet.locks (flow, token, host, pid, command) "
                    "VALUES (%s, %s, %s, %s, %s)", (flow, token, host, pid, command[:255]))
    holder = lock_holder(conn, flow)
    return holder is not None and holder.token == token


def lock_holder(conn: pymysql.connections.Connection, flow: str) -> LockHolder | None:
    rows = query(conn, "SELECT token, host, pid, command, CAST(started_at AS CHAR), "
                       "TIMESTAMPDIFF(MICROSECOND, heartbeat_at, NOW(3)) / 1e6 "
                       "FROM furet.locks WHERE flow = %s", (flow,))
    if not rows:
        return None
    token, host, pid, command, started, age = rows[0]
    return LockHolder(str(token), str(host), int(pid), str(command), str(started), float(age))


# The platform hold (migration/hold.py): a row of furet.locks under a name no flow can
# have, with no heartbeat (it lasts until released): while it is there no flow's lock is
# given (rounds, repairs, backups) and furet changes no schema.
PLATFORM_HOLD = "*platform*"


def live_locks(conn: pymysql.connections.Connection) -> list[tuple[str, LockHolder]]:
    """The flows whose lock has a holder alive (heartbeat within LOCK_STALE_S)."""
    rows = query(conn, "SELECT flow, token, host, pid, command, CAST(started_at AS CHAR), "
                       "TIMESTAMPDIFF(MICROSECOND, heartbeat_at, NOW(3)) / 1e6 AS age "
                       "FROM furet.locks WHERE flow <> %s HAVING age <= %s ORDER BY flow",
                 (PLATFORM_HOLD, LOCK_STALE_S))
    return [(str(flow), LockHolder(str(token), str(host), int(pid), str(command),
                                   str(started), float(age)))
            for flow, token, host, pid, command, started, age in rows]


def take_over_lock(conn: pymysql.connections.Connection, flow: str, old_token: str,
                   token: str, host: str, pid: int, command: str) -> bool:
    """Replace a gone holder (conditional on its token: one taker wins)."""
    with conn.cursor() as cur:
        cur.execute("UPDATE furet.locks SET token = %s, host = %s, pid = %s, command = %s, "
                    "started_at = NOW(3), heartbeat_at = NOW(3) WHERE flow = %s AND token = %s",
                    (token, host, pid, command[:255], flow, old_token))
        return cur.rowcount == 1


def heartbeat_lock(conn: pymysql.connections.Connection, flow: str, token: str) -> bool:
    """Refresh the holder's heartbeat; False if the lock is no longer ours."""
    with conn.cursor() as cur:
        cur.execute("UPDATE furet.locks SET heartbeat_at = NOW(3) WHERE flow = %s AND "
                    "token = %s", (flow, token))
        return cur.rowcount == 1


def release_lock(conn: pymysql.connections.Connection, flow: str, token: str) -> None:
    query(conn, "DELETE FROM furet.locks WHERE flow = %s AND token = %s", (flow, token))


def forget(conn: pymysql.connections.Connection) -> None:
    """Empty the ledger (every flow's rounds, chunks and quarantine, the cutover journal):
    the next round of each flow is a round 1 again. For a rehearsal whose target was
    dropped."""
    ensure_ledger(conn)
    with conn.cursor() as cur:
        for table in LEDGER_TABLES:
            cur.execute(f"DELETE FROM furet.{table}")
    conn.commit()


def last_round(conn: pymysql.connections.Connection, flow: str) -> RoundRow | None:
    rows = query(conn, "SELECT flow, round_no, strategy, kind, final, status, now_ms "
                       "FROM furet.rounds WHERE flow = %s ORDER BY round_no DESC LIMIT 1",
                 (flow,))
    if not rows:
        return None
    f, n, strategy, kind, final, status, now_ms = rows[0]
    return RoundRow(f, n, Strategy(strategy), kind, bool(final), status, now_ms)


def last_watermarks(conn: pymysql.connections.Connection,
                    flow: str) -> dict[str, tuple[int, str | None]]:
    """(watermark, version type it is in) per source table of the last finished ``ts``
    round of ``flow`` (the type is None for rounds of a furet before ledger version 3)."""
    rows = query(conn, "SELECT t.source_table, t.watermark, t.version_type "
                       "FROM furet.round_tables t "
                       "JOIN furet.rounds r ON r.flow = t.flow AND r.round_no = t.round_no "
                       "WHERE t.flow = %s AND r.strategy = 'ts' AND r.status = 'done' "
                       "AND t.round_no = (SELECT MAX(round_no) FROM furet.rounds WHERE "
                       "flow = %s AND strategy = 'ts' AND status = 'done')", (flow, flow))
    return {str(table): (int(mark), vtype) for table, mark, vtype in rows if mark is not None}


def rounds_of(conn: pymysql.connections.Connection, flow: str) -> list[RoundRow]:
    """Every round of ``flow``, in order (where its reverse rounds start:
    :mod:`migration.engine.reverse`)."""
    rows = query(conn, "SELECT flow, round_no, strategy, kind, final, status, now_ms "
                       "FROM furet.rounds WHERE flow = %s ORDER BY round_no", (flow,))
    return [RoundRow(f, n, Strategy(s), k, bool(fin), st, now) for f, n, s, k, fin, st, now
            in rows]


def round_watermarks(conn: pymysql.connections.Connection, flow: str,
                     round_no: int) -> dict[str, tuple[int, str | None]]:
    """(watermark, version type) per source table of one finished round."""
    rows = query(conn, "SELECT source_table, watermark, version_type FROM furet.round_tables "
                       "WHERE flow = %s AND round_no = %s AND status = 'done'", (flow, round_no))
    return {str(table): (int(mark), vtype) for table, mark, vtype in rows if mark is not None}


def create_round(conn: pymysql.connections.Connection, round_row: RoundRow, overlap_ms: int,
                 safety_lag_ms: int, windows: dict[str, tuple[int | None, int | None]],
                 chunks: dict[str, list[ChunkSpec]],
                 version_types: dict[str, str] | None = None) -> None:
    """Persist the whole plan of a round in one transaction (so resume finds it intact)."""
    conn.begin()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO furet.rounds (flow, round_no, strategy, kind, final, status, "
                    "now_ms, overlap_ms, safety_lag_ms, chunks, furet_version) VALUES "
                    "(%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s)",
                    (round_row.flow, round_row.round_no, str(round_row.strategy),
                     round_row.kind, int(round_row.final), round_row.now_ms, overlap_ms,
                     safety_lag_ms, sum(len(c) for c in chunks.values()), __version__))
        for table, (lo, hi) in windows.items():
            cur.execute("INSERT INTO furet.round_tables (flow, round_no, source_table, "
                        "window_lo, window_hi, status, version_type) VALUES "
                        "(%s, %s, %s, %s, %s, 'running', %s)",
                        (round_row.flow, round_row.round_no, table, lo, hi,
                         (version_types or {}).get(table)))
        for table, specs in chunks.items():
            if specs:
                cur.executemany(
                    "INSERT INTO furet.chunks (flow, round_no, source_table, chunk_no, kind, "
                    "key_column, key_lo, key_hi, ts_lo, ts_hi) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(round_row.flow, round_row.round_no, table, s.chunk_no, s.kind,
                      s.key_column, keys.encode(s.key_lo), keys.encode(s.key_hi), s.ts_lo,
                      s.ts_hi)
                     for s in specs])
    conn.commit()


def note_invocation(conn: pymysql.connections.Connection, flow: str, round_no: int) -> None:
    query(conn, "UPDATE furet.rounds SET invocations = invocations + 1 "
                "WHERE flow = %s AND round_no = %s", (flow, round_no))


def pending_chunks(conn: pymysql.connections.Connection, flow: str,
                   round_no: int) -> list[Chunk]:
    rows = query(conn, "SELECT source_table, chunk_no, kind, key_column, key_lo, key_hi, ts_lo, "
                       "ts_hi, cursor_ts, cursor_key, status, batches, rows_read "
                       "FROM furet.chunks WHERE flow = %s AND round_no = %s AND status <> 'done' "
                       "ORDER BY source_table, chunk_no", (flow, round_no))
    return [Chunk(flow, round_no, table,
                  ChunkSpec(no, kind, kcol, keys.decode(klo), keys.decode(khi), tlo, thi),
                  cts, keys.decode(ckey), status, batches, read)
            for table, no, kind, kcol, klo, khi, tlo, thi, cts, ckey, status, batches, read
            in rows]


def claim_chunk(conn: pymysql.connections.Connection, chunk: Chunk) -> None:
    query(conn, "UPDATE furet.chunks SET status = 'running', attempts = attempts + 1, "
                "started_at = COALESCE(started_at, NOW(3)) WHERE flow = %s AND round_no = %s "
                "AND source_table = %s AND chunk_no = %s",
          (chunk.flow, chunk.round_no, chunk.source_table, chunk.spec.chunk_no))


def checkpoint(cur: pymysql.cursors.Cursor, chunk: Chunk, cursor_ts: int | None,
               cursor_key: keys.Key | None, read: int, written: int, quarantined: int) -> bool:
    """Advance the chunk cursor inside the caller's transaction; False if someone else did."""
    cur.execute("UPDATE furet.chunks SET cursor_ts = %s, cursor_key = %s, batches = batches + 1, "
                "rows_read = rows_read + %s, rows_written = rows_written + %s, "
                "rows_quarantined = rows_quarantined + %s WHERE flow = %s AND round_no = %s "
                "AND source_table = %s AND chunk_no = %s AND batches = %s AND status <> 'done'",
                (cursor_ts, keys.encode(cursor_key), read, written, quarantined, chunk.flow,
                 chunk.round_no, chunk.source_table, chunk.spec.chunk_no, chunk.batches))
    return cur.rowcount == 1


def set_aside(cur: pymysql.cursors.Cursor, flow: str, round_no: int, source_table: str,
              rows: int) -> None:
    """``rows`` a round had counted written are quarantined after all (a deferred unique
    key found them: migration.engine.deferred_indexes), inside the caller's transaction;
    counted on the table's first chunk."""
    cur.execute("UPDATE furet.chunks SET rows_written = rows_written - %s, "
                "rows_quarantined = rows_quarantined + %s WHERE flow = %s AND round_no = %s "
                "AND source_table = %s ORDER BY chunk_no LIMIT 1",
                (rows, rows, flow, round_no, source_table))


def finish_chunk(conn: pymysql.connections.Connection, chunk: Chunk, read: int = 0,
                 deleted: int = 0) -> None:
    """Mark a chunk done, adding rows it read without copying them (a sync chunk whose
    checksums agreed) and rows it deleted."""
    query(conn, "UPDATE furet.chunks SET status = 'done', finished_at = NOW(3), "
                "rows_read = rows_read + %s, rows_deleted = rows_deleted + %s "
                "WHERE flow = %s AND round_no = %s AND source_table = %s AND chunk_no = %s",
          (read, deleted, chunk.flow, chunk.round_no, chunk.source_table, chunk.spec.chunk_no))


def round_window(conn: pymysql.connections.Connection, flow: str, round_no: int,
                 source_table: str) -> tuple[int | None, int | None]:
    """The planned window ``(lo, hi]`` of one table of a round."""
    lo, hi = query(conn, "SELECT window_lo, window_hi FROM furet.round_tables WHERE flow = %s "
                         "AND round_no = %s AND source_table = %s",
                   (flow, round_no, source_table))[0]
    return lo, hi


def highest_cursor(conn: pymysql.connections.Connection, flow: str, round_no: int,
                   source_table: str, cursor: str) -> int | None:
    """The highest checkpointed ``cursor_ts`` or ``cursor_key`` (as an integer) of a table
    in a round: the watermark of the naive and id strategies."""
    column = {"ts": "cursor_ts", "key": "cursor_key"}[cursor]
    top = query(conn, f"SELECT MAX(CAST({column} AS SIGNED)) FROM furet.chunks WHERE "
                      "flow = %s AND round_no = %s AND source_table = %s",
                (flow, round_no, source_table))[0][0]
    return None if top is None else int(top)


def finish_round(conn: pymysql.connections.Connection, flow: str, round_no: int,
                 watermarks: dict[str, int | None]) -> RoundSummary:
    conn.begin()
    with conn.cursor() as cur:
        for table, mark in watermarks.items():
            cur.execute("UPDATE furet.round_tables SET watermark = %s, status = 'done' "
                        "WHERE flow = %s AND round_no = %s AND source_table = %s",
                        (mark, flow, round_no, table))
        # Two statements, not an UPDATE ... JOIN (SELECT ...): Galera refuses that form with
        # error 4165 "Galera replication not supported".
        cur.execute("SELECT COALESCE(SUM(rows_read), 0), COALESCE(SUM(rows_written), 0), "
                    "COALESCE(SUM(rows_quarantined), 0) FROM furet.chunks "
                    "WHERE flow = %s AND round_no = %s", (flow, round_no))
        read, written, quarantined = cur.fetchone()
        cur.execute("UPDATE furet.rounds SET rows_read = %s, rows_written = %s, "
                    "rows_quarantined = %s, status = 'done', finished_at = NOW(3), "
                    "seconds = TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) / 1e6 "
                    "WHERE flow = %s AND round_no = %s",
                    (read, written, quarantined, flow, round_no))
    conn.commit()
    return round_summary(conn, flow, round_no)


def _int(value: Any) -> int:
    return int(value or 0)


def round_summary(conn: pymysql.connections.Connection, flow: str,
                  round_no: int) -> RoundSummary:
    rows = query(conn, "SELECT flow, round_no, strategy, kind, final, status, now_ms, "
                       "overlap_ms, safety_lag_ms, chunks, rows_read, rows_written, "
                       "rows_quarantined, invocations, CAST(started_at AS CHAR), "
                       "CAST(finished_at AS CHAR), seconds, furet_version "
                       "FROM furet.rounds WHERE flow = %s AND round_no = %s", (flow, round_no))
    if not rows:
        raise FuretError(f"flow {flow}: round {round_no} is not in the ledger")
    (f, n, strategy, kind, final, status, now_ms, overlap, lag, chunks, read, written,
     quarantined, invocations, started, finished, seconds, version) = rows[0]
    tables = query(conn, "SELECT t.source_table, t.window_lo, t.window_hi, t.watermark, "
                         "t.status, COUNT(c.chunk_no), COALESCE(SUM(c.rows_read), 0), "
                         "COALESCE(SUM(c.rows_written), 0), COALESCE(SUM(c.rows_quarantined), 0), "
                         "MAX(t.version_type), COALESCE(SUM(c.rows_deleted), 0) "
                         "FROM furet.round_tables t LEFT JOIN furet.chunks c ON c.flow = t.flow "
                         "AND c.round_no = t.round_no AND c.source_table = t.source_table "
                         "WHERE t.flow = %s AND t.round_no = %s GROUP BY t.source_table "
                         "ORDER BY t.source_table", (flow, round_no))
    return RoundSummary(
        flow=f, round_no=int(n), strategy=Strategy(strategy), kind=kind, final=bool(final),
        status=status, now_ms=now_ms, overlap_ms=_int(overlap), safety_lag_ms=_int(lag),
        chunks=_int(chunks), rows_read=_int(read), rows_written=_int(written),
        rows_quarantined=_int(quarantined), invocations=_int(invocations), started_at=started,
        finished_at=finished, seconds=None if seconds is None else float(seconds),
        furet_version=version,
        tables=tuple(TableSummary(t, lo, hi, mark, st, _int(c), _int(r), _int(w), _int(q), vt,
                                  _int(d))
                     for t, lo, hi, mark, st, c, r, w, q, vt, d in tables))


def status_report(conn: pymysql.connections.Connection, flow: str | None = None,
                  last: int = 10) -> StatusReport:
    """The last ``last`` rounds of each flow (or of ``flow``) and the quarantine counts by
    reason; an empty report on a target without a ledger. Upgrades an older ledger."""
    if not exists(conn):
        return StatusReport()
    ensure_ledger(conn)
    where, args = ("WHERE flow = %s", (flow,)) if flow else ("", ())
    keys = query(conn, f"SELECT flow, round_no FROM furet.rounds {where} "
                       "ORDER BY flow, round_no DESC", args)
    per_flow: dict[str, int] = {}
    rounds = []
    for name, number in keys:
        per_flow[name] = per_flow.get(name, 0) + 1
        if per_flow[name] <= last:
            rounds.append(round_summary(conn, name, number))
    rounds.sort(key=lambda r: (r.flow, r.round_no))
    quarantine = tuple(
        QuarantineCount(f, t, r, int(n)) for f, t, r, n in query(
            conn, "SELECT flow, source_table, SUBSTRING_INDEX(reason, ': ', 2), COUNT(*) "
                  f"FROM furet.quarantine {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", args))
    return StatusReport(tuple(rounds), quarantine)


def quarantined_versions(conn: pymysql.connections.Connection, flow: str,
                         source_table: str) -> dict[str, set[int]]:
    """Versions in furet.quarantine per row key of ``source_table`` ({} before any ledger)."""
    try:
        rows = query(conn, "SELECT row_key, version FROM furet.quarantine WHERE flow = %s "
                           "AND source_table = %s", (flow, source_table))
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] in NO_LEDGER_ERRORS:  # no ledger yet: nothing quarantined
            return {}
        raise
    versions: dict[str, set[int]] = {}
    for key, version in rows:
        versions.setdefault(str(key), set()).add(int(version))
    return versions


QUARANTINE_BATCH_KEYS = 5000  # row keys per batch of quarantined_version_batches


def quarantined_version_batches(settings: DbSettings, flow: str, source_table: str,
                                keys_per_batch: int = QUARANTINE_BATCH_KEYS,
                                ) -> Iterator[dict[str, set[int]]]:
    """What :func:`quarantined_versions` reads, in batches of whole keys (nothing before any
    ledger): read unbuffered in the key texts' byte order, on a connection of its own (the
    caller queries other connections between two batches), so one batch is held at a time
    however large the quarantine (verify: migration/verify/quarantine.py)."""
    conn = connect(settings, autocommit=True)
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            try:
                cur.execute("SELECT row_key, version FROM furet.quarantine WHERE flow = %s "
                            "AND source_table = %s ORDER BY CAST(row_key AS BINARY)",
                            (flow, source_table))
            except pymysql.MySQLError as exc:
                if exc.args and exc.args[0] in NO_LEDGER_ERRORS:
                    return
                raise
            batch: dict[str, set[int]] = {}
            last: str | None = None
            while rows := cur.fetchmany(1000):
                for key, version in rows:
                    text = str(key)
                    if text != last and len(batch) >= keys_per_batch:
                        yield batch
                        batch = {}
                    batch.setdefault(text, set()).add(int(version))
                    last = text
            if batch:
                yield batch
    finally:
        conn.close()


def key_hash(row_key: str) -> str:
    """furet.quarantine's unique key on a row key text: the SHA-256 of its UTF-8 bytes (as
    MariaDB's ``SHA2(row_key, 256)`` on the utf8mb4 column computes it)."""
    return hashlib.sha256(row_key.encode("utf-8")).hexdigest()


def quarantine_statements(flow: str, round_no: int,
                          rows: Sequence[QuarantinedRow]) -> list[str]:
    """The statements that quarantine ``rows`` inside the caller's transaction (a round's
    batch: rows, quarantine and checkpoint commit together). Upserts keyed by (flow, table,
    hash of the whole key text, version): a row seen again is not duplicated, two long keys
    are never merged."""
    records = [(flow, q.source_table, key_hash(q.row_key), q.row_key, q.version, round_no,
                q.target_table, q.reason[:512],
                json.dumps(q.original, ensure_ascii=False, sort_keys=True))
               for q in rows]
    return [
        "INSERT INTO furet.quarantine (flow, source_table, key_hash, row_key, version, "
        "round_no, target_table, reason, original) VALUES " + ",".join(batch) +
        " ON DUPLICATE KEY UPDATE round_no = VALUES(round_no), reason = VALUES(reason), "
        "target_table = VALUES(target_table), last_seen = NOW(3), seen = seen + 1"
        for batch in values_batches(records, 500, 1_000_000)
    ]


def record_quarantine(conn: pymysql.connections.Connection, flow: str, round_no: int,
                      rows: Sequence[QuarantinedRow]) -> None:
    """Quarantine ``rows`` outside a round's batch transaction (e.g. refused by a repair):
    the ledger is created if needed; ``conn`` is autocommit."""
    if not rows:
        return
    ensure_ledger(conn)
    with conn.cursor() as cur:
        for statement in quarantine_statements(flow, round_no, rows):
            cur.execute(statement)


# -- the cutover's journal (migration/cutover) ---------------------------------------------

_EPOCH = "UNIX_TIMESTAMP({})"  # server clock, seconds with milliseconds


@dataclass(frozen=True)
class CutoverStep:
    step_id: str
    seq: int
    status: str       # started, ok, failed, skipped
    attempts: int
    host: str
    who: str
    detail: str       # the action's result (JSON) or why it failed
    started_at: float = 0.0             # server clock, epoch seconds
    finished_at: float | None = None


@dataclass(frozen=True)
class CutoverRun:
    run_id: int
    kind: str         # cutover | rollback
    runbook_sha: str
    options: str      # JSON
    status: str       # running, done, aborted, failed
    who: str
    detail: str
    started_at: float
    finished_at: float | None
    now: float        # the server's clock when this was read


_RUN_COLUMNS = ("run_id, kind, runbook_sha, COALESCE(options, ''), status, who, "
                "COALESCE(detail, ''), " + _EPOCH.format("started_at") + ", " +
                _EPOCH.format("finished_at") + ", " + _EPOCH.format("NOW(3)"))


def _run(row: tuple[Any, ...]) -> CutoverRun:
    return CutoverRun(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                      str(row[5]), str(row[6]), float(row[7]),
                      None if row[8] is None else float(row[8]), float(row[9]))


def cutover_open_run(conn: pymysql.connections.Connection) -> CutoverRun | None:
    """The unfinished run, if any: `resume` continues it, and no other may start."""
    rows = query(conn, f"SELECT {_RUN_COLUMNS} FROM furet.cutover_runs "
                       "WHERE status = 'running' ORDER BY run_id DESC LIMIT 1")
    return _run(rows[0]) if rows else None


def cutover_run(conn: pymysql.connections.Connection, run_id: int | None = None,
                kind: str | None = None) -> CutoverRun | None:
    """Run ``run_id``, or the latest run (of ``kind``)."""
    if run_id is not None:
        rows = query(conn, f"SELECT {_RUN_COLUMNS} FROM furet.cutover_runs WHERE run_id = %s",
                     (run_id,))
    else:
        rows = query(conn, f"SELECT {_RUN_COLUMNS} FROM furet.cutover_runs "
                           "WHERE %s IS NULL OR kind = %s ORDER BY run_id DESC LIMIT 1",
                     (kind, kind))
    return _run(rows[0]) if rows else None


def cutover_start_run(conn: pymysql.connections.Connection, runbook_sha: str, who: str,
                      kind: str = "cutover", options: str = "") -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO furet.cutover_runs (kind, runbook_sha, options, status, who) "
                    "VALUES (%s, %s, %s, 'running', %s)", (kind, runbook_sha, options, who))
        run_id = int(cur.lastrowid)
    conn.commit()
    return run_id


def cutover_finish_run(conn: pymysql.connections.Connection, run_id: int, status: str,
                       detail: str = "") -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE furet.cutover_runs SET status = %s, detail = %s, "
                    "finished_at = NOW(3) WHERE run_id = %s", (status, detail, run_id))
    conn.commit()


def cutover_steps(conn: pymysql.connections.Connection, run_id: int) -> list[CutoverStep]:
    rows = query(conn, "SELECT step_id, seq, status, attempts, host, who, COALESCE(detail, ''), "
                       + _EPOCH.format("started_at") + ", " + _EPOCH.format("finished_at") +
                       " FROM furet.cutover_steps WHERE run_id = %s ORDER BY seq", (run_id,))
    return [CutoverStep(str(r[0]), int(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5]),
                        str(r[6]), float(r[7]), None if r[8] is None else float(r[8]))
            for r in rows]


def cutover_step_started(conn: pymysql.connections.Connection, run_id: int, seq: int,
                         step_id: str, host: str, who: str) -> None:
    """Journal a step's start; a step started again (after a kill) counts one more attempt
    on its one row: every step appears once in the journal."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO furet.cutover_steps (run_id, seq, step_id, status, host, who) "
                    "VALUES (%s, %s, %s, 'started', %s, %s) ON DUPLICATE KEY UPDATE "
                    "status = 'started', attempts = attempts + 1, host = VALUES(host), "
                    "who = VALUES(who), started_at = NOW(3), finished_at = NULL",
                    (run_id, seq, step_id, host, who))
    conn.commit()


def cutover_step_finished(conn: pymysql.connections.Connection, run_id: int, step_id: str,
                          status: str, detail: str = "") -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE furet.cutover_steps SET status = %s, detail = %s, "
                    "finished_at = NOW(3) WHERE run_id = %s AND step_id = %s",
                    (status, detail, run_id, step_id))
    conn.commit()


# -- the backups (migration/backup/catalog.py) ---------------------------------------------

@dataclass(frozen=True)
class BackupRow:
    backup_id: str
    kind: str                 # legacy | galera | cassandra
    host: str
    path: str
    manifest_sha256: str
    age_s: float              # since it was taken, on the target's clock
    restore_result: str       # passed | failed | "" (never tested)
    restore_detail: str
    tested_age_s: float | None


def backup_recorded(conn: pymysql.connections.Connection, backup_id: str, kind: str, host: str,
                    path: str, manifest_sha256: str, created_at: str) -> None:
    """A backup taken (``created_at``: its manifest's, UTC); taken again at the same place,
    its row is replaced and its restore test forgotten."""
    with conn.cursor() as cur:
        cur.execute("REPLACE INTO furet.backups (backup_id, kind, host, path, manifest_sha256, "
                    "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (backup_id, kind, host, path, manifest_sha256, created_at))
    conn.commit()


def backup_restore_recorded(conn: pymysql.connections.Connection, host: str, path: str,
                            manifest_sha256: str, result: str, detail: str) -> bool:
    """A restore test's result, for the backup whose manifest it read (False: no such
    backup recorded, or its manifest changed since)."""
    with conn.cursor() as cur:
        changed = cur.execute(
            "UPDATE furet.backups SET restore_tested_at = NOW(3), restore_result = %s, "
            "restore_detail = %s WHERE host = %s AND path = %s AND manifest_sha256 = %s",
            (result, detail, host, path, manifest_sha256))
    conn.commit()
    return bool(changed)


def latest_backups(conn: pymysql.connections.Connection) -> dict[str, BackupRow]:
    """The newest backup of each kind."""
    rows = query(conn, "SELECT backup_id, kind, host, path, manifest_sha256, "
                       "TIMESTAMPDIFF(MICROSECOND, created_at, UTC_TIMESTAMP(3)) / 1e6, "
                       "COALESCE(restore_result, ''), COALESCE(restore_detail, ''), "
                       "TIMESTAMPDIFF(MICROSECOND, restore_tested_at, UTC_TIMESTAMP(3)) / 1e6 "
                       "FROM furet.backups ORDER BY created_at")
    latest: dict[str, BackupRow] = {}
    for r in rows:
        latest[str(r[1])] = BackupRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                                      float(r[5]), str(r[6]), str(r[7]),
                                      None if r[8] is None else float(r[8]))
    return latest
