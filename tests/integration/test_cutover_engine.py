"""The cutover engine end to end on real servers: the loopback legacy and target MariaDB of
conftest.py, a real HAProxy as the application endpoint (tests/integration/haproxy.py),
the web app writing through it the whole time, and every step run by the real `furet`
commands (`furet cutover step|journal|check`, `furet endpoint switch`) as subprocesses: the
platform below only replaces SSH with a local process. The lab test
(tests/lab/test_cutover.py) runs the same through Fabric on the lab's hosts.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from migration.config import DbSettings
from migration.cutover import engine
from migration.cutover.platform import last_json
from migration.cutover.runbook import Step, load_runbook, runbook_path
from migration.db import connection, query
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, check_acked, read_acked, run_traffic
from tests.helpers import BIN
from tests.integration.haproxy import ADDRESS, Haproxy

from .conftest import APP_USER, PASSWORD, furet_env, make_config

pytestmark = pytest.mark.integration

FLOWS = ("runtime", "rt_bo")


class LocalPlatform:
    """The engine's hosts as local processes: the ETL host's and the endpoint host's furet
    are this machine's, pointed at the loopback servers and the test's HAProxy."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.calls: list[list[str]] = []

    def _furet(self, args: Sequence[str]) -> Any:
        self.calls.append(list(args))
        done = subprocess.run([str(BIN / "furet"), *args], env=self.env, capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise FuretError(lines[-1] if lines else f"exit {done.returncode}")
        return last_json(done.stdout)

    def etl(self, args: Sequence[str]) -> Any:
        return self._furet(args)

    def furet_on(self, group: str, args: Sequence[str]) -> dict[str, Any]:
        assert group == engine.ENDPOINT_GROUP
        return {"app1": self._furet(args)}

    def shell_on(self, group: str, line: str) -> None:
        subprocess.run(line, shell=True, check=True, env=self.env)

    def hosts_of(self, group: str) -> list[str]:
        return ["app1"]


@pytest.fixture
def platform(fresh: dict, start_haproxy: Callable[..., Haproxy],
             tmp_path: Path) -> tuple[LocalPlatform, Haproxy]:
    haproxy = start_haproxy()
    env = furet_env(fresh)
    env.update({"FURET_ENDPOINT_SOCKET": str(haproxy.socket),
                "FURET_ENDPOINT_MAP": str(haproxy.map),
                "FURET_LOG_DIR": str(tmp_path / "logs")})
    return LocalPlatform(env), haproxy


def _options(tmp_path: Path, max_downtime: float = 60.0,
             backups: tuple[str, ...] = ()) -> engine.CutoverOptions:
    """The loopback runs take no backup (tests/integration/test_backup_gate.py tests that
    gate): their preflight asks for none."""
    return engine.CutoverOptions(max_downtime, FLOWS, ("runtime",), ("runtime",),
                                 "ops@test", str(tmp_path / "reports"), backups)


def _active(haproxy: Haproxy) -> str:
    return haproxy.map.read_text().split()[1].removeprefix("app_")


def _read_only(settings: DbSettings) -> int:
    with connection(settings) as conn:
        return int(query(conn, "SELECT @@global.read_only")[0][0])


def _ledger_tables(settings: DbSettings) -> dict[str, int]:
    with connection(settings) as conn:
        names = [r[0] for r in query(conn, "SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'furet'")]
        return {n: int(query(conn, f"SELECT COUNT(*) FROM furet.`{n}`")[0][0]) for n in names}


def _traffic(haproxy: Haproxy, acked: Path, stop: threading.Event,
             reports: list[TrafficReport]) -> threading.Thread:
    app = DbSettings("legacy", host=ADDRESS, port=haproxy.port, user=APP_USER, password=PASSWORD)
    thread = threading.Thread(target=lambda: reports.append(run_traffic(
        app, rate=60, duration=600, seed=5, late_share=0.1, stop=stop, through_cutover=True,
        acked=acked)))
    thread.start()
    return thread


def test_plan_changes_nothing(platform: tuple[LocalPlatform, Haproxy], fresh: dict,
                              tmp_path: Path) -> None:
    local, haproxy = platform
    legacy, target = fresh["legacy"].settings(), fresh["target"].settings()
    seed(legacy, 200)
    run_round(make_config(fresh), RoundOptions("runtime"))  # a ledger with a round in it
    runbook = load_runbook()
    before = (_read_only(legacy), haproxy.map.read_bytes(), haproxy.show_map(),
              _ledger_tables(target))
    lines = engine.plan(local, runbook, _options(tmp_path))
    after = (_read_only(legacy), haproxy.map.read_bytes(), haproxy.show_map(),
             _ledger_tables(target))
    assert after == before
    assert [line.step for line in lines] == [s.id for s in runbook.steps]
    assert all(line.ok for line in lines), lines
    switch = next(line for line in lines if line.action == "switch_endpoint")
    assert "galera" in switch.detail
    # and a plan that would fail says which step and why, still changing nothing
    from migration.legacy.freeze import freeze, unfreeze
    freeze(legacy)
    try:
        failing = {line.step: line for line in engine.plan(local, runbook, _options(tmp_path))}
    finally:
        unfreeze(legacy)
    assert not failing["freeze"].ok and "already read-only" in failing["freeze"].detail


def test_cutover_under_traffic_then_resume_after_a_kill_then_rollback(
        platform: tuple[LocalPlatform, Haproxy], fresh: dict, tmp_path: Path) -> None:
    local, haproxy = platform
    legacy, target = fresh["legacy"].settings(), fresh["target"].settings()
    seed(legacy, 2000)
    runbook = load_runbook()
    acked, stop, reports = tmp_path / "acked.jsonl", threading.Event(), []
    traffic = _traffic(haproxy, acked, stop, reports)
    try:
        time.sleep(2.0)
        # the controller dies right after the freeze (as kill -9 of fab would)
        class Killed(Exception):
            pass

        def die_after_freeze(step: Step, status: str) -> None:
            if step.id == "freeze" and status == "ok":
                raise Killed

        opened = local.etl(["cutover", "journal", "open", "--kind", "cutover",
                            "--runbook-sha", runbook.sha256, "--who", "ops@test",
                            "--options", json.dumps(_options(tmp_path).as_dict())])
        with pytest.raises(Killed):
            engine.execute(local, opened, runbook.steps, _options(tmp_path),
                           on_step=die_after_freeze)
        assert _read_only(legacy) == 1 and _active(haproxy) == "legacy"
        outcome = engine.resume(local, runbook, "ops@test")
        assert outcome.status == "done"
        assert _active(haproxy) == "galera"
        journal = engine.journal_show(local, outcome.run_id)
        assert journal is not None
        assert [r["step_id"] for r in journal["steps"]] == [s.id for s in runbook.steps]
        assert all(r["status"] == "ok" and r["attempts"] == 1 for r in journal["steps"])
        frozen = engine.downtime(runbook.steps, journal)
        assert frozen is not None and 0 < frozen < 60
        # the web app writes on Galera now
        time.sleep(3.0)
        written_on_galera = sum(1 for _ in read_acked(acked))
        # (writes to rows the rounds quarantined are counted apart, not missing)
        on_target = check_acked(target, acked)
        assert on_target.checked >= written_on_galera and on_target.missing == []
        # 1,000 writes on Galera are not needed here (the lab test has them): roll back now
        rolled = engine.rollback(local, runbook, _options(tmp_path))
        assert rolled.status == "done", rolled
        assert _active(haproxy) == "legacy" and _read_only(legacy) == 0
        time.sleep(2.0)
    finally:
        stop.set()
        traffic.join(60)
    report = reports[0]
    assert report.errors > 0 and report.committed > 300, report
    # every write the endpoint acknowledged, before, during and after both switches, is on
    # the legacy master after the rollback
    on_legacy = check_acked(legacy, acked)
    assert on_legacy.missing == [] and on_legacy.checked == len(list(read_acked(acked)))
    print(f"cutover + rollback on loopback: {report.committed} acknowledged writes, longest "
          f"time without one {report.longest_gap_s:.1f}s, freeze {frozen:.1f}s")


def test_over_the_downtime_budget_the_legacy_is_unfrozen_and_nothing_switched(
        platform: tuple[LocalPlatform, Haproxy], fresh: dict, tmp_path: Path) -> None:
    local, haproxy = platform
    legacy = fresh["legacy"].settings()
    seed(legacy, 500)
    runbook = load_runbook()
    outcome = engine.run(local, runbook, _options(tmp_path, max_downtime=0.5))
    assert outcome.status == "aborted"
    assert "downtime budget" in outcome.lines[0] and "--max-downtime 0.5s" in outcome.lines[0]
    assert _read_only(legacy) == 0 and _active(haproxy) == "legacy"
    journal = engine.journal_show(local, outcome.run_id)
    assert journal is not None and journal["status"] == "aborted"
    assert "switch" not in {r["step_id"] for r in journal["steps"]}
    # a new run may start (the aborted one is closed)
    assert engine.journal_show(local) is not None


def test_the_report_of_a_cutover_and_its_rollback(platform: tuple[LocalPlatform, Haproxy],
                                                  fresh: dict, tmp_path: Path) -> None:
    """`furet cutover report` after a cutover and its rollback under traffic: both files,
    every journaled step named, the freeze as the journal has it, the application's gap."""
    local, haproxy = platform
    seed(fresh["legacy"].settings(), 500)
    runbook = load_runbook()
    acked, stop, reports = tmp_path / "acked.jsonl", threading.Event(), []
    traffic = _traffic(haproxy, acked, stop, reports)
    try:
        time.sleep(1.0)
        outcome = engine.run(local, runbook, _options(tmp_path))
        assert outcome.status == "done" and _active(haproxy) == "galera"
        time.sleep(1.0)
        rolled = engine.rollback(local, runbook, _options(tmp_path))
        assert rolled.status == "done" and _active(haproxy) == "legacy"
        time.sleep(1.0)
    finally:
        stop.set()
        traffic.join(60)
    journal = engine.journal_show(local, outcome.run_id)
    rollback_journal = engine.journal_show(local, rolled.run_id)
    assert journal is not None and rollback_journal is not None
    # what the controller asks for after the rollback (its run id names the cutover too)
    reports_dir = tmp_path / "cutover-reports"
    paths = engine.report(local, rolled.run_id, str(reports_dir))
    page = Path(paths["html"]).read_text()
    for row in (*journal["steps"], *rollback_journal["steps"]):
        assert f">{row['step_id']}<" in page, row["step_id"]
    for path in paths.values():
        assert (Path(path).stat().st_mode & 0o777) == 0o640
    # what an operator asks for, with the web app's acked-writes log
    with_acked = local.etl(["cutover", "report", "--run", str(outcome.run_id),
                            "--acked", str(acked), "--to", str(reports_dir / "acked")])
    data = json.loads(Path(with_acked["json"]).read_text())
    assert json.loads(Path(paths["json"]).read_text())["timeline"] == data["timeline"]
    assert [r["run_id"] for r in data["runs"]] == [outcome.run_id, rolled.run_id]
    frozen = engine.downtime(runbook.steps, journal)
    assert frozen is not None
    assert data["freezes"][0]["seconds"] == pytest.approx(frozen, abs=0.001)
    # the loopback legacy runs without a binary log: the freeze recorded no coordinates
    assert [(b["step_id"], b["file"]) for b in data["binlog"]] == [("freeze", "")]
    assert {(v["flow"], v["direction"]) for v in data["verify"]} == {
        ("runtime", "forward"), ("runtime", "reverse")}
    assert {r["step_id"] for r in data["rounds"]["runtime"]} >= {
        "catch-up", "final-rounds", "reverse-rounds", "reverse-final"}
    assert [d["kind"] for d in data["decisions"] if d["kind"] in ("start", "rollback")] == [
        "start", "rollback"]
    gap = data["application"]["around_freezes"][0]
    # (both loopback servers have this machine's hostname: the servers look alike)
    freeze = data["freezes"][0]
    assert gap["run_id"] == outcome.run_id and 0 < gap["seconds"] < 60, gap
    assert gap["from_ms"] < freeze["ended_at"] * 1000 and gap["to_ms"] > freeze["started_at"] * 1000
    print(f"cutover report {paths['html']}: freeze {frozen:.2f}s, the application's longest "
          f"gap around the switch {gap['seconds']:.2f}s")


class _Killed(Exception):
    """The controller dying at a chosen point (as kill -9 of fab would)."""


def _run_until(local: LocalPlatform, runbook: Any, options: engine.CutoverOptions,
               step_id: str) -> None:
    def die(step: Step, status: str) -> None:
        if step.id == step_id and status == "ok":
            raise _Killed

    opened = local.etl(["cutover", "journal", "open", "--kind", "cutover",
                        "--runbook-sha", runbook.sha256, "--who", "ops@test",
                        "--options", json.dumps(options.as_dict())])
    with pytest.raises(_Killed):
        engine.execute(local, opened, runbook.steps, options, on_step=die)


def test_abort_unfreezes_before_the_switch_and_is_refused_after_it(
        platform: tuple[LocalPlatform, Haproxy], fresh: dict, tmp_path: Path) -> None:
    local, haproxy = platform
    legacy = fresh["legacy"].settings()
    seed(legacy, 300)
    runbook, options = load_runbook(), _options(tmp_path)
    _run_until(local, runbook, options, "freeze")
    # a second run is refused while this one is open
    with pytest.raises(FuretError, match="is not finished: `fab cutover resume`"):
        engine.run(local, runbook, options)
    assert _read_only(legacy) == 1
    aborted = engine.abort(local, runbook, "ops@test")
    assert aborted.status == "aborted"
    assert _read_only(legacy) == 0 and _active(haproxy) == "legacy"
    journal = engine.journal_show(local, aborted.run_id)
    assert journal is not None and journal["status"] == "aborted"
    with pytest.raises(FuretError, match="no unfinished run to abort"):
        engine.abort(local, runbook, "ops@test")
    with pytest.raises(FuretError, match="nothing to roll back"):
        engine.rollback(local, runbook, options)

    _run_until(local, runbook, options, "switch")
    assert _active(haproxy) == "galera"
    with pytest.raises(FuretError, match="step switch has run"):
        engine.abort(local, runbook, "ops@test")
    # a run's resume, abort and rollback take the runbook it ran: the galera-next one's
    # rollback would switch the application to another side
    other = load_runbook(shipped=runbook_path("galera-next"))
    for refused in (lambda: engine.resume(local, other, "ops@test"),
                    lambda: engine.abort(local, other, "ops@test"),
                    lambda: engine.rollback(local, other, options)):
        with pytest.raises(FuretError, match="ran another runbook or --hooks file"):
            refused()
    assert _active(haproxy) == "galera"
    assert engine.resume(local, runbook, "ops@test").status == "done"
