"""What ``fab cutover ACTION`` prints and returns: the operator's side of
:mod:`migration.cutover.engine` (parsing the task's strings, tables, exit codes)."""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from migration.cutover import engine
from migration.cutover.platform import FabricPlatform
from migration.cutover.runbook import load_runbook, runbook_path
from migration.errors import FuretError

ACTIONS = ("plan", "run", "resume", "abort", "rollback", "status")


def _names(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        return default
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise FuretError(f"no flow name in {value!r}")
    return names


def duration(value: str, flag: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m`` or ``24h``."""
    text = value.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:], 0)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise FuretError(f"{flag} {value!r} is not a duration (90, 90s, 30m, 24h)") from None
    if seconds <= 0:
        raise FuretError(f"{flag} must be positive")
    return seconds


def options_from(max_downtime: str, flows: str | None, verify_flows: str | None,
                 reverse_flows: str | None, reports_dir: str, backups: str | None = None,
                 max_backup_age: str = "24h") -> engine.CutoverOptions:
    base = engine.CutoverOptions()
    # no --backups: the runbook's preflight says which (else legacy, galera, cassandra)
    chosen = (backups or "").strip()
    kinds = None if not chosen else () if chosen == "none" else _names(chosen, ())
    return engine.CutoverOptions(duration(max_downtime, "--max-downtime"),
                                 _names(flows, base.flows),
                                 _names(verify_flows, base.verify_flows),
                                 _names(reverse_flows, base.reverse_flows), base.who,
                                 reports_dir, kinds,
                                 duration(max_backup_age, "--max-backup-age"))


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def print_status(journal: dict[str, Any] | None, steps: Sequence[Any],
                 out: TextIO) -> None:
    if journal is None:
        print("cutover: no run in the journal", file=out)
        return
    print(f"{journal['kind']} run {journal['run_id']}: {journal['status']} (started "
          f"{_when(journal['started_at'])} UTC by {journal['who']})"
          + (f": {journal['detail']}" if journal["detail"] else ""), file=out)
    for row in journal["steps"]:
        took = ("" if row["finished_at"] is None
                else f"{row['finished_at'] - row['started_at']:.1f}s")
        print(f"  {row['seq']:>2} {row['step_id']:<16} {row['status']:<8} "
              f"attempts {row['attempts']} on {row['host']:<12} {_when(row['started_at'])} "
              f"{took:>8}  {row['detail'][:120]}", file=out)
    frozen = engine.downtime(steps, journal)
    if frozen is not None:
        print(f"  write freeze: {frozen:.1f}s (from the freeze's start to the switch's end)",
              file=out)


def _report(platform: FabricPlatform, run_id: int, reports_dir: str, local_reports: str,
            out: TextIO) -> Path | None:
    """The run's report written on the ETL host and copied here; a report that cannot be
    made is said in one line and does not change the outcome."""
    try:
        written = engine.report(platform, run_id, reports_dir)
        html = platform.fetch_from_etl(str(written["html"]), local_reports)
        platform.fetch_from_etl(str(written["json"]), local_reports)
    except FuretError as exc:
        print(f"cutover report of run {run_id}: not written ({exc})", file=out)
        return None
    print(f"cutover report: {html} (and {html.with_suffix('.json').name}; on "
          f"{platform.etl_host().name}: {written['html']})", file=out)
    return html


def main(action: str, inventory: str, *, max_downtime: str = "120", hooks: str | None = None,
         flows: str | None = None, verify_flows: str | None = None,
         reverse_flows: str | None = None, backups: str | None = None,
         max_backup_age: str = "24h", local_reports: str = "reports",
         runbook_name: str | None = None, out: TextIO = sys.stderr) -> int:
    if action not in ACTIONS:
        raise FuretError(f"no cutover action {action!r} (one of {', '.join(ACTIONS)})")
    runbook = load_runbook(Path(hooks) if hooks else None, runbook_path(runbook_name))
    platform = FabricPlatform(inventory)
    options = options_from(max_downtime, flows, verify_flows, reverse_flows,
                           platform.etl_host().remote.reports, backups, max_backup_age)
    try:
        if action == "plan":
            lines = engine.plan(platform, runbook, options)
            for line in lines:
                mark = "ok  " if line.ok else "FAIL"
                print(f"{mark} {line.step:<16} {line.action:<16} {line.where:<12} "
                      f"{line.detail}", file=out)
            failed = [line.step for line in lines if not line.ok]
            print(f"cutover plan: {len(lines) - len(failed)} of {len(lines)} steps ready"
                  + (f"; not ready: {', '.join(failed)}" if failed else "; nothing changed"),
                  file=out)
            return 1 if failed else 0
        if action == "status":
            journal = engine.journal_show(platform)
            steps = runbook.rollback if journal and journal["kind"] == "rollback" else runbook.steps
            print_status(journal, steps, out)
            return 0
        try:
            if action == "run":
                outcome = engine.run(platform, runbook, options, out)
            elif action == "resume":
                outcome = engine.resume(platform, runbook, options.who, out)
            elif action == "abort":
                outcome = engine.abort(platform, runbook, options.who, out)
            else:
                outcome = engine.rollback(platform, runbook, options, out)
        except FuretError:
            # a step failed: the report of the run still says how far it went, and why
            journal = engine.journal_show(platform)
            if journal is not None:
                _report(platform, int(journal["run_id"]), options.reports_dir, local_reports,
                        out)
            raise
        journal = engine.journal_show(platform, outcome.run_id)
        steps = runbook.rollback if outcome.kind == "rollback" else runbook.steps
        print_status(journal, steps, out)
        html = _report(platform, outcome.run_id, options.reports_dir, local_reports, out)
        print(json.dumps({"run": outcome.run_id, "kind": outcome.kind,
                          "status": outcome.status, "report": str(html or "")}),
              file=sys.stdout, flush=True)
        return 0 if outcome.status == "done" else 1
    finally:
        platform.close()
