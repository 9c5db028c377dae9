"""The web app of `furet legacy traffic --through-cutover` against a real server: it lives
through a write freeze (and a server going away) the way an application behind the cutover
endpoint does, and its log of acknowledged writes is exactly what the server holds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from migration.db import connection, query
from migration.legacy.freeze import freeze, unfreeze
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, check_acked, read_acked, run_traffic

from .conftest import APP_USER, PASSWORD

pytestmark = pytest.mark.integration


def test_traffic_retries_through_a_freeze_and_logs_only_acknowledged_writes(
        fresh: dict, tmp_path: Path) -> None:
    legacy = fresh["legacy"].settings()
    seed(legacy, 300)
    acked = tmp_path / "acked.jsonl"
    stop = threading.Event()
    reports: list[TrafficReport] = []
    traffic = threading.Thread(target=lambda: reports.append(run_traffic(
        fresh["legacy"].settings(APP_USER, PASSWORD), rate=80, duration=60, seed=11,
        late_share=0.2, stop=stop, through_cutover=True, acked=acked)))
    traffic.start()
    try:
        time.sleep(2.0)
        freeze(legacy, timeout_s=30)
        frozen_at = time.monotonic()
        time.sleep(3.0)
        with connection(legacy, "lf_runtime") as conn:
            during = query(conn, "SELECT MAX(updated_ts) FROM quote")[0][0]
        unfreeze(legacy)
        frozen_s = time.monotonic() - frozen_at
        time.sleep(2.0)
    finally:
        stop.set()
        traffic.join(30)
        unfreeze(legacy)
    assert not traffic.is_alive()
    report = reports[0]
    assert report.stopped_by == "stop", report
    # It kept going: writes before and after the freeze, failed attempts during it, and the
    # longest time without an acknowledged write covers the freeze.
    assert report.errors > 0, report
    assert report.longest_gap_s >= frozen_s - 0.5, (report.longest_gap_s, frozen_s)
    assert report.longest_gap_s < frozen_s + 2.0, (report.longest_gap_s, frozen_s)
    writes = list(read_acked(acked))
    assert len({w.ts for w in writes}) > 100
    assert any(w.ts > during for w in writes), "no acknowledged write after the freeze"
    # Nothing acknowledged was lost, and the check can fail: a version from the future is
    # reported missing.
    checked = check_acked(legacy, acked)
    assert checked.checked == len(writes) and checked.missing == []
    with acked.open("a") as log:
        log.write('{"table": "quote", "key": "id", "value": 1, "ts": 99999999999999, '
                  '"rows": 1, "server": "x"}\n')
    assert len(check_acked(legacy, acked).missing) == 1


def test_the_app_never_waits_on_its_own_held_transactions(fresh: dict) -> None:
    """Rows a held (late) transaction inserted are locked until it commits: the app must
    not pick them before, or its one thread waits on itself for the lock wait timeout
    (5 s without a commit: a reverse-rounds run saw 84 transactions in 5 s instead of 200).
    A small table and many late transactions make such a pick likely within seconds."""
    seed(fresh["legacy"].settings(), 8)
    report = run_traffic(fresh["legacy"].settings(APP_USER, PASSWORD), rate=150, duration=6,
                         seed=5, late_share=0.6, late_ms=(300, 800))
    assert report.stopped_by == "duration", report
    assert report.rolled_back == 0, report  # no lock wait timeout
    assert report.longest_gap_s < 2.0, report
    assert report.committed > 400, report
