"""Round safety (issue 12, item 3) on the real loopback servers of conftest.py.

- ``--final`` refuses unless the legacy is read-only with no write in flight, and an
  unfinished non-final round resumed with ``--final`` is finished, then a final round runs;
  the in-flight count is of now, not of InnoDB's copy of ``innodb_trx`` of up to 0.1 s ago;
- the strict sql_mode and the +00:00 session time zone survive a reconnect (connections
  killed between batches, the servers' own settings made lax on purpose);
- Cassandra writes use the configured consistency: one a single node cannot give fails the
  round in one line and no checkpoint moves;
- a row committed later than the overlap allows is counted and named, not silently lost.

Each table is furet's own small schema ``rs_safe.item`` (flow written to tmp), or the
shipped ``cassandra_prod`` flow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.db import connect, query, server_now_ms
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.freeze import in_flight_writes
from migration.progress import Silent

from .conftest import Server, fresh_prod_keyspace, furet_env, make_config

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DB = "rs_safe"
SOURCE_TABLE = f"""CREATE TABLE {DB}.item (
    id INT NOT NULL PRIMARY KEY, label VARCHAR(40) NOT NULL,
    seen_at TIMESTAMP(3) NULL, updated_ts BIGINT NOT NULL, KEY ix_item_updated (updated_ts, id))"""
# the target is narrower than the source on purpose: a strict session refuses a long
# label (quarantined, "too long"), a lax one would cut it to 8 characters and write it
TARGET_TABLE = SOURCE_TABLE.replace("VARCHAR(40)", "VARCHAR(8)")
FLOW = {
    "name": "rs_safe",
    "source": {"server": "legacy", "database": DB},
    "target": {"kind": "mariadb", "server": "target", "database": DB},
    "tables": [{"source": "item", "key": "id", "version": "updated_ts",
                "targets": [{"table": "item", "columns": {
                    c: c for c in ("id", "label", "seen_at", "updated_ts")}}]}],
}
SEEN_AT = "2024-06-01 12:00:00.000"   # a UTC instant, written in a +00:00 session


@pytest.fixture
def safe(fresh: dict[str, Server], tmp_path: Path) -> Iterator[tuple[dict[str, Server], str]]:
    """``rs_safe.item`` on both servers (empty) and the flow's file."""
    for role, ddl in (("legacy", SOURCE_TABLE), ("target", TARGET_TABLE)):
        with contextlib.closing(fresh[role].root()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(ddl)
    path = tmp_path / "rs_safe.yml"
    path.write_text(yaml.safe_dump(FLOW))
    yield fresh, str(path)
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = 0")


def _legacy(servers: dict[str, Server], sql: str, args: Any = None) -> None:
    with contextlib.closing(servers["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(sql, args)


def _add_items(servers: dict[str, Server], ids: range, version: int,
               label: str = "ok") -> None:
    _legacy(servers, "INSERT INTO rs_safe.item (id, label, seen_at, updated_ts) VALUES "
            + ", ".join(["(%s, %s, %s, %s)"] * len(ids)),
            [v for i in ids for v in (i, label, SEEN_AT, version)])


def _now_ms(servers: dict[str, Server]) -> int:
    with contextlib.closing(connect(servers["legacy"].settings())) as conn:
        return server_now_ms(conn)


def _target_rows(servers: dict[str, Server]) -> dict[int, tuple[Any, ...]]:
    with contextlib.closing(servers["target"].root()) as conn:
        rows = query(conn, f"SELECT id, label, UNIX_TIMESTAMP(seen_at), updated_ts "
                           f"FROM {DB}.item")
    return {int(r[0]): tuple(r[1:]) for r in rows}


def _ledger(servers: dict[str, Server], sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with contextlib.closing(servers["target"].root()) as conn:
        return query(conn, sql, args)


class _Boom(Exception):
    pass


class _After(Silent):
    """A progress sink that calls ``action`` once, after the ``batches``-th batch commit
    (the worker's connections are idle then: between two batches)."""

    def __init__(self, action: Any, batches: int = 1) -> None:
        self.action = action
        self.left = batches

    def advance(self, name: str, rows: int, chunks: int = 0) -> None:
        self.left -= 1
        if self.left == 0:
            self.action()


# --- a. --final ------------------------------------------------------------------------


def test_final_refuses_until_the_legacy_is_read_only_with_no_write_in_flight(
        safe: tuple[dict[str, Server], str]) -> None:
    servers, flow = safe
    config = make_config(servers)
    _add_items(servers, range(1, 51), _now_ms(servers) - 3_600_000)
    assert run_round(config, RoundOptions(flow)).status == "done"

    with pytest.raises(FuretError) as refused:
        run_round(config, RoundOptions(flow, final=True))
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("legacy 127.0.0.11:3306") and "read_only is OFF" in line, line

    # read-only, but a privileged session (read_only does not stop it) holds a write
    writer = servers["legacy"].root()
    try:
        _legacy(servers, "SET GLOBAL read_only = 1")
        with writer.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"UPDATE {DB}.item SET label = 'held' WHERE id = 1")
        with pytest.raises(FuretError) as held:
            run_round(config, RoundOptions(flow, final=True))
        assert str(held.value).startswith("legacy 127.0.0.11:3306") and \
            "1 transaction(s) with uncommitted writes" in str(held.value), str(held.value)
        writer.rollback()
    finally:
        writer.close()
    # nothing was planned by the refused attempts
    assert _ledger(servers, "SELECT COUNT(*) FROM furet.rounds WHERE flow = 'rs_safe'") \
        == [(1,)]
    final = run_round(config, RoundOptions(flow, final=True))
    assert (final.round_no, final.final, final.status) == (2, True, "done")


def test_the_in_flight_count_is_of_now_not_of_innodbs_copy(
        safe: tuple[dict[str, Server], str]) -> None:
    """InnoDB answers ``innodb_trx`` from a copy it refreshes only after 0.1 s without a
    read: counted right after another count, a transaction that just ended would still be
    in flight (the final round refused, as CI once saw) and one that just wrote not yet."""
    servers, _ = safe
    _add_items(servers, range(1, 3), 1)
    writer = servers["legacy"].root()
    try:
        with contextlib.closing(servers["legacy"].root()) as watcher:
            assert in_flight_writes(watcher) == 0
            with writer.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(f"UPDATE {DB}.item SET label = 'held' WHERE id = 1")
            assert in_flight_writes(watcher) == 1      # it just wrote
            writer.rollback()
            assert in_flight_writes(watcher) == 0      # it just ended
    finally:
        writer.close()


def test_final_finishes_an_unfinished_round_then_runs_the_final_one(
        safe: tuple[dict[str, Server], str]) -> None:
    servers, flow = safe
    # a 10-minute safety lag: round 2 cannot read what was written in its last 10 minutes
    config = make_config(servers, workers=1, batch_rows=10, overlap_ms=3_600_000,
                         safety_lag_ms=600_000)
    now = _now_ms(servers)
    _add_items(servers, range(1, 41), now - 7_200_000)
    assert run_round(config, RoundOptions(flow)).rows_written == 40
    _legacy(servers, f"UPDATE {DB}.item SET label = 'changed', updated_ts = %s WHERE id <= 30",
            (now - 900_000,))
    _add_items(servers, range(100, 103), _now_ms(servers))       # inside the safety lag

    def die() -> None:
        raise _Boom("killed after the first batch")

    with pytest.raises(_Boom):
        run_round(config, RoundOptions(flow), _After(die))       # round 2 left running
    assert _ledger(servers, "SELECT status, final FROM furet.rounds WHERE flow = 'rs_safe' "
                            "AND round_no = 2") == [("running", 0)]
    _legacy(servers, "SET GLOBAL read_only = 1")
    starts: list[tuple[int, bool, bool]] = []
    final = run_round(config, RoundOptions(flow, final=True),
                      on_start=lambda row, resumed: starts.append((row.round_no, row.final,
                                                                   resumed)))
    assert starts == [(2, False, True), (3, True, False)]
    assert (final.round_no, final.final, final.status) == (3, True, "done")
    assert _ledger(servers, "SELECT round_no, status, final FROM furet.rounds WHERE "
                            "flow = 'rs_safe' ORDER BY round_no") == [
        (1, "done", 0), (2, "done", 0), (3, "done", 1)]
    rows = _target_rows(servers)
    assert {100, 101, 102} <= set(rows), "the last safety_lag of writes was never read"
    assert all(rows[i][0] == "changed" for i in range(1, 31))


# --- b. sessions -----------------------------------------------------------------------


@pytest.fixture
def lax_servers(safe: tuple[dict[str, Server], str]
                ) -> Iterator[tuple[dict[str, Server], str]]:
    """Servers whose own settings are not furet's: a session that lost furet's settings
    writes non-strict (cuts long text) and in another zone (shifts TIMESTAMPs)."""
    servers, _ = safe
    globals_ = {"target": ("NO_ENGINE_SUBSTITUTION", "+02:00"),
                "legacy": ("NO_ENGINE_SUBSTITUTION", "+05:00")}
    saved = {}
    for role, (mode, zone) in globals_.items():
        with contextlib.closing(servers[role].root()) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@global.sql_mode, @@global.time_zone")
            saved[role] = cur.fetchone()
            cur.execute("SET GLOBAL sql_mode = %s, GLOBAL time_zone = %s", (mode, zone))
    try:
        yield safe
    finally:
        for role, (mode, zone) in saved.items():
            with contextlib.closing(servers[role].root()) as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL sql_mode = %s, GLOBAL time_zone = %s", (mode, zone))


class _Killer:
    """Notes furet's sessions when the round starts (its ledger, lock and planning
    connections), then KILLs every later one of furet's on both servers: the worker
    connections, idle between two batches."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers
        self.before: dict[str, set[int]] = {}
        self.killed: list[int] = []

    def _sessions(self, role: str) -> set[int]:
        with contextlib.closing(self.servers[role].root()) as conn:
            return {int(r[0]) for r in query(conn, "SELECT id FROM information_schema."
                                                   "processlist WHERE user = 'furet'")}

    def started(self, *_: Any) -> None:
        self.before = {role: self._sessions(role) for role in ("legacy", "target")}

    def kill(self) -> None:
        for role, before in self.before.items():
            with contextlib.closing(self.servers[role].root()) as conn:
                for pid in sorted(self._sessions(role) - before):
                    query(conn, f"KILL CONNECTION {pid}")
                    self.killed.append(pid)


def test_strict_mode_and_utc_survive_a_killed_connection(
        lax_servers: tuple[dict[str, Server], str]) -> None:
    servers, flow = lax_servers
    config = make_config(servers, workers=1, batch_rows=20)
    _add_items(servers, range(1, 101), _now_ms(servers) - 3_600_000)
    _legacy(servers, f"UPDATE {DB}.item SET label = 'a label far too long' WHERE id = 70")
    killer = _Killer(servers)
    summary = run_round(config, RoundOptions(flow), _After(killer.kill), on_start=killer.started)
    assert len(killer.killed) >= 2, "no worker connection was killed"
    assert summary.status == "done" and summary.rows_quarantined == 1
    rows = _target_rows(servers)
    assert 70 not in rows, f"a long label was cut and written after the reconnect: {rows[70]}"
    reasons = _ledger(servers, "SELECT row_key, reason FROM furet.quarantine WHERE "
                               "flow = 'rs_safe'")
    assert [(k, r.split(":")[0]) for k, r in reasons] == [("70", "too long")]
    with contextlib.closing(servers["target"].root()) as conn:
        query(conn, "SET SESSION time_zone = '+00:00'")
        instant = query(conn, f"SELECT UNIX_TIMESTAMP('{SEEN_AT}')")[0][0]
    shifted = sorted(i for i, row in rows.items() if row[1] != instant)
    assert not shifted, f"TIMESTAMPs shifted by a session zone after the reconnect: {shifted}"


def test_a_session_that_lost_the_strict_mode_is_refused_before_a_write(
        safe: tuple[dict[str, Server], str]) -> None:
    from migration.db import assert_session  # new in issue 12

    servers, _ = safe
    settings = servers["target"].settings()
    with contextlib.closing(connect(settings, strict=True)) as conn:
        assert_session(conn, settings)  # as connected: strict and +00:00
        query(conn, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        with pytest.raises(FuretError, match=r"^target 127\.0\.0\.12:3306: session sql_mode "
                                             r".*lacks STRICT_ALL_TABLES"):
            assert_session(conn, settings)
        # a reconnect gives furet's settings back: they are connect-time settings
        conn.close()
        conn.connect()
        assert_session(conn, settings)


# --- c. Cassandra consistency ----------------------------------------------------------


def test_cassandra_writes_honour_the_configured_consistency(fresh: dict[str, Server],
                                                            cassandra_node: str) -> None:
    from migration.legacy.seed import seed

    base = fresh_prod_keyspace(cassandra_node)
    seed(fresh["legacy"].settings(), 50)
    # one node: TWO replicas can never acknowledge
    settings = dataclasses.replace(base, write_consistency="TWO")  # type: ignore[call-arg]
    config = dataclasses.replace(make_config(fresh), cassandra=settings)
    with pytest.raises(FuretError) as failed:
        run_round(config, RoundOptions("cassandra_prod"))
    line = str(failed.value)
    assert "\n" not in line and "consistency TWO" in line and "prod" in line, line
    assert _ledger(fresh, "SELECT COALESCE(SUM(batches), 0), COALESCE(SUM(rows_written), 0) "
                          "FROM furet.chunks WHERE flow = 'cassandra_prod'") == [(0, 0)]
    # the default (LOCAL_QUORUM: one replica of one here) finishes the same round
    config = dataclasses.replace(config, cassandra=base)
    done = run_round(config, RoundOptions("cassandra_prod"))
    assert done.round_no == 1 and done.status == "done" and done.rows_written > 0


# --- d. rows committed later than the overlap allows -----------------------------------


def test_a_commit_later_than_the_overlap_is_reported(
        safe: tuple[dict[str, Server], str]) -> None:
    servers, flow = safe
    overlap = 60_000
    now = _now_ms(servers)
    _add_items(servers, range(1, 21), now - 3_600_000)
    env = furet_env(servers)

    def furet_round(*extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(REPO / ".venv" / "bin" / "furet"), "round", "--flow", flow,
                               "--overlap-ms", str(overlap), "--safety-lag-ms", "1000",
                               "--no-progress", *extra], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    furet_round()                                                  # round 1: watermark ~now
    mark = _ledger(servers, "SELECT watermark FROM furet.round_tables WHERE flow = 'rs_safe' "
                            "AND round_no = 1")[0][0]
    # committed now, stamped 30 s before the next window's start: the next round's
    # window (mark - overlap, now] does not look back that far
    _add_items(servers, range(200, 202), mark - overlap - 30_000, label="late")
    # stamped inside the window: copied as usual
    _add_items(servers, range(300, 301), mark - overlap + 1_000, label="in")
    done = furet_round("--json")
    summary = json.loads(done.stdout)
    assert summary["late_rows"] == {"item": 2}, summary
    warnings = [ln for ln in done.stderr.splitlines() if ln.startswith("warning")]
    assert len(warnings) == 1 and "table item" in warnings[0] and "2 row" in warnings[0] \
        and "overlap_ms 60000" in warnings[0], done.stderr
    rows = _target_rows(servers)
    assert 300 in rows and 200 not in rows  # reported, not copied: the operator decides
    again = furet_round()                                        # the table output warns too
    assert any(ln.startswith("warning") and "table item" in ln
               for ln in again.stderr.splitlines()), again.stderr
