"""Reverse rounds (issue 13 item 4): after the switch the application writes the target;
reverse rounds copy those writes back into the frozen legacy, so that a rollback loses
nothing.

The cutover first: forward rounds under legacy traffic, the legacy frozen, the final
round. Then the application on the target (``furet legacy traffic`` pointed at it, plus
same-millisecond updates and deletes), reverse rounds while it writes, the rollback's
freeze (the traffic stopped: the endpoint refuses it), the reverse final round and the
reverse verify, row for row. furet's legacy user has the production grants a reverse round
needs (SELECT, INSERT, UPDATE, DELETE on the data, READ_ONLY ADMIN, PROCESS): its writes go
through the legacy's read_only, the application's do not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from migration.config import FuretConfig
from migration.db import connection, query, server_now_ms
from migration.engine.results import RoundSummary
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.freeze import freeze, read_only
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, run_traffic
from migration.verify.run import VerifyOptions, run_verify
from tests.helpers import BIN, REPO

from .compare import RUNTIME_COLUMNS, diff_table, quarantined_keys
from .conftest import APP_USER, PASSWORD, furet_env, make_config

pytestmark = pytest.mark.integration

BACK_USER = "furet_back"       # furet's legacy user as production grants it for reverse rounds
NO_ADMIN_USER = "furet_noadm"  # the same without READ_ONLY ADMIN
OVERLAP_MS = 2000


def _legacy_user(servers: dict, name: str, read_only_admin: bool) -> None:
    with contextlib.closing(servers["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '{PASSWORD}'")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON lf_runtime.* TO '{name}'@'%'")
        cur.execute(f"GRANT PROCESS{', READ_ONLY ADMIN' if read_only_admin else ''} ON *.* "
                    f"TO '{name}'@'%'")


def _configs(servers: dict, user: str = BACK_USER) -> tuple[FuretConfig, FuretConfig]:
    """(forward config, reverse config): the same, but the legacy reached as ``user``."""
    forward = make_config(servers, overlap_ms=OVERLAP_MS, safety_lag_ms=300)
    return forward, dataclasses.replace(forward, legacy=servers["legacy"].settings(user,
                                                                                   PASSWORD))


def _q(settings: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with connection(settings) as conn:
        return query(conn, sql, args)


def _window(servers: dict, flow: str, round_no: int, table: str) -> tuple[int, int]:
    lo, hi = _q(servers["target"].settings(), "SELECT window_lo, window_hi FROM "
                "furet.round_tables WHERE flow = %s AND round_no = %s AND source_table = %s",
                (flow, round_no, table))[0]
    return int(lo), int(hi)


def _read(summary: RoundSummary, table: str) -> int:
    return next(t.rows_read for t in summary.tables if t.source_table == table)


def _cutover(servers: dict, config: FuretConfig, quotes: int) -> RoundSummary:
    """Forward rounds under legacy traffic, the freeze, the final round: the switch."""
    legacy = servers["legacy"].settings()
    seed(legacy, quotes)
    traffic = threading.Thread(target=run_traffic, args=(
        servers["legacy"].settings(APP_USER, PASSWORD), 50, 60),
        kwargs={"seed": 3, "late_share": 0.2})
    traffic.start()
    try:
        run_round(config, RoundOptions("runtime"))
        time.sleep(1.0)
        run_round(config, RoundOptions("runtime"))
    finally:
        freeze(legacy, timeout_s=30)
        traffic.join(30)
    return run_round(config, RoundOptions("runtime", final=True))


def _app_writes(target: Any) -> int:
    """Same-millisecond writes as the application makes them: one stamp on 400 offers,
    and quotes changed twice within one millisecond (the second change must win); the
    stamp."""
    with connection(target, "lf_runtime") as conn:
        stamp = server_now_ms(conn)
        query(conn, "UPDATE offer SET price_cents = price_cents + 7, updated_ts = %s "
                    "WHERE id %% 13 = 0 ORDER BY id LIMIT 400", (stamp,))
        query(conn, "UPDATE quote SET status = 'chosen', updated_ts = %s WHERE id %% 29 = 0",
              (stamp,))
        query(conn, "UPDATE quote SET status = 'expired', premium_cents = 4242, "
                    "updated_ts = %s WHERE id %% 29 = 0", (stamp,))
    return stamp


def test_reverse_rounds_give_the_legacy_back_every_write_made_after_the_switch(
        fresh: dict) -> None:
    started = time.monotonic()
    _legacy_user(fresh, BACK_USER, read_only_admin=True)
    forward, back = _configs(fresh)
    galera, legacy = fresh["target"].settings(), fresh["legacy"].settings()
    final = _cutover(fresh, forward, 2000)
    assert final.final and final.status == "done"
    forward_rounds = _q(galera, "SELECT COUNT(*) FROM furet.rounds WHERE flow = 'runtime'")
    switch_mark = {t.source_table: int(t.watermark) for t in final.tables}
    cutover_s = time.monotonic() - started

    # --- after the switch: the application writes the target ------------------------
    app = fresh["target"].settings(APP_USER, PASSWORD)
    before = run_traffic(app, 40, 5, seed=11, late_share=0.2)
    assert before.stopped_by == "duration" and before.committed > 100, before
    stamp = _app_writes(app)
    gone = [r[0] for r in _q(galera, "SELECT id FROM lf_runtime.offer WHERE id MOD 31 = 0 "
                                     "ORDER BY id LIMIT 10")]
    _q(app, f"DELETE FROM lf_runtime.offer WHERE id IN ({','.join(map(str, gone))})")
    time.sleep(0.4)  # past the safety lag

    # --- the first reverse round reads the window since the switch, not the tables ----
    first = run_round(back, RoundOptions("runtime", reverse=True))
    assert (first.flow, first.round_no, first.kind) == ("runtime.reverse", 1, "window")
    assert first.rows_quarantined == 0
    totals = {t: int(_q(galera, f"SELECT COUNT(*) FROM lf_runtime.{t}")[0][0])
              for t in RUNTIME_COLUMNS}
    for table in RUNTIME_COLUMNS:
        lo, hi = _window(fresh, "runtime.reverse", 1, table)
        assert lo == switch_mark[table] - OVERLAP_MS  # the switch, minus the overlap
        in_window = int(_q(galera, f"SELECT COUNT(*) FROM lf_runtime.{table} WHERE "
                                   "updated_ts > %s AND updated_ts <= %s", (lo, hi))[0][0])
        after_switch = int(_q(galera, f"SELECT COUNT(*) FROM lf_runtime.{table} WHERE "
                                      "updated_ts > %s", (switch_mark[table],))[0][0])
        assert _read(first, table) == in_window, table
        # what the application wrote since the switch, plus the overlap's band
        assert after_switch <= _read(first, table) <= after_switch + 200, table
        assert _read(first, table) < totals[table] // 5, (table, _read(first, table))
    with connection(legacy) as conn:
        assert read_only(conn)  # still frozen, and written anyway

    # --- reverse rounds while the application writes ----------------------------------
    stop = threading.Event()
    reports: list[TrafficReport] = []
    traffic = threading.Thread(target=lambda: reports.append(run_traffic(
        app, 40, 120, seed=12, late_share=0.2, stop=stop)))
    traffic_started = time.monotonic()
    traffic.start()
    try:
        second = run_round(back, RoundOptions("runtime", reverse=True))
        # a change and a second one in the same millisecond, the round between them (the
        # traffic never updates customers)
        with connection(app, "lf_runtime") as conn:
            stamp7 = server_now_ms(conn)
            query(conn, "UPDATE customer SET full_name = 'Premier', updated_ts = %s "
                        "WHERE id = 7", (stamp7,))
        time.sleep(0.4)
        third = run_round(back, RoundOptions("runtime", reverse=True))
        assert _q(legacy, "SELECT full_name FROM lf_runtime.customer WHERE id = 7") == \
            [("Premier",)]
        _q(app, "UPDATE lf_runtime.customer SET full_name = 'Second', updated_ts = %s "
                "WHERE id = 7", (stamp7,))
        # rows the reverse rounds copied, then deleted by the application
        copied = [r[0] for r in _q(legacy, "SELECT id FROM lf_runtime.offer WHERE updated_ts "
                                           "> %s ORDER BY id DESC LIMIT 5",
                                   (switch_mark["offer"],))]
        assert len(copied) == 5
        gone += copied
        _q(app, f"DELETE FROM lf_runtime.offer WHERE id IN ({','.join(map(str, copied))})")
        time.sleep(0.3)
        assert second.rows_read > 0 and third.rows_read > 0
        assert (second.kind, third.kind) == ("window", "window")
        # the final round needs the source frozen: furet cannot see the endpoint
        with pytest.raises(FuretError, match="--assume-frozen"):
            run_round(back, RoundOptions("runtime", reverse=True, final=True))
        # told it is frozen while the application still writes: what furet sees refuses
        with pytest.raises(FuretError) as still:
            run_round(back, RoundOptions("runtime", reverse=True, final=True,
                                         assume_frozen=True))
        assert "target 127.0.0.12:3306" in str(still.value)
        assert "still" in str(still.value), still.value
        # the application keeps writing for 4 s at least (40 tx/s), however fast the
        # rounds above were: the check below is about the rounds running under traffic
        time.sleep(max(0.0, 4.0 - (time.monotonic() - traffic_started)))
    finally:
        stop.set()  # the rollback's freeze: the endpoint refuses the application
        traffic.join(30)
    assert reports and reports[0].committed > 100, reports

    # --- the reverse final round, then the reverse verify -----------------------------
    t0 = time.monotonic()
    last = run_round(back, RoundOptions("runtime", reverse=True, final=True,
                                        assume_frozen=True))
    final_s = time.monotonic() - t0
    assert last.final and last.status == "done" and last.rows_quarantined == 0
    assert _q(legacy, "SELECT full_name, updated_ts FROM lf_runtime.customer WHERE id = 7") \
        == [("Second", stamp7)]
    # the quotes changed twice in one millisecond and not since: the second change
    twice = _q(legacy, "SELECT COUNT(*), MIN(status), MAX(status), MIN(premium_cents), "
                       "MAX(premium_cents) FROM lf_runtime.quote WHERE id %% 29 = 0 "
                       "AND updated_ts = %s", (stamp,))[0]
    assert twice[0] > 20 and twice[1:] == ("expired", "expired", 4242, 4242), twice

    report = run_verify(back, VerifyOptions("runtime", reverse=True, workers=3))
    assert report.flow == "runtime.reverse" and report.exit_code == 1
    by_table = {t.source_table: t for t in report.tables}
    for table in ("customer", "quote"):
        assert by_table[table].agrees, by_table[table]
    assert sum(t.quarantined for t in report.tables) == sum(
        len(quarantined_keys(galera, "runtime", t)) for t in RUNTIME_COLUMNS) > 0
    offers = by_table["offer"]
    # deletes are handled as forward rounds handle them for a versioned table: kept, and
    # named by verify as extra rows of the legacy; --repair --delete-extra removes them
    assert (offers.missing, offers.different, offers.extra) == (0, 0, len(gone))
    assert sorted(int(d.key) for d in offers.diffs) == sorted(gone)
    repaired = run_verify(back, VerifyOptions("runtime", reverse=True, workers=3,
                                              repair=True, delete_extra=True))
    assert repaired.exit_code == 0
    assert run_verify(back, VerifyOptions("runtime", reverse=True, workers=3)).exit_code == 0
    for table, columns in RUNTIME_COLUMNS.items():
        diff = diff_table(galera, "lf_runtime", legacy, "lf_runtime", table, columns,
                          flow="runtime.reverse")
        assert (diff.missing, diff.stale) == (set(), set()), table
        # the legacy rows the cutover quarantined (dirt the target refused) are the only
        # rows the target lacks: never migrated, kept as they were, not deleted by repair
        kept = {int(k) for k in quarantined_keys(galera, "runtime", table)}
        assert diff.extra == kept, (table, sorted(diff.extra ^ kept)[:10])
        assert diff.source_rows == diff.target_rows - len(kept), table

    # the ledger: forward rounds untouched, reverse rounds apart; nothing of furet on the
    # legacy, which stayed read-only throughout
    assert _q(galera, "SELECT COUNT(*) FROM furet.rounds WHERE flow = 'runtime'") == \
        forward_rounds
    assert [r[0] for r in _q(galera, "SELECT round_no FROM furet.rounds WHERE flow = "
                                     "'runtime.reverse' AND status = 'done' ORDER BY 1")] \
        == list(range(1, last.round_no + 1))
    assert _q(fresh["legacy"].settings(), "SELECT COUNT(*) FROM information_schema.schemata "
                                          "WHERE schema_name = 'furet'") == [(0,)]
    with connection(legacy) as conn:
        assert read_only(conn)
    print(f"\nreverse rounds: cutover {cutover_s:.1f}s; round 1 read "
          f"{first.rows_read} rows of {sum(totals.values())} in {first.seconds:.2f}s; "
          f"traffic after the switch {before.committed} + {reports[0].committed} transactions; "
          f"final {last.rows_read} rows in {final_s:.2f}s; total "
          f"{time.monotonic() - started:.1f}s; final under traffic refused: {still.value}")


def test_reverse_refusals_and_a_newer_legacy_row_left_alone(fresh: dict) -> None:
    _legacy_user(fresh, BACK_USER, read_only_admin=True)
    _legacy_user(fresh, NO_ADMIN_USER, read_only_admin=False)
    forward, back = _configs(fresh)
    _, no_admin = _configs(fresh, NO_ADMIN_USER)
    galera, legacy = fresh["target"].settings(), fresh["legacy"].settings()
    seed(legacy, 300)
    run_round(forward, RoundOptions("runtime"))
    # before the cutover's final round there is no switch to start from
    with pytest.raises(FuretError, match=r"flow runtime\.reverse: .*round 1 of flow runtime "
                                         r"is not final"):
        run_round(back, RoundOptions("runtime", reverse=True))
    freeze(legacy)
    final = run_round(forward, RoundOptions("runtime", final=True))
    switch = {t.source_table: int(t.watermark) for t in final.tables}

    # a legacy user without READ_ONLY ADMIN cannot write the frozen legacy: one line, before
    # any round is planned
    with pytest.raises(FuretError) as refused:
        run_round(no_admin, RoundOptions("runtime", reverse=True))
    message = str(refused.value)
    assert "legacy 127.0.0.11:3306" in message and "read-only" in message
    assert "READ_ONLY ADMIN" in message and "\n" not in message
    assert _q(galera, "SELECT COUNT(*) FROM furet.rounds WHERE flow = 'runtime.reverse'") \
        == [(0,)]

    # a legacy row newer than the target's stays as it is
    now = _q(legacy, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")[0][0]
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("UPDATE lf_runtime.quote SET status = 'chosen', premium_cents = 1, "
                    "updated_ts = %s WHERE id = 5", (now + 600_000,))
    app = fresh["target"].settings(APP_USER, PASSWORD)
    _q(app, "UPDATE lf_runtime.quote SET status = 'expired', premium_cents = 2, "
            "updated_ts = %s WHERE id IN (5, 6)", (now + 10,))
    time.sleep(0.5)
    first = run_round(back, RoundOptions("runtime", reverse=True))
    assert first.kind == "window" and _read(first, "quote") >= 2
    lo, _ = _window(fresh, "runtime.reverse", 1, "quote")
    assert lo == switch["quote"] - OVERLAP_MS
    rows = dict((r[0], r[1:]) for r in _q(legacy, "SELECT id, status, premium_cents, "
                                                   "updated_ts FROM lf_runtime.quote WHERE "
                                                   "id IN (5, 6)"))
    assert rows[5] == ("chosen", 1, now + 600_000)      # newer: not overwritten
    assert rows[6] == ("expired", 2, now + 10)           # older: brought back
    report = run_verify(back, VerifyOptions("runtime", reverse=True, tables=("quote",),
                                            repair=True))
    (quote,) = report.tables
    assert quote.different == 1 and quote.repair is not None
    assert [str(k) for k in quote.repair.shadowed] == ["5"]

    # the final reverse round, told the source is frozen, finds a row it did not read (here
    # stamped ahead of the source's clock; a write still arriving looks the same): refused
    # after the round, which the next final round completes
    ahead = now + 3000
    _q(app, "UPDATE lf_runtime.quote SET status = 'priced', updated_ts = %s WHERE id = 8",
       (ahead,))
    with pytest.raises(FuretError) as late:
        run_round(back, RoundOptions("runtime", reverse=True, final=True, assume_frozen=True))
    message = str(late.value)
    assert "\n" not in message and "target 127.0.0.12:3306 database lf_runtime table quote " \
        f"holds version {ahead}, after the round's end" in message, message
    time.sleep(max(0.0, (ahead - _q(galera, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS "
                                            "SIGNED)")[0][0]) / 1000 + 0.1))
    again = run_round(back, RoundOptions("runtime", reverse=True, final=True,
                                         assume_frozen=True))
    assert again.final and again.round_no == first.round_no + 2
    assert _q(legacy, "SELECT status, updated_ts FROM lf_runtime.quote WHERE id = 8") == \
        [("priced", ahead)]


def test_a_reverse_round_killed_with_kill_9_resumes_and_counts_each_batch_once(
        fresh: dict) -> None:
    """Rows go to the legacy, checkpoints to the target's ledger: a kill between the two
    commits writes a batch again on resume (harmless, version-aware), and the ledger counts
    it once."""
    forward, _ = _configs(fresh)
    galera, legacy = fresh["target"].settings(), fresh["legacy"].settings()
    seed(legacy, 1500)
    run_round(forward, RoundOptions("runtime"))
    freeze(legacy)
    run_round(forward, RoundOptions("runtime", final=True))
    app = fresh["target"].settings(APP_USER, PASSWORD)
    with connection(app, "lf_runtime") as conn:
        now = server_now_ms(conn)
        query(conn, "UPDATE quote SET status = 'expired', updated_ts = %s - (id %% 997)",
              (now,))
        query(conn, "UPDATE offer SET price_cents = price_cents + 3, updated_ts = %s - "
                    "(id %% 991)", (now,))
    changed = {t: int(_q(galera, f"SELECT COUNT(*) FROM lf_runtime.{t} WHERE updated_ts > "
                                 "%s", (now - 1000,))[0][0]) for t in ("quote", "offer")}
    argv = [str(BIN / "furet"), "round", "--flow", "runtime", "--reverse", "--no-progress",
            "--workers", "2", "--batch-rows", "200", "--max-rows-per-second", "1500",
            "--safety-lag-ms", "0", "--overlap-ms", str(OVERLAP_MS)]
    proc = subprocess.Popen(argv, cwd=REPO, env=furet_env(fresh), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"round ended before the kill: {proc.communicate()}"
        assert time.monotonic() < deadline, "the reverse round did not start"
        done = _q(galera, "SELECT COALESCE(SUM(rows_read), 0) FROM furet.chunks WHERE flow = "
                          "'runtime.reverse' AND round_no = 1") if _q(
            galera, "SELECT COUNT(*) FROM furet.rounds WHERE flow = 'runtime.reverse'"
        )[0][0] else [(0,)]
        if int(done[0][0]) >= sum(changed.values()) // 3:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            break
        time.sleep(0.05)
    resumed = subprocess.run(argv[:5] + ["--safety-lag-ms", "0", "--json"], cwd=REPO,
                             env=furet_env(fresh), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert '"resumed": true' in resumed.stdout and '"flow": "runtime.reverse"' in \
        resumed.stdout
    rows = _q(galera, "SELECT source_table, SUM(rows_read), MAX(attempts), SUM(status = "
                      "'done') = COUNT(*) FROM furet.chunks WHERE flow = 'runtime.reverse' "
                      "AND round_no = 1 GROUP BY source_table")
    by_table = {r[0]: r[1:] for r in rows}
    for table in ("quote", "offer"):
        lo, hi = _window(fresh, "runtime.reverse", 1, table)
        in_window = int(_q(galera, f"SELECT COUNT(*) FROM lf_runtime.{table} WHERE "
                                   "updated_ts > %s AND updated_ts <= %s", (lo, hi))[0][0])
        read, _, all_done = by_table[table]
        assert all_done and int(read) == in_window >= changed[table], table
    assert max(int(r[1]) for r in by_table.values()) >= 2, "no chunk was interrupted"
    for table, columns in RUNTIME_COLUMNS.items():
        diff = diff_table(galera, "lf_runtime", legacy, "lf_runtime", table, columns,
                          flow="runtime.reverse")
        kept = {int(k) for k in quarantined_keys(galera, "runtime", table)}
        assert (diff.missing, diff.stale, diff.extra) == (set(), set(), kept), table


TAGS_FLOW = """\
name: rev_tags
source: {server: legacy, database: rev_shop}
target: {kind: mariadb, database: rev_shop}
tables:
  - source: tag
    key: code
    version: none
    deletes: propagate
    targets:
      - table: tag
        columns: {code: code, title: title}
