"""Integer keys with big gaps (snowflake-like 64-bit ids), on real servers.

Cut by arithmetic on MIN/MAX, such a key made one chunk per ``chunk_rows`` of its span:
about 10^15 chunks planned in memory for a few thousand rows. furet cuts a sparse integer
key by keyset seeks like any other key (``plan.integer_key_is_dense``): a handful of chunks,
every row copied, and for a table without a version the open first and last chunks also
cover target rows outside the source's span (deleted there, deleted here). Verify cuts
them by rows as well (its ranges of a sparse span would be almost all empty).
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest
import yaml

from migration.config import FuretConfig
from migration.db import query
from migration.engine.round import RoundOptions, run_round
from migration.verify.run import VerifyOptions, run_verify

from .conftest import Server, make_config

DB = "sparse"
ROWS = 3000
CHUNK_ROWS = 500
DDL = (
    f"CREATE DATABASE IF NOT EXISTS {DB}",
    f"""CREATE TABLE {DB}.event (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL,
        updated_at DATETIME(3) NOT NULL, KEY (updated_at))""",
    f"""CREATE TABLE {DB}.device (
        id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(32) NOT NULL)""",
)
FLOW = {
    "name": "sparse",
    "source": {"server": "legacy", "database": DB},
    "target": {"kind": "mariadb", "server": "target", "database": DB},
    "tables": [
        {"source": "event", "key": "id", "version": "updated_at",
         "targets": [{"table": "event", "columns": {c: c for c in ("id", "kind",
                                                                    "updated_at")}}]},
        {"source": "device", "key": "id", "version": "none", "deletes": "propagate",
         "targets": [{"table": "device", "columns": {"id": "id", "name": "name"}}]},
    ],
}


def _rows(server: Server, table: str) -> list[tuple]:
    with contextlib.closing(server.root()) as conn:
        return query(conn, f"SELECT * FROM {DB}.{table} ORDER BY id")


def _verify_sees_one_changed_device(config: FuretConfig, flow: Path, target: Server) -> None:
    """Verify agrees; then, one device's name changed on the target, it finds that row
    alone (the next round of this table without a version copies it back)."""
    report = run_verify(config, VerifyOptions(str(flow)))
    assert all(t.agrees for t in report.tables), [t.name for t in report.tables if not t.agrees]
    with contextlib.closing(target.root()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {DB}.device ORDER BY id LIMIT 1 OFFSET 7")
        changed, = cur.fetchone()
        cur.execute(f"UPDATE {DB}.device SET name = 'changed' WHERE id = %s", (changed,))
    diffs = [d for t in run_verify(config, VerifyOptions(str(flow))).tables for d in t.diffs]
    assert [(d.kind, d.key, d.columns) for d in diffs] == [("different", changed, ["name"])]


@pytest.fixture
def sparse_flow(fresh: dict[str, Server], tmp_path: Path) -> Path:
    seed = int(os.environ.get("FURET_TEST_SEED", random.randrange(1 << 30)))
    print(f"sparse-keys seed {seed} (FURET_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    for role in ("legacy", "target"):
        with contextlib.closing(fresh[role].root()) as conn, conn.cursor() as cur:
            for ddl in DDL:
                cur.execute(ddl)
    # snowflake-like ids: a millisecond clock in the high bits, a sequence in the low ones
    events = sorted({(rng.randrange(1 << 40, 1 << 41) << 22) | rng.randrange(1 << 12)
                     for _ in range(ROWS)})
    devices = sorted({rng.randrange(-(1 << 62), 1 << 62) for _ in range(ROWS)})
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {DB}.event VALUES (%s, %s, NOW(3) - INTERVAL 1 HOUR)",
                        [(i, rng.choice(("view", "click", "buy"))) for i in events])
        cur.executemany(f"INSERT INTO {DB}.device VALUES (%s, %s)",
                        [(i, f"d{n}") for n, i in enumerate(devices)])
        cur.execute(f"ANALYZE TABLE {DB}.event, {DB}.device")
        cur.fetchall()
    path = tmp_path / "sparse.yml"
    path.write_text(yaml.safe_dump(FLOW))
    return path


def test_a_sparse_integer_key_is_cut_by_rows_not_by_span(fresh: dict[str, Server],
                                                         sparse_flow: Path) -> None:
    config = make_config(fresh, chunk_rows=CHUNK_ROWS, overlap_ms=1000, safety_lag_ms=0)
    first = run_round(config, RoundOptions(str(sparse_flow)))
    assert first.kind == "full" and first.rows_quarantined == 0
    assert {t.source_table: t.rows_written for t in first.tables} == {
        "event": len(_rows(fresh["legacy"], "event")),
        "device": len(_rows(fresh["legacy"], "device"))}
    with contextlib.closing(fresh["target"].root()) as conn:
        planned = query(conn, "SELECT source_table, COUNT(*) FROM furet.chunks WHERE "
                              "flow = 'sparse' AND round_no = 1 GROUP BY source_table")
    # keyset seeks: one chunk per CHUNK_ROWS rows, plus the open last one
    assert {t: int(n) for t, n in planned} == {
        t: len(_rows(fresh["legacy"], t)) // CHUNK_ROWS + 1 for t in ("event", "device")}
    for table in ("event", "device"):
        assert _rows(fresh["legacy"], table) == _rows(fresh["target"], table), table
    # verify cuts the sparse keys by rows too, and sees one changed row
    _verify_sees_one_changed_device(config, sparse_flow, fresh["target"])
    # the lowest and the highest device go on the source: the next round (sync chunks of
    # a table without a version) deletes them on the target, at both open ends
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {DB}.device ORDER BY id LIMIT 1")
        cur.execute(f"DELETE FROM {DB}.device ORDER BY id DESC LIMIT 1")
        cur.execute(f"UPDATE {DB}.event SET kind = 'refund', updated_at = NOW(3) "
                    "ORDER BY id DESC LIMIT 10")
    second = run_round(config, RoundOptions(str(sparse_flow)))
    tables = {t.source_table: t for t in second.tables}
    assert tables["device"].rows_deleted == 2
    assert tables["event"].rows_written >= 10
    for table in ("event", "device"):
        assert _rows(fresh["legacy"], table) == _rows(fresh["target"], table), table
    # verify cuts the sparse keys by rows too, and sees one changed row
    _verify_sees_one_changed_device(config, sparse_flow, fresh["target"])
