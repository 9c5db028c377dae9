"""kill -9 of `furet round` at random points, resumed by running the same command again.

Must-show of issue 12: a round killed with SIGKILL at random points ends, once resumed and
followed by the final round, with a per-row comparison that is exact, and no chunk copied
twice. The points are drawn from a seeded generator and cover four moments:

- ``start``: a random delay after spawn, before the run's first checkpoint (loading the
  flow, creating the ledger, planning the round, claiming the first chunks);
- ``rows``: once the round has checkpointed k more rows (k random);
- ``chunk``: right after one more chunk is recorded done (between two chunks);

in round 1's bulk copy (source static) and in incremental rounds while the web-app traffic
writes to the source. After each kill the test checks that no process of the run survives,
waits until its server sessions are gone, and reads the ledger (read-only):

- a chunk recorded done is never touched again (same rows, batches, attempts, cursor and
  finish time at every later kill and at the end), the plan of a round never changes, and
  unfinished chunks only move forward (batches, rows, cursor);
- in round 1, every chunk's checkpoint matches the data exactly: source rows up to its
  cursor = rows read, target rows up to its cursor = rows written, none past it (a batch
  and its checkpoint commit together, so a resume neither repeats nor skips one);
- in incremental rounds, a window chunk never read more rows than the (key, version) pairs
  the source ever held in its range (triggers log them on the legacy server, outside the
  flow's database): a chunk resumed from its start would read some twice;
- each round's rows are the sum over its chunks, as the finishing run reports them; round
  1's sum is the source's row count (a batch applied twice would count its rows twice).

Replay a failure with the seed it prints: ``FURET_SEED=<seed>``. ``FURET_KILL_POINTS``
sets the number of kills (default 10; a soak run sets e.g. 50).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migration.legacy.freeze import freeze
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, run_traffic
from tests.helpers import BIN, REPO

from .compare import diff_runtime
from .conftest import APP_USER, PASSWORD, USER, furet_env

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("FURET_SEED") or random.SystemRandom().randrange(1, 2**31))
KILL_POINTS = int(os.environ.get("FURET_KILL_POINTS") or 10)
REPLAY = f"[replay: FURET_SEED={SEED} FURET_KILL_POINTS={KILL_POINTS}]"

FLOW = "runtime"
TABLES = ("customer", "quote", "offer")
QUOTES = 3000  # about 15,000 rows in round 1
# the same command for every run: killed, resumed, finishing (round 1 takes ~6 s unkilled)
COMMAND = ("round", "--flow", FLOW, "--no-progress", "--json", "--workers", "2",
           "--chunk-rows", "1000", "--batch-rows", "200", "--max-rows-per-second", "1500",
           "--overlap-ms", "5000", "--safety-lag-ms", "300")
PHASES = ("start", "rows", "chunk")
START_DELAY_S = (0.0, 1.2)   # furet's first checkpoint comes ~1 s after spawn here
ROWS_SHARE = (0.05, 0.6)     # a rows kill lands after this share of the rows left
RUN_TIMEOUT_S = 120
CHUNK_COLUMNS = ("round_no", "source_table", "chunk_no", "kind", "key_column", "key_lo",
                 "key_hi", "ts_lo", "ts_hi", "cursor_ts", "cursor_key", "status", "attempts",
                 "batches", "rows_read", "rows_written", "rows_quarantined",
                 "CAST(started_at AS CHAR)", "CAST(finished_at AS CHAR)")
VERSION_LOG = "furet_kill_points"  # on the legacy server, outside the flow's database
PLAN_COLUMNS = ("kind", "key_column", "key_lo", "key_hi", "ts_lo", "ts_hi")


@dataclasses.dataclass
class Point:
    scope: str       # bulk (round 1) | incremental (later rounds, under traffic)
    phase: str       # start | rows | chunk
    delay_s: float   # start: kill this long after spawn (or at the run's first checkpoint)
    share: float     # rows: kill after this share of the round's rows still to copy


def plan_points(rng: random.Random, count: int) -> list[Point]:
    """``count`` kill points: ~40 % in round 1, the rest in incremental rounds; each scope
    has each phase at least once when it has 3 points or more."""
    bulk = max(1, round(count * 0.4)) if count else 0

    def phases(n: int) -> list[str]:
        drawn = list(PHASES[:n]) + rng.choices(PHASES, k=max(0, n - len(PHASES)))
        rng.shuffle(drawn)
        return drawn

    return [Point(scope, phase, rng.uniform(*START_DELAY_S), rng.uniform(*ROWS_SHARE))
            for scope, n in (("bulk", bulk), ("incremental", count - bulk))
            for phase in phases(n)]


@dataclasses.dataclass
class Progress:
    planned: bool = False
    chunks: int = 0
    done: int = 0
    batches: int = 0
    rows: int = 0


@dataclasses.dataclass
class Kill:
    round_no: int
    scope: str
    phase: str
    landed: str           # what the run had done: before plan / planned / after N batches
    after_s: float
    rows: int


def _survivors(pgid: int) -> list[int]:
    """Live processes of a process group (the killed run and anything it started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


class Harness:
    """The servers as root (unix socket: not the ``furet`` user whose sessions the test
    waits out), the ledger snapshots and the runs."""

    def __init__(self, servers: dict) -> None:
        self.servers = servers
        self.target = servers["target"].root()
        self.legacy = servers["legacy"].root()
        self.snapshot: dict[tuple[int, str, int], dict[str, Any]] = {}
        self.runs = 0
        self.kills: list[Kill] = []
        self.missed: list[Point] = []
        self.runs_per_round: dict[int, int] = {}
        self.progressed: dict[int, int] = {}
        self.summaries: dict[int, dict[str, Any]] = {}
        self.proc: subprocess.Popen[str] | None = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:  # a failed test's last run
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.communicate(timeout=30)
        with contextlib.suppress(Exception):
            for table in TABLES:
                for event in ("INSERT", "UPDATE"):
                    self.sql(self.legacy, "DROP TRIGGER IF EXISTS "
                                          f"lf_runtime.kill_points_{table}_{event}")
            self.sql(self.legacy, f"DROP DATABASE IF EXISTS {VERSION_LOG}")
        for conn in (self.target, self.legacy):
            with contextlib.suppress(Exception):
                conn.close()

    def sql(self, conn: pymysql.connections.Connection, sql: str,
            args: Any = None) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    # -- the ledger, read-only ---------------------------------------------------------
    def progress(self, round_no: int) -> Progress:
        try:
            planned = self.sql(self.target, "SELECT COUNT(*) FROM furet.rounds WHERE flow = %s "
                                            "AND round_no = %s", (FLOW, round_no))[0][0]
            chunks, done, batches, rows = self.sql(
                self.target, "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0), "
                             "COALESCE(SUM(batches), 0), COALESCE(SUM(rows_read), 0) FROM "
                             "furet.chunks WHERE flow = %s AND round_no = %s",
                (FLOW, round_no))[0]
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in (1049, 1146):  # no ledger yet
                return Progress()
            raise
        return Progress(bool(planned), int(chunks), int(done), int(batches), int(rows))

    def chunks(self) -> dict[tuple[int, str, int], dict[str, Any]]:
        try:
            rows = self.sql(self.target, f"SELECT {', '.join(CHUNK_COLUMNS)} FROM furet.chunks "
                                         "WHERE flow = %s", (FLOW,))
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in (1049, 1146):
                return {}
            raise
        names = [c.split("(")[-1].split(" ")[0] for c in CHUNK_COLUMNS]
        return {(r[0], r[1], r[2]): dict(zip(names, r, strict=True)) for r in rows}

    def quiesce(self) -> None:
        """Wait until the killed run's sessions are gone from both servers (the server has
        rolled back its open transaction and released the flow's lock)."""
        deadline = time.monotonic() + 30
        while True:
            left = sum(int(self.sql(conn, "SELECT COUNT(*) FROM information_schema.processlist "
                                          "WHERE user = %s", (USER,))[0][0])
                       for conn in (self.target, self.legacy))
            if not left:
                return
            assert time.monotonic() < deadline, f"{left} sessions of a killed run still open " \
                                                f"after 30 s {REPLAY}"
            time.sleep(0.02)

    def check_ledger(self, where: str) -> None:
        """Done chunks never change, plans never change, the rest only moves forward."""
        now = self.chunks()
        for key, before in self.snapshot.items():
            after = now.get(key)
            assert after is not None, f"{where}: chunk {key} left the ledger {REPLAY}"
            for column in PLAN_COLUMNS:
                assert after[column] == before[column], \
                    f"{where}: chunk {key} {column} changed {before[column]!r} -> " \
                    f"{after[column]!r} {REPLAY}"
            if before["status"] == "done":
                assert after == before, f"{where}: chunk {key} was done and was touched " \
                                        f"again: {before} -> {after} {REPLAY}"
                continue
            for column in ("attempts", "batches", "rows_read", "rows_written"):
                assert after[column] >= before[column], \
                    f"{where}: chunk {key} {column} went back {before[column]} -> " \
                    f"{after[column]} {REPLAY}"
            if before["batches"]:
                assert _cursor(after) >= _cursor(before), \
                    f"{where}: chunk {key} cursor went back {_cursor(before)} -> " \
                    f"{_cursor(after)} {REPLAY}"
        self.snapshot = now

    def check_round_1_checkpoints(self, where: str) -> None:
        """Round 1 (static source, target empty before it): each chunk's checkpoint is
        exactly what the target holds, up to its cursor and nothing past it."""
        for (round_no, table, chunk_no), c in self.snapshot.items():
            if round_no != 1:
                continue
            lo, hi = int(c["key_lo"]), int(c["key_hi"])
            upto = hi if c["status"] == "done" else (int(c["cursor_key"]) if c["batches"]
                                                     else lo)
            count = "SELECT COUNT(*) FROM lf_runtime.`{}` WHERE id > %s AND id <= %s"
            source = self.sql(self.legacy, count.format(table), (lo, upto))[0][0]
            target = self.sql(self.target, count.format(table), (lo, upto))[0][0]
            beyond = self.sql(self.target, count.format(table), (upto, hi))[0][0]
            name = f"{where}: round 1 {table} chunk {chunk_no} ({lo}, {hi}] cursor {upto}"
            assert source == c["rows_read"], \
                f"{name}: source has {source} rows up to the cursor, the ledger read " \
                f"{c['rows_read']} {REPLAY}"
            assert target == c["rows_written"], \
                f"{name}: target has {target} rows up to the cursor, the ledger wrote " \
                f"{c['rows_written']} {REPLAY}"
            assert beyond == 0, f"{name}: {beyond} rows written past the checkpoint {REPLAY}"
            assert c["rows_read"] == c["rows_written"] + c["rows_quarantined"], \
                f"{name}: {c} {REPLAY}"

    def log_versions(self) -> None:
        """From now on, every (key, version) the source tables ever hold is logged on the
        legacy server (triggers, in the writing transaction), for the bound below."""
        self.sql(self.legacy, f"DROP DATABASE IF EXISTS {VERSION_LOG}")
        self.sql(self.legacy, f"CREATE DATABASE {VERSION_LOG}")
        self.sql(self.legacy, f"CREATE TABLE {VERSION_LOG}.versions (tbl VARCHAR(16) NOT NULL, "
                              "id BIGINT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (tbl, "
                              "version, id)) ENGINE=InnoDB")
        for table in TABLES:
            self.sql(self.legacy, f"INSERT INTO {VERSION_LOG}.versions SELECT '{table}', id, "
                                  f"updated_ts FROM lf_runtime.{table}")
            for event in ("INSERT", "UPDATE"):
                self.sql(self.legacy, f"CREATE TRIGGER lf_runtime.kill_points_{table}_{event} "
                                      f"AFTER {event} ON lf_runtime.{table} FOR EACH ROW INSERT "
                                      f"IGNORE INTO {VERSION_LOG}.versions VALUES ('{table}', "
                                      "NEW.id, NEW.updated_ts)")

    def check_window_reads(self, where: str) -> None:
        """Incremental rounds (the source changes under them): a window chunk reads each
        (key, version) at most once, its cursor only moving forward, so the rows it read
        never exceed the (key, version) pairs the source ever held in its range."""
        for (round_no, table, chunk_no), c in self.snapshot.items():
            if c["kind"] != "window" or not c["batches"]:
                continue
            upto = c["ts_hi"] if c["status"] == "done" else c["cursor_ts"]
            pairs = self.sql(self.legacy, f"SELECT COUNT(*) FROM {VERSION_LOG}.versions WHERE "
                                          "tbl = %s AND version > %s AND version <= %s",
                             (table, -1 if c["ts_lo"] is None else c["ts_lo"], upto))[0][0]
            assert c["rows_read"] <= pairs, \
                f"{where}: round {round_no} {table} chunk {chunk_no} read {c['rows_read']} " \
                f"rows, the source only ever held {pairs} versions in ({c['ts_lo']}, " \
                f"{upto}]: rows read twice {REPLAY}"

    def check(self, where: str) -> None:
        self.check_ledger(where)
        if any(n == 1 for n, _, _ in self.snapshot) and \
                not any(n > 1 for n, _, _ in self.snapshot):
            self.check_round_1_checkpoints(where)
        self.check_window_reads(where)

    # -- runs ---------------------------------------------------------------------------
    def spawn(self, *extra: str) -> subprocess.Popen[str]:
        self.runs += 1
        self.proc = subprocess.Popen([str(BIN / "furet"), *COMMAND, *extra], cwd=REPO,
                                env=furet_env(self.servers), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        return self.proc

    def finish(self, proc: subprocess.Popen[str], round_no: int,
               output: tuple[str, str] | None = None) -> dict[str, Any]:
        out, err = output or proc.communicate(timeout=RUN_TIMEOUT_S)
        assert proc.returncode == 0, f"round {round_no}: furet exited {proc.returncode}: " \
                                     f"{err.strip()[-2000:]} {REPLAY}"
        summary = json.loads(out)
        assert summary["round_no"] == round_no and summary["status"] == "done", \
            f"expected round {round_no} done, got {out[:500]} {REPLAY}"
        self.summaries[round_no] = summary
        return summary

    def run_to_kill(self, point: Point, round_no: int, expected_rows: int) -> bool:
        """Spawn the round's command and SIGKILL it at ``point``; False when the round
        ended before the point was reached (the point is used in a later round)."""
        self.runs_per_round[round_no] = self.runs_per_round.get(round_no, 0) + 1
        was = self.progress(round_no)
        threshold = was.rows + max(1, int(point.share * max(0, expected_rows - was.rows)))
        proc = self.spawn()
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                return self.ended_by_itself(proc, point, round_no, None)
            now = self.progress(round_no)
            elapsed = time.monotonic() - started
            hit = {"start": elapsed >= point.delay_s or now.batches > was.batches,
                   "rows": now.rows >= threshold,
                   "chunk": now.done > was.done}[point.phase]
            if hit:
                break
            assert elapsed < RUN_TIMEOUT_S, \
                f"round {round_no}: {point} not reached in {RUN_TIMEOUT_S} s ({now}) {REPLAY}"
            time.sleep(0.005 if point.phase != "rows" else 0.02)
        os.kill(proc.pid, signal.SIGKILL)
        output = proc.communicate(timeout=30)
        left = _survivors(proc.pid)
        for pid in left:  # ours: the killed run's own children
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes {left} of the killed run survived {REPLAY}"
        if proc.returncode != -signal.SIGKILL:  # it ended in the same instant
            return self.ended_by_itself(proc, point, round_no, output)
        self.quiesce()
        after = self.progress(round_no)
        if after.batches > was.batches:
            self.progressed[round_no] = self.progressed.get(round_no, 0) + 1
        landed = ("before plan" if not after.planned else
                  "planned, no batch" if after.batches == was.batches else
                  f"after {after.batches - was.batches} batches")
        self.kills.append(Kill(round_no, point.scope, point.phase, landed,
                               round(elapsed, 3), after.rows))
        self.check(f"after kill {len(self.kills)} ({point.phase} in round {round_no}, "
                   f"{landed})")
        return True

    def ended_by_itself(self, proc: subprocess.Popen[str], point: Point, round_no: int,
                        output: tuple[str, str] | None) -> bool:
        self.finish(proc, round_no, output)
        self.progressed[round_no] = self.progressed.get(round_no, 0) + 1
        self.check(f"round {round_no} run {self.runs} (ended by itself)")
        self.missed.append(point)
        return False

    def round_with_kills(self, round_no: int, points: list[Point],
                         expected_rows: int) -> list[Point]:
        """Kill round ``round_no`` at each point, then let a last run finish it; the
        points the round ended before are returned for the next round."""
        for i, point in enumerate(points):
            if not self.run_to_kill(point, round_no, expected_rows):
                return points[i:]
        existed = self.progress(round_no).planned
        self.runs_per_round[round_no] = self.runs_per_round.get(round_no, 0) + 1
        self.progressed[round_no] = self.progressed.get(round_no, 0) + 1
        summary = self.finish(self.spawn(), round_no)
        assert summary["resumed"] == existed, f"round {round_no}: {summary} {REPLAY}"
        self.check(f"round {round_no} finished")
        return []


def _cursor(chunk: dict[str, Any]) -> tuple[int, int]:
    return (int(chunk["cursor_ts"] or 0), int(chunk["cursor_key"] or 0))


def _changes(harness: Harness, round_no: int) -> int:
    """Changes for an incremental round on top of the traffic: a third of the quotes and
    a fifth of the offers, stamped over the last 2 s (always newer than the row was)."""
    now = int(time.time() * 1000)
    changed = 0
    for sql in ("UPDATE lf_runtime.quote SET premium_cents = premium_cents + 1, updated_ts = "
                "GREATEST(updated_ts + 1, %s - 400 - (id * 7919) %% 1600) WHERE id %% 3 = %s "
                "AND premium_cents IS NOT NULL",
                "UPDATE lf_runtime.offer SET price_cents = price_cents + 1, updated_ts = "
                "GREATEST(updated_ts + 1, %s - 400 - (id * 7919) %% 1600) WHERE id %% 5 = %s "
                "AND price_cents IS NOT NULL"):
        for attempt in range(5):  # the traffic's late commits hold row locks for up to 1.5 s
            try:
                with harness.legacy.cursor() as cur:
                    changed += cur.execute(sql, (now, round_no % (3 if "quote" in sql else 5)))
                break
            except pymysql.MySQLError as exc:
                if exc.args[0] not in (1205, 1213) or attempt == 4:
                    raise
    return changed


@contextlib.contextmanager
def _traffic(servers: dict) -> Iterator[list[TrafficReport]]:
    reports: list[TrafficReport] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: reports.append(run_traffic(
        servers["legacy"].settings(APP_USER, PASSWORD), rate=60, duration=600, seed=SEED,
        late_share=0.2, late_ms=(200, 1500), stop=stop)))
    thread.start()
    try:
        yield reports
        freeze(servers["legacy"].settings(), timeout_s=30)
        thread.join(30)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(30)


def test_kill_9_at_random_points_then_resume(fresh: dict, figures: Any) -> None:
    print(f"kill points: FURET_SEED={SEED} FURET_KILL_POINTS={KILL_POINTS}")
    began = time.monotonic()
    rng = random.Random(SEED)
    queue = plan_points(rng, KILL_POINTS)
    seed(fresh["legacy"].settings(), QUOTES)
    harness = Harness(fresh)
    try:
        counts = {t: int(harness.sql(harness.legacy, f"SELECT COUNT(*) FROM lf_runtime.{t}"
                                     )[0][0]) for t in TABLES}
        bulk = [p for p in queue if p.scope == "bulk"]
        queue = harness.round_with_kills(1, bulk, sum(counts.values())) + \
            [p for p in queue if p.scope != "bulk"]
        # round 1 ran on a static source: its chunks read every row exactly once
        by_table = {t: 0 for t in TABLES}
        for (round_no, table, _), c in harness.snapshot.items():
            if round_no == 1:
                by_table[table] += c["rows_read"]
        assert by_table == counts, f"round 1 read {by_table}, the source has {counts} {REPLAY}"

        round_no = 1
        harness.log_versions()
        with _traffic(fresh) as reports:
            while queue:
                round_no += 1
                assert round_no <= KILL_POINTS + 10, f"kill points never reached: {queue} " \
                                                     f"{REPLAY}"
                time.sleep(0.5)  # some traffic since the last round
                changed = _changes(harness, round_no)
                take = rng.randint(2, 4)
                queue = harness.round_with_kills(round_no, queue[:take], changed) + \
                    queue[take:]
        # frozen: the final round reads the rest (the same command, with --final)
        report = reports[0]
        assert report.stopped_by == "read_only" and report.operations > 0, report
        round_no += 1
        harness.runs_per_round[round_no] = 1
        harness.progressed[round_no] = 1
        final = harness.finish(harness.spawn("--final"), round_no)
        assert final["final"] and not final["resumed"]
        harness.check("final round")

        assert len(harness.kills) == KILL_POINTS, f"{harness.kills} {REPLAY}"
        # every round: all chunks done, its rows the sum over its chunks, as reported
        for number in range(1, round_no + 1):
            chunks = [c for (n, _, _), c in harness.snapshot.items() if n == number]
            assert chunks and all(c["status"] == "done" for c in chunks), \
                f"round {number}: {chunks} {REPLAY}"
            summary = harness.summaries[number]
            for column in ("rows_read", "rows_written", "rows_quarantined"):
                assert summary[column] == sum(c[column] for c in chunks), \
                    f"round {number}: {column} {summary[column]} reported, chunks sum " \
                    f"{sum(c[column] for c in chunks)} {REPLAY}"
            for table in summary["tables"]:
                assert table["rows_read"] == sum(
                    c["rows_read"] for c in chunks if c["source_table"] ==
                    table["source_table"]), f"round {number}: {table} {REPLAY}"
            # a run counts once it has planned or resumed the round; one that made a
            # checkpoint certainly did, one killed before planning did not
            assert harness.progressed[number] <= summary["invocations"] <= \
                harness.runs_per_round[number], \
                f"round {number}: {summary['invocations']} invocations, " \
                f"{harness.progressed[number]} runs made progress of " \
                f"{harness.runs_per_round[number]} {REPLAY}"

        diffs = diff_runtime(fresh["legacy"].settings(), fresh["target"].settings())
        for table, diff in diffs.items():
            assert not diff.missing, f"{table}: rows missing in target: " \
                                     f"{sorted(diff.missing)[:10]} {REPLAY}"
            assert not diff.stale, f"{table}: stale rows in target: " \
                                   f"{sorted(diff.stale)[:10]} {REPLAY}"
            assert not diff.extra, f"{table}: rows in target not in source: " \
                                   f"{sorted(diff.extra)[:10]} {REPLAY}"
            assert diff.target_rows == diff.source_rows - len(diff.quarantined), table
    finally:
        harness.close()
    by_phase: dict[str, int] = {}
    for kill in harness.kills:
        name = f"{kill.scope}/{kill.phase}"
        by_phase[name] = by_phase.get(name, 0) + 1
    figures(seed=SEED, kill_points=KILL_POINTS, runs=harness.runs, rounds=round_no,
            kills_by_phase=by_phase,
            start_kills_landed=sorted({k.landed for k in harness.kills if k.phase == "start"}),
            points_moved_to_a_later_round=len(harness.missed),
            traffic_operations=report.operations, seconds=round(time.monotonic() - began, 1))
    for kill in harness.kills:
        print(kill)
