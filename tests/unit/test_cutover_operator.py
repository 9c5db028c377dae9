"""The controller's side of `fab cutover`: option parsing, remote output, budget estimates."""

from __future__ import annotations

import pytest

from migration.cutover import engine
from migration.cutover.operator import options_from
from migration.cutover.platform import _last_line, last_json
from migration.cutover.runbook import Step, load_runbook, runbook_path
from migration.errors import FuretError


def test_options_parse_flows_and_refuse_a_bad_downtime() -> None:
    options = options_from("45", "runtime, shop", None, None, "/srv/reports")
    assert options.max_downtime_s == 45.0 and options.flows == ("runtime", "shop")
    assert options.verify_flows == ("runtime", "cassandra_prod")
    assert options.reports_dir == "/srv/reports"
    with pytest.raises(FuretError, match="--max-downtime 'soon' is not a duration"):
        options_from("soon", None, None, None, "/r")
    with pytest.raises(FuretError, match="must be positive"):
        options_from("0", None, None, None, "/r")
    with pytest.raises(FuretError, match="no flow name"):
        options_from("10", " , ", None, None, "/r")


def test_the_backup_gate_options() -> None:
    default = options_from("2m", None, None, None, "/r")
    assert default.max_downtime_s == 120.0
    assert default.backups is None   # the runbook's preflight says which
    assert default.max_backup_age_s == 86400.0
    chosen = options_from("60", None, None, None, "/r", "legacy", "90m")
    assert chosen.backups == ("legacy",) and chosen.max_backup_age_s == 5400.0
    assert options_from("60", None, None, None, "/r", "none").backups == ()
    with pytest.raises(FuretError, match="--max-backup-age 'yesterday' is not a duration"):
        options_from("60", None, None, None, "/r", None, "yesterday")
    # the preflight gets them (and a run's saved options give them back to `resume`)
    args = engine.step_args(Step("preflight", "preflight"), chosen)
    assert args["backups"] == ["legacy"] and args["max_backup_age_s"] == 5400.0
    saved = engine._options_of({"options": __import__("json").dumps(chosen.as_dict())}, "o@x")
    assert saved.backups == ("legacy",) and saved.max_backup_age_s == 5400.0
    unsaid = engine._options_of({"options": __import__("json").dumps(default.as_dict())}, "o@x")
    assert unsaid.backups is None
    # without --backups the shipped runbook's preflight gets no list: the gate's default
    assert "backups" not in engine.step_args(Step("preflight", "preflight"), default)


def test_the_galera_next_runbook_gates_on_the_old_clusters_ledger() -> None:
    runbook = load_runbook(None, runbook_path("galera-next"))
    preflight = next(s for s in runbook.steps if s.action == "preflight")
    args = engine.step_args(preflight, options_from("2m", None, None, None, "/r"))
    assert args["backups"] == ["galera", "cassandra"] and args["backups_ledger"] == "legacy"
    # --backups still chooses, over the runbook's list; none turns the gate off
    chosen = engine.step_args(preflight, options_from("2m", None, None, None, "/r", "galera"))
    assert chosen["backups"] == ["galera"] and chosen["backups_ledger"] == "legacy"
    assert engine.step_args(preflight, options_from("2m", None, None, None, "/r", "none")
                            )["backups"] == []


def test_the_remote_result_is_the_json_that_ends_the_output() -> None:
    progress = "round 1: 10%\r\nround 1: 100%\r\n"
    assert last_json(progress + '{"a": 1}\r\n') == {"a": 1}
    assert last_json(progress + '{\n  "a": [\n    1\n  ]\n}\n') == {"a": [1]}
    assert last_json("null\n") is None
    with pytest.raises(FuretError, match="no JSON result"):
        last_json("furet: error: flow x: unknown\n")
    # a pty's colours never reach the operator's one line
    assert _last_line("\x1b[1;31mfuret: error:\x1b[0m legacy down\r\n") == \
        "furet: error: legacy down"


def _journal(**steps: dict) -> dict:
    rows = [{"step_id": sid, "status": "ok", "started_at": 100.0, "finished_at": 101.0,
             "detail": "", **row} for sid, row in steps.items()]
    return {"steps": rows, "now": 130.0}


def test_estimates_and_the_freeze_window_come_from_the_journal() -> None:
    runbook = load_runbook()
    journal = _journal(**{"catch-up": {"detail": '{"estimate_final_s": 12.5}'},
                          "freeze": {"started_at": 110.0}})
    final = runbook.step("final-rounds")
    assert engine._estimate(final, journal) == 12.5
    assert engine._estimate(runbook.step("switch"), journal) == engine.SWITCH_ESTIMATE_S
    assert engine._estimate(runbook.step("verify-gate"), journal) == 0.0
    assert engine._frozen_since(runbook.steps, journal) == 110.0
    ended = _journal(freeze={"started_at": 110.0}, switch={"finished_at": 125.5})
    assert engine._frozen_since(runbook.steps, ended) is None
    assert engine.downtime(runbook.steps, ended) == 15.5


def test_step_args_default_to_the_runs_flows() -> None:
    options = engine.CutoverOptions(60, ("a", "b"), ("a",), ("a",), "ops@x", "/rep")
    assert engine.step_args(Step("x", "final_rounds"), options) == {"flows": ["a", "b"]}
    assert engine.step_args(Step("v", "verify_gate"), options) == {"flows": ["a"],
                                                                   "reports_dir": "/rep"}
    # the runbook's own args win
    assert engine.step_args(Step("c", "catch_up", {"flows": ["z"]}), options)["flows"] == ["z"]
