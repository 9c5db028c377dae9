"""The ledger's schema version: a target written by furet 0.1 is upgraded in place.

furet 0.1 created the ledger below (copied verbatim from its migration/engine/ledger.py)
with no version table. The upgrade must keep every recorded round, so that the next round
continues from the old watermarks, and record which furet ran each round from then on.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pymysql
import pytest

from migration import __version__
from migration.db import connection, query
from migration.engine import ledger
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.seed import seed

from .conftest import make_config

pytestmark = pytest.mark.integration

# furet 0.1's ledger, as it created it (CREATE DATABASE first).
FURET_0_1_LEDGER = (
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


TABLES = ("rounds", "round_tables", "chunks", "quarantine")


def _create_table(conn: pymysql.connections.Connection, database: str, table: str) -> str:
    text = query(conn, f"SHOW CREATE TABLE `{database}`.`{table}`")[0][1]
    return re.sub(r" AUTO_INCREMENT=\d+", "", str(text))  # the counter, not the schema


def _furet_0_1_ledger_in(conn: pymysql.connections.Connection, database: str) -> None:
    with conn.cursor() as cur:
        for statement in FURET_0_1_LEDGER:
            cur.execute(statement.replace("furet", database, 1) if statement.startswith(
                "CREATE DATABASE") else statement.replace("furet.", f"{database}.", 1))


def _as_furet_0_1_left_it(conn: pymysql.connections.Connection) -> None:
    """Take back what versions 2 to 7 added: the ledger is then exactly what 0.1 created
    (the test checks it against 0.1's DDL), with the rounds it recorded."""
    with conn.cursor() as cur:
        cur.execute("DROP TABLE furet.deferred_indexes")
        cur.execute("DROP TABLE furet.backups")
        cur.execute("DROP TABLE furet.cutover_steps")
        cur.execute("DROP TABLE furet.cutover_runs")
        cur.execute("DROP TABLE furet.locks")
        cur.execute("ALTER TABLE furet.quarantine MODIFY row_key VARCHAR(512) NOT NULL, "
                    "DROP INDEX uq_quarantine_key, ADD UNIQUE KEY uq_quarantine_row "
                    "(flow, source_table, row_key, version), DROP COLUMN key_hash")
        cur.execute("ALTER TABLE furet.chunks MODIFY key_column VARCHAR(64) NOT NULL, "
                    "MODIFY key_lo VARCHAR(255) NULL, MODIFY key_hi VARCHAR(255) NULL, "
                    "MODIFY cursor_key VARCHAR(255) NULL")
        cur.execute("ALTER TABLE furet.round_tables DROP COLUMN version_type")
        cur.execute("ALTER TABLE furet.chunks DROP COLUMN rows_deleted")
        cur.execute("ALTER TABLE furet.quarantine MODIFY row_key VARCHAR(255) NOT NULL")
        cur.execute("DROP TABLE furet.ledger_schema")
        cur.execute("ALTER TABLE furet.rounds DROP COLUMN furet_version")


def test_furet_0_1_ledger_is_upgraded_in_place(fresh: dict[str, Any]) -> None:
    seed(fresh["legacy"].settings(), 300)
    config = make_config(fresh)
    first = run_round(config, RoundOptions("runtime"))
    assert first.kind == "full" and first.furet_version == __version__
    with connection(fresh["target"].settings()) as conn:
        assert ledger.schema_version(conn) == ledger.LEDGER_VERSION == 7
        _as_furet_0_1_left_it(conn)
        _furet_0_1_ledger_in(conn, "furet_0_1")
        try:
            for table in TABLES:  # what remains is byte for byte 0.1's ledger
                assert _create_table(conn, "furet", table) == \
                    _create_table(conn, "furet_0_1", table), table
        finally:
            query(conn, "DROP DATABASE furet_0_1")
        assert ledger.schema_version(conn) == 1
        marks = dict(query(conn, "SELECT source_table, watermark FROM furet.round_tables "
                                 "WHERE flow = 'runtime' AND round_no = 1"))

    second = run_round(config, RoundOptions("runtime"))  # upgrades, then continues
    assert second.round_no == 2 and second.kind == "window"
    assert {t.source_table: t.window_lo for t in second.tables} == {
        table: mark - config.rounds.overlap_ms for table, mark in marks.items()}
    assert second.furet_version == __version__
    with connection(fresh["target"].settings()) as conn:
        assert ledger.schema_version(conn) == 7
        report = ledger.status_report(conn, "runtime")
        assert [(r.round_no, r.furet_version) for r in report.rounds] == [
            (1, None), (2, __version__)]           # 0.1 did not record its version
        assert report.rounds[0].rows_read == first.rows_read
        assert ledger.ensure_ledger(conn) == 7    # up to date: nothing to do


def test_a_ledger_from_a_newer_furet_is_refused(fresh: dict[str, Any]) -> None:
    with connection(fresh["target"].settings()) as conn:
        assert ledger.ensure_ledger(conn) == 0    # none before: created
        query(conn, "UPDATE furet.ledger_schema SET version = 99 WHERE id = 1")
        with pytest.raises(FuretError, match=f"version 99; this furet .* knows up to "
                                             f"{ledger.LEDGER_VERSION}: upgrade furet"):
            ledger.ensure_ledger(conn)
        with contextlib.suppress(Exception):
            query(conn, "DROP DATABASE furet")
