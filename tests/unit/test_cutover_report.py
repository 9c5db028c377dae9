"""The cutover report (migration/cutover/report.py) built from journal-like rows, without
servers: the timeline, the write freeze, the decisions, the rounds, the application's
downtime from an acked-writes log, the HTML (escaped, self-contained) and the files."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from migration.cutover import engine
from migration.cutover.report import build, render_html, write
from migration.cutover.runbook import load_runbook
from migration.engine.ledger import CutoverRun, CutoverStep
from migration.legacy.traffic import Write

T0 = 1_700_000_000.0  # the target's clock, epoch seconds
SHIPPED_SHA = load_runbook().sha256


def _round(flow: str, no: int, *, final: bool = False, read: int = 10, quarantined: int = 0,
           watermark: float = T0) -> dict[str, Any]:
    return {"flow": flow, "round": no, "final": final, "rows_read": read, "rows_written":
            read - quarantined, "rows_quarantined": quarantined, "seconds": 0.25,
            "watermark_ms": int(watermark * 1000)}


def _step(seq: int, step_id: str, start: float, end: float | None, detail: Any = None, *,
          status: str = "ok", attempts: int = 1, host: str = "etl1",
          who: str = "ops@ctl") -> dict[str, Any]:
    text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
    return {"step_id": step_id, "seq": seq, "status": status, "attempts": attempts,
            "host": host, "who": who, "detail": text, "started_at": T0 + start,
            "finished_at": None if end is None else T0 + end}


def _run(run_id: int, kind: str, start: float, end: float | None, status: str = "done",
         detail: str = "", who: str = "ops@ctl", max_downtime: float = 60.0) -> dict[str, Any]:
    return {"run_id": run_id, "kind": kind, "runbook_sha": SHIPPED_SHA,
            "options": json.dumps({"max_downtime_s": max_downtime}), "status": status,
            "who": who, "detail": detail, "started_at": T0 + start,
            "finished_at": None if end is None else T0 + end, "now": T0 + 500}


BACKUP = {"kind": "galera", "id": "20261130T101500Z", "host": "backup1",
          "path": "/srv/furet-backups/20261130T101500Z/galera", "age": "2.5 h",
          "restore_test": "passed"}


def _cutover_steps() -> list[dict[str, Any]]:
    return [
        _step(1, "preflight", 0.0, 1.0, {"flows": ["runtime", "rt_bo"], "legacy": "writable",
                                         "backups": [BACKUP]}),
        _step(2, "catch-up", 1.0, 9.0, {"rounds": 2, "estimate_final_s": 0.5, "last": {
            "runtime": _round("runtime", 4), "rt_bo": _round("rt_bo", 3, quarantined=2)}}),
        # killed after the freeze, resumed: the freeze ran twice
        _step(3, "freeze", 10.0, 10.5, {"waited_s": 0.1, "frozen_at_ms": int((T0 + 10.4) * 1000),
                                        "binlog": {"file": "mysql-bin.000042",
                                                   "position": 123456}}, attempts=2),
        _step(4, "final-rounds", 11.0, 12.0, {"rounds": [
            _round("runtime", 5, final=True, watermark=T0 + 10.4),
            _round("rt_bo", 4, final=True, watermark=T0 + 10.4)]}),
        _step(5, "verify-gate", 12.0, 13.5, {"verify": [
            {"flow": "runtime", "agrees": True, "seconds": 1.2,
             "report": "/var/lib/furet/reports/cutover-1/verify-runtime-x.html"}]}),
        _step(6, "switch", 13.5, 14.5, {"app1": {"active": "galera"}}, host="app_endpoint"),
        _step(7, "reverse-rounds", 15.0, 16.0, {"rounds": [_round("runtime", 1)]}),
    ]


def _rollback_steps() -> list[dict[str, Any]]:
    return [
        _step(1, "refuse-writes", 100.0, 100.5, {"app1": {"active": "refused"}},
              host="app_endpoint", who="lead@ctl"),
        _step(2, "reverse-final", 100.5, 101.5, {"rounds": [_round("runtime", 2, final=True)]},
              who="lead@ctl"),
        _step(3, "reverse-verify", 101.5, 102.0, {"verify": [
            {"flow": "runtime", "agrees": True, "seconds": 0.4, "report": "/r/rev.html"}]},
              who="lead@ctl"),
        _step(4, "unfreeze-legacy", 102.0, 102.2, {"legacy": "writable"}, who="lead@ctl"),
        _step(5, "switch-back", 102.2, 103.0, {"app1": {"active": "legacy"}},
              host="app_endpoint", who="lead@ctl"),
    ]


def _full() -> dict[str, Any]:
    return build(_run(1, "cutover", 0.0, 16.0), _cutover_steps(),
                 _run(2, "rollback", 100.0, 103.0, who="lead@ctl"), _rollback_steps())


def test_the_timeline_holds_every_step_in_order_with_its_times_host_who_and_attempts() -> None:
    data = _full()
    timeline = data["timeline"]
    assert [(r["run_id"], r["step_id"]) for r in timeline] == [
        *((1, s["step_id"]) for s in _cutover_steps()),
        *((2, s["step_id"]) for s in _rollback_steps())]
    freeze = next(r for r in timeline if r["step_id"] == "freeze")
    assert freeze["seconds"] == pytest.approx(0.5) and freeze["attempts"] == 2
    assert freeze["host"] == "etl1" and freeze["who"] == "ops@ctl" and freeze["status"] == "ok"
    assert freeze["action"] == "freeze" and freeze["started"].endswith("Z")
    switch_back = timeline[-1]
    assert switch_back["host"] == "app_endpoint" and switch_back["who"] == "lead@ctl"


def test_the_write_freeze_runs_from_the_freeze_start_to_the_switch_end() -> None:
    data = _full()
    cutover, rollback = data["freezes"]
    assert cutover["run_id"] == 1 and cutover["start_step"] == "freeze"
    assert cutover["ended_by"] == "switch" and cutover["switched"] is True
    assert cutover["seconds"] == pytest.approx(4.5)   # 10.0 -> 14.5
    assert cutover["max_downtime_s"] == 60.0 and cutover["within_budget"] is True
    # engine.downtime, the runbook's view, says the same
    journal = {"steps": _cutover_steps()}
    assert cutover["seconds"] == pytest.approx(engine.downtime(load_runbook().steps, journal))
    assert rollback["run_id"] == 2 and rollback["start_step"] == "refuse-writes"
    assert rollback["ended_by"] == "switch-back" and rollback["seconds"] == pytest.approx(3.0)


def test_a_resume_a_rollback_and_who_ran_what_are_decisions() -> None:
    data = _full()
    kinds = [d["kind"] for d in data["decisions"]]
    resume = next(d for d in data["decisions"] if d["kind"] == "resume")
    assert resume["step_id"] == "freeze" and "2 times" in resume["text"]
    assert "rollback" in kinds and "budget-abort" not in kinds and "failure" not in kinds
    rollback = next(d for d in data["decisions"] if d["kind"] == "rollback")
    assert rollback["who"] == "lead@ctl" and rollback["run_id"] == 2
    assert [d["at"] for d in data["decisions"]] == sorted(d["at"] for d in data["decisions"])
    who = {o["who"]: o for o in data["operators"]}
    assert who["ops@ctl"]["runs"] == [1] and "freeze" in who["ops@ctl"]["steps"]
    assert who["lead@ctl"]["runs"] == [2] and "switch-back" in who["lead@ctl"]["steps"]


def test_a_budget_abort_and_a_failure_are_decisions_and_the_freeze_ends_at_the_unfreeze() -> None:
    why = ("downtime budget: frozen 0.6s + 1.2s expected for step final-rounds > "
           "--max-downtime 0.5s")
    steps = [*_cutover_steps()[:3],
             _step(8, "budget-unfreeze", 10.7, 10.9, {"legacy": "writable"})]
    data = build(_run(3, "cutover", 0.0, 11.0, status="aborted", detail=why,
                      max_downtime=0.5), steps)
    budget = next(d for d in data["decisions"] if d["kind"] == "budget-abort")
    assert budget["text"] == why and budget["run_id"] == 3
    freeze = data["freezes"][0]
    assert freeze["ended_by"] == "budget-unfreeze" and freeze["switched"] is False
    assert freeze["seconds"] == pytest.approx(0.9) and freeze["within_budget"] is False
    assert data["runs"][0]["not_reached"] == ["final-rounds", "verify-gate", "switch",
                                              "reverse-rounds"]
    # with hooks (another runbook digest) the steps not reached are not known here
    other = build({**_run(3, "cutover", 0.0, 11.0), "runbook_sha": "ab" * 32}, steps)
    assert other["runs"][0]["not_reached"] is None
    assert data["rollback"] is None and data["runs"][0]["status"] == "aborted"

    failed = [*_cutover_steps()[:4],
              _step(5, "verify-gate", 12.0, 13.0, "verify gate: flow runtime differs in quote",
                    status="failed"),
              _step(8, "budget-unfreeze", 13.0, 13.2, {"legacy": "writable"})]
    data = build(_run(4, "cutover", 0.0, 13.3, status="failed",
                      detail="step verify-gate failed: ..."), failed)
    failure = next(d for d in data["decisions"] if d["kind"] == "failure"
                   and d["step_id"] == "verify-gate")
    assert "differs in quote" in failure["text"] and failure["who"] == "ops@ctl"


def test_rounds_per_flow_verify_results_binlog_and_backups() -> None:
    data = _full()
    runtime = data["rounds"]["runtime"]
    assert [(r["run_id"], r["step_id"], r["round"], r["direction"]) for r in runtime] == [
        (1, "catch-up", 4, "forward"), (1, "final-rounds", 5, "forward"),
        (1, "reverse-rounds", 1, "reverse"), (2, "reverse-final", 2, "reverse")]
    final = runtime[1]
    assert final["final"] is True and final["rows_read"] == 10 and final["seconds"] == 0.25
    assert final["watermark"].endswith("Z") and final["watermark_ms"] == int((T0 + 10.4) * 1000)
    assert data["rounds"]["rt_bo"][0]["rows_quarantined"] == 2
    assert [(v["run_id"], v["flow"], v["agrees"], v["direction"]) for v in data["verify"]] == [
        (1, "runtime", True, "forward"), (2, "runtime", True, "reverse")]
    assert data["verify"][0]["report"].endswith("verify-runtime-x.html")
    assert data["binlog"] == [{"run_id": 1, "step_id": "freeze", "file": "mysql-bin.000042",
                               "position": 123456, "waited_s": 0.1,
                               "frozen_at": data["binlog"][0]["frozen_at"]}]
    # the backups the preflight gated on, as its result recorded them
    assert data["backups"] == [{"run_id": 1, "step_id": "preflight", **BACKUP}]


def _writes(stamps: list[float], server: str) -> list[Write]:
    return [Write("quote", "id", i, int(s * 1000), server=server) for i, s in enumerate(stamps)]


def test_the_acked_log_gives_the_longest_gap_around_each_switch() -> None:
    every = [x / 10 for x in range(0, 1100)]  # a write every 100 ms from T0
    before = [T0 + s for s in every if s < 9.9]                # legacy, until the freeze
    galera = [T0 + s for s in every if 14.8 <= s < 99.9]       # Galera, after the switch
    back = [T0 + s for s in every if s >= 103.2]               # legacy again, after rollback
    # a longer gap far from any switch (the app idle): not the downtime of a switch
    early = [T0 - 60.0, T0 - 30.0]
    acked = [*_writes(early, "legacy1"), *_writes(before, "legacy1"),
             *_writes(galera, "galera1"), *_writes(back, "legacy1")]
    data = build(_run(1, "cutover", 0.0, 16.0), _cutover_steps(),
                 _run(2, "rollback", 100.0, 103.0), _rollback_steps(), acked=acked)
    app = data["application"]
    assert app["writes"] == len(acked)
    assert app["by_server"] == {"legacy1": len(early) + len(before) + len(back),
                                "galera1": len(galera)}
    assert app["longest_gap"]["seconds"] == pytest.approx(30.0, abs=0.01)
    cutover, rollback = app["around_freezes"]
    assert cutover["run_id"] == 1 and cutover["seconds"] == pytest.approx(14.8 - 9.8, abs=0.01)
    assert (cutover["from_server"], cutover["to_server"]) == ("legacy1", "galera1")
    assert rollback["run_id"] == 2 and rollback["seconds"] == pytest.approx(103.2 - 99.8,
                                                                            abs=0.01)
    assert (rollback["from_server"], rollback["to_server"]) == ("galera1", "legacy1")
    # without a log: nothing said about the application
    assert _full()["application"] is None


def test_the_html_escapes_details_and_is_self_contained() -> None:
    steps = _cutover_steps()
    steps[4] = _step(5, "verify-gate", 12.0, 13.0, "flow <script>alert('x')</script> & co",
                     status="failed")
    data = build(_run(5, "cutover", 0.0, 13.0, status="failed", who="o'brien <ops>"),
                 steps[:5])
    page = render_html(data)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "o&#x27;brien &lt;ops&gt;" in page
    assert not re.search(r"https?://|src=|<link|@import|url\(", page)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for step in steps[:5]:
        assert step["step_id"] in page
    assert "20261130T101500Z" in page and "backup1:/srv/furet-backups" in page  # gated on
    assert "mysql-bin.000042" in page and "123456" in page
    assert "no acked-writes log" in page
    # a legacy master without a binary log: the freeze recorded no coordinates, said so
    steps[2] = _step(3, "freeze", 10.0, 10.5, {"waited_s": 0.1, "binlog": {}})
    page = render_html(build(_run(5, "cutover", 0.0, 13.0), steps[:3]))
    assert "binary log is off" in page and "mysql-bin" not in page
    # a preflight run with --backups none: no backup known to the run, said so
    ungated = _step(1, "preflight", 0.0, 1.0, {"flows": ["runtime"], "backups": []})
    page = render_html(build(_run(5, "cutover", 0.0, 13.0), [ungated]))
    assert "none recorded: no preflight" in page and "20261130T101500Z" not in page


def test_write_makes_both_files_0640(tmp_path: Path) -> None:
    data = _full()
    json_path, html_path = write(data, tmp_path / "reports")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(data))
    assert html_path.read_text() == render_html(data)
    for path in (json_path, html_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert "1" in json_path.name and json_path.stem == html_path.stem


def test_engine_report_asks_the_etl_host_and_returns_its_paths() -> None:
    class Etl:
        calls: list[list[str]] = []

        def etl(self, args: list[str]) -> Any:
            self.calls.append(list(args))
            return {"json": "/r/a.json", "html": "/r/a.html"}

    etl = Etl()
    assert engine.report(etl, 7, "/var/lib/furet/reports") == {  # type: ignore[arg-type]
        "json": "/r/a.json", "html": "/r/a.html"}
    assert etl.calls == [["cutover", "report", "--run", "7", "--to", "/var/lib/furet/reports"]]


def test_build_takes_the_ledger_dataclasses_too() -> None:
    run = CutoverRun(**{k: v for k, v in _run(1, "cutover", 0.0, 16.0).items()})
    steps = [CutoverStep(**s) for s in _cutover_steps()]
    assert build(run, steps)["timeline"] == build(_run(1, "cutover", 0.0, 16.0),
                                                  _cutover_steps())["timeline"]
