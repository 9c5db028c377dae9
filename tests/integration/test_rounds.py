"""Rounds against two real MariaDB servers: traffic, freeze, resume after kill -9.

Must-show of issue 5 for the Galera target: rounds 1..3 under concurrent web-app traffic,
freeze and final round leave every legacy row in the target with its latest version; a
round killed with SIGKILL in the middle of round 1 and of round 2 resumes to the same
result, and the ledger shows that no batch was applied twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from migration.db import connection, query, server_now_ms
from migration.engine.round import RoundOptions, run_round
from migration.legacy.freeze import freeze
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, run_traffic
from tests.helpers import BIN, REPO

from .compare import diff_runtime, diff_table
from .conftest import APP_USER, PASSWORD, furet_env, make_config

pytestmark = pytest.mark.integration


def _ledger(servers: dict, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with connection(servers["target"].settings()) as conn:
        return query(conn, sql, args)


def _assert_identical(servers: dict) -> None:
    diffs = diff_runtime(servers["legacy"].settings(), servers["target"].settings())
    for table, diff in diffs.items():
        assert not diff.missing, f"{table}: rows missing in target: {sorted(diff.missing)[:10]}"
        assert not diff.stale, f"{table}: stale rows in target: {sorted(diff.stale)[:10]}"
        assert not diff.extra, f"{table}: rows in target not in source: {sorted(diff.extra)[:10]}"
        assert diff.target_rows == diff.source_rows - len(diff.quarantined), table


def test_rounds_under_traffic_then_freeze_and_final_round(fresh: dict) -> None:
    legacy = fresh["legacy"].settings()
    seed(legacy, 3000)
    config = make_config(fresh, overlap_ms=5000, safety_lag_ms=300)
    reports: list[TrafficReport] = []
    traffic = threading.Thread(target=lambda: reports.append(run_traffic(
        fresh["legacy"].settings(APP_USER, PASSWORD), rate=60, duration=120, seed=7,
        late_share=0.2, late_ms=(200, 1500))))
    traffic.start()
    try:
        summaries = []
        for _ in range(3):
            summaries.append(run_round(config, RoundOptions("runtime")))
            time.sleep(1.0)
        assert [s.kind for s in summaries] == ["full", "window", "window"]
        assert all(s.rows_read > 0 for s in summaries)
        freeze(legacy, timeout_s=30)
        traffic.join(30)
        assert not traffic.is_alive()
        final = run_round(config, RoundOptions("runtime", final=True))
    finally:
        if traffic.is_alive():
            freeze(legacy)
            traffic.join(30)
    report = reports[0]
    assert report.stopped_by == "read_only"
    assert report.operations > 100 and report.late_commits > 10, report
    assert final.final and final.status == "done"
    _assert_identical(fresh)

    # The new ETL from the Galera runtime into the back office: ts column, every quote.
    bo = run_round(config, RoundOptions("rt_bo"))
    assert bo.status == "done"
    target = fresh["target"].settings()
    with connection(target) as conn:
        missing = query(conn, "SELECT COUNT(*) FROM lf_runtime.quote q LEFT JOIN lf_bo.bo_quote "
                              "b ON b.uid = q.uid AND b.ts = q.updated_ts AND b.status = "
                              "q.status WHERE b.uid IS NULL")[0][0]
        assert missing == 0
        assert query(conn, "SELECT COUNT(*) FROM lf_bo.bo_quote WHERE ref_time_id IS NOT NULL"
                     )[0][0] == 0


def _furet_round(servers: dict, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "furet"), "round", "--flow", "runtime", "--no-progress",
                             *args], cwd=REPO, env=furet_env(servers), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(servers: dict, proc: subprocess.Popen[str], round_no: int,
               min_rows: int, timeout: float = 60) -> int:
    """SIGKILL ``proc`` once round ``round_no`` has checkpointed ``min_rows`` rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"round ended before the kill: {proc.communicate()}"
        rows = _ledger(servers, "SELECT COALESCE(SUM(rows_read), 0) FROM furet.chunks WHERE "
                                "flow = 'runtime' AND round_no = %s", (round_no,)) \
            if _ledger(servers, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                "table_schema = 'furet' AND table_name = 'chunks'")[0][0] else []
        done = int(rows[0][0]) if rows else 0
        if done >= min_rows:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            return done
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"round {round_no} did not reach {min_rows} rows in {timeout}s")


