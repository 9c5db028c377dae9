"""The cutover's journal in the ledger (schema 5), on a real MariaDB target."""

from __future__ import annotations

import contextlib

from migration.db import connect
from migration.engine import ledger


def test_a_step_started_again_after_a_kill_stays_one_row_with_its_attempts(fresh) -> None:
    settings = fresh["target"].settings()
    with contextlib.closing(connect(settings, autocommit=False, strict=True)) as conn:
        assert ledger.ensure_ledger(conn) == 0
        assert ledger.schema_version(conn) == ledger.LEDGER_VERSION
        assert ledger.cutover_open_run(conn) is None
        run_id = ledger.cutover_start_run(conn, "a" * 64, "ops@ctl", "cutover", '{"x": 1}')
        ledger.cutover_step_started(conn, run_id, 1, "preflight", "ctl", "ops@ctl")
        ledger.cutover_step_finished(conn, run_id, "preflight", "ok", "3 checks")
        ledger.cutover_step_started(conn, run_id, 2, "freeze", "legacy1", "ops@ctl")
        # killed here; `resume` finds the run and starts the step again
        running = ledger.cutover_open_run(conn)
        assert running is not None
        assert (running.run_id, running.kind, running.runbook_sha, running.options,
                running.status, running.who) == (run_id, "cutover", "a" * 64, '{"x": 1}',
                                                 "running", "ops@ctl")
        assert running.now >= running.started_at
        ledger.cutover_step_started(conn, run_id, 2, "freeze", "legacy1", "ops@ctl")
        ledger.cutover_step_finished(conn, run_id, "freeze", "ok")
        steps = ledger.cutover_steps(conn, run_id)
        assert [(s.step_id, s.status, s.attempts) for s in steps] == [
            ("preflight", "ok", 1), ("freeze", "ok", 2)]
        assert steps[0].detail == "3 checks"
        assert all(s.finished_at is not None and s.finished_at >= s.started_at for s in steps)
        ledger.cutover_finish_run(conn, run_id, "done", "all steps ok")
        assert ledger.cutover_open_run(conn) is None
        done = ledger.cutover_run(conn, run_id)
        assert done is not None and (done.status, done.detail) == ("done", "all steps ok")
        assert ledger.cutover_run(conn, kind="rollback") is None
        latest = ledger.cutover_run(conn, kind="cutover")
        assert latest is not None and latest.run_id == run_id
