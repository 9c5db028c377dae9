"""The cutover's journal, on the ETL host: ``furet cutover journal ...`` and ``furet cutover
step ...``, the two commands :mod:`migration.cutover.engine` (on the controller) runs there.

The journal is in the ledger on the target (furet.cutover_runs, furet.cutover_steps; the
SQL is :mod:`migration.engine.ledger`'s): one run per ``fab cutover run`` (or
``rollback``), one row per step with its attempts, host, who, times (the target's clock)
and result. ``step`` journals a step's start, runs its action
(:mod:`migration.cutover.actions`) and journals how it ended, in one process: one SSH round
trip per step, which matters inside the write freeze.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Mapping
from typing import Any

from migration.config import FuretConfig
from migration.cutover.actions import ACTIONS
from migration.engine import ledger
from migration.errors import FuretError

RUN_KINDS = ("cutover", "rollback")
END_STATUSES = ("done", "aborted", "failed")


def describe(run: ledger.CutoverRun, steps: list[ledger.CutoverStep]) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["steps"] = [dataclasses.asdict(s) for s in steps]
    return data


def open_run(config: FuretConfig, kind: str, runbook_sha: str, who: str,
             options: Mapping[str, Any]) -> dict[str, Any]:
    """A new run; refused while another is unfinished (resume or abort it first)."""
    if kind not in RUN_KINDS:
        raise FuretError(f"cutover: unknown run kind {kind!r}")
    with ledger.opened(config.target) as conn:
        running = ledger.cutover_open_run(conn)
        if running is not None:
            raise FuretError(f"cutover: {running.kind} run {running.run_id} (started by "
                             f"{running.who}) is not finished: `fab cutover resume` continues "
                             "it, `fab cutover abort` ends it")
        run_id = ledger.cutover_start_run(conn, runbook_sha, who, kind,
                                          json.dumps(dict(options), sort_keys=True))
        run = ledger.cutover_run(conn, run_id)
        assert run is not None
        return describe(run, [])


def show(config: FuretConfig, run_id: int | None = None,
         kind: str | None = None) -> dict[str, Any] | None:
    """The run ``run_id``, else the unfinished one, else the latest (of ``kind``)."""
    with ledger.opened(config.target) as conn:
        run = (ledger.cutover_run(conn, run_id) if run_id is not None
               else ledger.cutover_open_run(conn) or ledger.cutover_run(conn, kind=kind))
        return None if run is None else describe(run, ledger.cutover_steps(conn, run.run_id))


def mark_step(config: FuretConfig, run_id: int, seq: int, step_id: str, status: str,
              who: str, host: str, detail: str = "") -> None:
    """Journal a step the controller runs itself (``started``, then how it ended)."""
    with ledger.opened(config.target) as conn:
        if status == "started":
            ledger.cutover_step_started(conn, run_id, seq, step_id, host, who)
        else:
            ledger.cutover_step_finished(conn, run_id, step_id, status, detail)


def close_run(config: FuretConfig, run_id: int, status: str, detail: str = "") -> None:
    if status not in END_STATUSES:
        raise FuretError(f"cutover: a run ends {', '.join(END_STATUSES)}, not {status!r}")
    with ledger.opened(config.target) as conn:
        ledger.cutover_finish_run(conn, run_id, status, detail)


def run_step(config: FuretConfig, run_id: int, seq: int, step_id: str, action: str,
             args: Mapping[str, Any], who: str) -> dict[str, Any]:
    """Journal the start, run the action here, journal ``ok`` with its result or
    ``failed`` with the one line that says why (and raise it again)."""
    if action not in ACTIONS:
        raise FuretError(f"cutover step {step_id}: no action {action!r} on the ETL host "
                         f"({', '.join(sorted(ACTIONS))})")
    host = socket.gethostname()
    mark_step(config, run_id, seq, step_id, "started", who, host)
    started = time.monotonic()
    try:
        result = ACTIONS[action](config, args)
    except FuretError as exc:
        mark_step(config, run_id, seq, step_id, "failed", who, host, str(exc))
        raise
    result = {**result, "seconds": round(time.monotonic() - started, 3)}
    mark_step(config, run_id, seq, step_id, "ok", who, host,
              json.dumps(result, sort_keys=True, default=str))
    return result