def _assert_each_batch_once(servers: dict, round_no: int, expected: dict[str, int]) -> None:
    rows = _ledger(servers, "SELECT source_table, COUNT(*), SUM(status = 'done'), SUM(rows_read),"
                            " MAX(attempts) FROM furet.chunks WHERE flow = 'runtime' AND "
                            "round_no = %s GROUP BY source_table", (round_no,))
    by_table = {r[0]: r[1:] for r in rows}
    for table, count in expected.items():
        chunks, done, read, _ = by_table[table]
        assert done == chunks, f"{table}: {chunks - done} chunks not done"
        # every batch is checkpointed in the transaction that writes it: a batch applied
        # twice would count its rows twice
        assert int(read) == count, f"{table}: ledger read {read} rows, source has {count}"
    assert max(int(r[3]) for r in by_table.values()) >= 2, "no chunk was interrupted"
    runs = _ledger(servers, "SELECT invocations, status FROM furet.rounds WHERE flow = 'runtime' "
                            "AND round_no = %s", (round_no,))
    assert runs == [(2, "done")]


def test_kill_9_in_round_1_and_round_2_then_resume(fresh: dict) -> None:
    legacy = fresh["legacy"].settings()
    seed(legacy, 4000)
    with connection(legacy) as conn:
        counts = {t: int(query(conn, f"SELECT COUNT(*) FROM lf_runtime.{t}")[0][0])
                  for t in ("customer", "quote", "offer")}
    total = sum(counts.values())

    slow = ("--workers", "2", "--chunk-rows", "1000", "--batch-rows", "200",
            "--max-rows-per-second", "1500")
    killed_at = _kill_when(fresh, _furet_round(fresh, *slow), 1, total // 3)
    assert killed_at < total
    resumed = subprocess.run([str(BIN / "furet"), "round", "--flow", "runtime", "--no-progress",
                              "--json"], cwd=REPO, env=furet_env(fresh), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert '"resumed": true' in resumed.stdout
    _assert_each_batch_once(fresh, 1, counts)
    _assert_identical(fresh)

    # Changes for round 2: half the quotes and a third of the offers, stamped in the past
    # second so that they are inside round 2's window.
    with connection(legacy, "lf_runtime") as conn:
        now = server_now_ms(conn)
        query(conn, "UPDATE quote SET status = 'expired', updated_ts = %s - (id %% 997) "
                    "WHERE id %% 2 = 0", (now,))
        query(conn, "UPDATE offer SET price_cents = price_cents + 1, updated_ts = %s - (id %% 991)"
                    " WHERE id %% 3 = 0 AND price_cents IS NOT NULL", (now,))
    time.sleep(0.01)
    changed = 2000 + counts["offer"] // 3 - 10
    proc = _furet_round(fresh, *slow, "--safety-lag-ms", "0")
    _kill_when(fresh, proc, 2, changed // 3)
    resumed = subprocess.run([str(BIN / "furet"), "round", "--flow", "runtime", "--no-progress",
                              "--safety-lag-ms", "0"], cwd=REPO, env=furet_env(fresh),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming round 2" in resumed.stderr
    lo, hi = _ledger(fresh, "SELECT window_lo, window_hi FROM furet.round_tables WHERE flow = "
                            "'runtime' AND round_no = 2 AND source_table = 'quote'")[0]
    with connection(legacy) as conn:
        in_window = {t: int(query(conn, f"SELECT COUNT(*) FROM lf_runtime.{t} WHERE updated_ts "
                                        "> %s AND updated_ts <= %s", (lo, hi))[0][0])
                     for t in ("customer", "quote", "offer")}
    assert in_window["quote"] >= 2000
    _assert_each_batch_once(fresh, 2, in_window)
    _assert_identical(fresh)
    diff = diff_table(legacy, "lf_runtime", fresh["target"].settings(), "lf_runtime", "quote",
                      ["id", "status", "updated_ts"])
    assert diff.lost == 0
