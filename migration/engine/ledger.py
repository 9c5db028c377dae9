"""The ledger: rounds, per-table windows, chunk checkpoints and quarantine in ``furet``.

It lives on the target, so a batch's rows, its quarantined rows and its chunk checkpoint
(cursor and counts) commit in ONE transaction: after a kill -9 the chunk resumes from the
last committed cursor, no batch is applied twice and none is skipped. The checkpoint
update is conditional on the batch number the worker expects, so two runners can never
both apply the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from migration.db import query
from migration.engine.plan import ChunkSpec

DDL = (
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


@dataclass
class Chunk:
    flow: str
    round_no: int
    source_table: str
    spec: ChunkSpec
    cursor_ts: int | None
    cursor_key: str | None
    status: str
    batches: int
    rows_read: int


@dataclass
class RoundRow:
    flow: str
    round_no: int
    strategy: str
    kind: str
    final: bool
    status: str
    now_ms: int | None


def ensure_ledger(conn: pymysql.connections.Connection) -> None:
    with conn.cursor() as cur:
        for statement in DDL:
            cur.execute(statement)


LEDGER_TABLES = ("rounds", "round_tables", "chunks", "quarantine")


def forget(conn: pymysql.connections.Connection) -> None:
    """Empty the ledger (every flow's rounds, chunks and quarantine): the next round of
    each flow is a round 1 again. For a rehearsal whose target was dropped."""
    ensure_ledger(conn)
    with conn.cursor() as cur:
        for table in LEDGER_TABLES:
            cur.execute(f"DELETE FROM furet.{table}")
    conn.commit()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def last_round(conn: pymysql.connections.Connection, flow: str) -> RoundRow | None:
    rows = query(conn, "SELECT flow, round_no, strategy, kind, final, status, now_ms "
                       "FROM furet.rounds WHERE flow = %s ORDER BY round_no DESC LIMIT 1",
                 (flow,))
    if not rows:
        return None
    f, n, strategy, kind, final, status, now_ms = rows[0]
    return RoundRow(f, n, strategy, kind, bool(final), status, now_ms)


def last_watermarks(conn: pymysql.connections.Connection, flow: str) -> dict[str, int]:
    """Watermark per source table of the last finished ``ts`` round of ``flow``."""
    rows = query(conn, "SELECT t.source_table, t.watermark FROM furet.round_tables t "
                       "JOIN furet.rounds r ON r.flow = t.flow AND r.round_no = t.round_no "
                       "WHERE t.flow = %s AND r.strategy = 'ts' AND r.status = 'done' "
                       "AND t.round_no = (SELECT MAX(round_no) FROM furet.rounds WHERE "
                       "flow = %s AND strategy = 'ts' AND status = 'done')", (flow, flow))
    return {str(table): int(mark) for table, mark in rows if mark is not None}


def create_round(conn: pymysql.connections.Connection, round_row: RoundRow, overlap_ms: int,
                 safety_lag_ms: int, windows: dict[str, tuple[int | None, int | None]],
                 chunks: dict[str, list[ChunkSpec]]) -> None:
    """Persist the whole plan of a round in one transaction (so resume finds it intact)."""
    conn.begin()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO furet.rounds (flow, round_no, strategy, kind, final, status, "
                    "now_ms, overlap_ms, safety_lag_ms, chunks) VALUES "
                    "(%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s)",
                    (round_row.flow, round_row.round_no, round_row.strategy, round_row.kind,
                     int(round_row.final), round_row.now_ms, overlap_ms, safety_lag_ms,
                     sum(len(c) for c in chunks.values())))
        for table, (lo, hi) in windows.items():
            cur.execute("INSERT INTO furet.round_tables (flow, round_no, source_table, "
                        "window_lo, window_hi, status) VALUES (%s, %s, %s, %s, %s, 'running')",
                        (round_row.flow, round_row.round_no, table, lo, hi))
        for table, specs in chunks.items():
            if specs:
                cur.executemany(
                    "INSERT INTO furet.chunks (flow, round_no, source_table, chunk_no, kind, "
                    "key_column, key_lo, key_hi, ts_lo, ts_hi) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(round_row.flow, round_row.round_no, table, s.chunk_no, s.kind,
                      s.key_column, _text(s.key_lo), _text(s.key_hi), s.ts_lo, s.ts_hi)
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
    return [Chunk(flow, round_no, table, ChunkSpec(no, kind, kcol, klo, khi, tlo, thi),
                  cts, ckey, status, batches, read)
            for table, no, kind, kcol, klo, khi, tlo, thi, cts, ckey, status, batches, read
            in rows]


def claim_chunk(conn: pymysql.connections.Connection, chunk: Chunk) -> None:
    query(conn, "UPDATE furet.chunks SET status = 'running', attempts = attempts + 1, "
                "started_at = COALESCE(started_at, NOW(3)) WHERE flow = %s AND round_no = %s "
                "AND source_table = %s AND chunk_no = %s",
          (chunk.flow, chunk.round_no, chunk.source_table, chunk.spec.chunk_no))


def checkpoint(cur: pymysql.cursors.Cursor, chunk: Chunk, cursor_ts: int | None,
               cursor_key: Any, read: int, written: int, quarantined: int) -> bool:
    """Advance the chunk cursor inside the caller's transaction; False if someone else did."""
    cur.execute("UPDATE furet.chunks SET cursor_ts = %s, cursor_key = %s, batches = batches + 1, "
                "rows_read = rows_read + %s, rows_written = rows_written + %s, "
                "rows_quarantined = rows_quarantined + %s WHERE flow = %s AND round_no = %s "
                "AND source_table = %s AND chunk_no = %s AND batches = %s AND status <> 'done'",
                (cursor_ts, _text(cursor_key), read, written, quarantined, chunk.flow,
                 chunk.round_no, chunk.source_table, chunk.spec.chunk_no, chunk.batches))
    return cur.rowcount == 1


def finish_chunk(conn: pymysql.connections.Connection, chunk: Chunk) -> None:
    query(conn, "UPDATE furet.chunks SET status = 'done', finished_at = NOW(3) "
                "WHERE flow = %s AND round_no = %s AND source_table = %s AND chunk_no = %s",
          (chunk.flow, chunk.round_no, chunk.source_table, chunk.spec.chunk_no))


def finish_round(conn: pymysql.connections.Connection, flow: str, round_no: int,
                 watermarks: dict[str, int | None]) -> dict[str, Any]:
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


def round_summary(conn: pymysql.connections.Connection, flow: str,
                  round_no: int) -> dict[str, Any]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SELECT flow, round_no, strategy, kind, final, status, now_ms, overlap_ms, "
                    "safety_lag_ms, chunks, rows_read, rows_written, rows_quarantined, "
                    "invocations, CAST(started_at AS CHAR) started_at, "
                    "CAST(finished_at AS CHAR) finished_at, seconds "
                    "FROM furet.rounds WHERE flow = %s AND round_no = %s", (flow, round_no))
        summary = dict(cur.fetchone() or {})
        cur.execute("SELECT t.source_table, t.window_lo, t.window_hi, t.watermark, t.status, "
                    "COUNT(c.chunk_no) chunks, COALESCE(SUM(c.rows_read), 0) rows_read, "
                    "COALESCE(SUM(c.rows_written), 0) rows_written, "
                    "COALESCE(SUM(c.rows_quarantined), 0) rows_quarantined "
                    "FROM furet.round_tables t LEFT JOIN furet.chunks c ON c.flow = t.flow AND "
                    "c.round_no = t.round_no AND c.source_table = t.source_table "
                    "WHERE t.flow = %s AND t.round_no = %s GROUP BY t.source_table "
                    "ORDER BY t.source_table", (flow, round_no))
        summary["tables"] = [
            {k: (int(v) if k.startswith("rows_") else v) for k, v in row.items()}
            for row in cur.fetchall()]
    return summary