"""


def test_a_table_without_version_is_synced_back_deletes_included_but_never_what_the_cutover_left(
        fresh: dict, tmp_path: Any) -> None:
    """``version: none`` + ``deletes: propagate``, as forward rounds do it: every reverse
    round compares the tables by checksums, copies what differs and deletes the legacy rows
    the target lost; a legacy row the cutover quarantined (the target never held it) stays."""
    forward, _ = _configs(fresh)
    galera, legacy = fresh["target"].settings(), fresh["legacy"].settings()
    for server, title in ((fresh["legacy"], "VARCHAR(80) NULL"),
                          (fresh["target"], "VARCHAR(80) NOT NULL")):
        with contextlib.closing(server.root()) as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS rev_shop")
            cur.execute("CREATE DATABASE rev_shop")
            cur.execute(f"CREATE TABLE rev_shop.tag (code VARCHAR(20) NOT NULL PRIMARY KEY, "
                        f"title {title})")
    rows = [(f"t{i:04d}", f"title {i}") for i in range(1, 1201)]
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO rev_shop.tag VALUES (%s, %s)", rows)
        cur.execute("INSERT INTO rev_shop.tag VALUES ('q-null', NULL)")  # the target refuses
    flow = tmp_path / "rev_tags.yml"
    flow.write_text(TAGS_FLOW)
    first = run_round(forward, RoundOptions(str(flow)))
    assert first.rows_quarantined == 1
    freeze(legacy)
    run_round(forward, RoundOptions(str(flow), final=True))
    with connection(fresh["target"].settings(APP_USER, PASSWORD), "rev_shop") as conn:
        query(conn, "DELETE FROM tag WHERE code IN ('t0002', 't0900')")
        query(conn, "UPDATE tag SET title = 'changed' WHERE code = 't0003'")
        query(conn, "INSERT INTO tag VALUES ('z-new', 'made after the switch')")
    back = run_round(forward, RoundOptions(str(flow), reverse=True))
    assert (back.flow, back.kind) == ("rev_tags.reverse", "window")
    assert back.rows_deleted == 2 and back.rows_written == 2, back
    held = dict(_q(legacy, "SELECT code, title FROM rev_shop.tag"))
    assert "t0002" not in held and "t0900" not in held
    assert held["t0003"] == "changed" and held["z-new"] == "made after the switch"
    assert "q-null" in held and held["q-null"] is None    # what the cutover left behind
    assert len(held) == 1200 - 2 + 1 + 1
    report = run_verify(forward, VerifyOptions(str(flow), reverse=True))
    assert report.exit_code == 0 and report.tables[0].quarantined == 1
    assert _q(galera, "SELECT COUNT(*) FROM rev_shop.tag")[0][0] == 1200 - 2 + 1
