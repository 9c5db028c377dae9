"""`fab cutover plan|run|resume|abort|rollback|status`: the runbook driven from the
controller, one step at a time, each journaled in the ledger.

Where each step runs:

- the ETL host's actions (:mod:`migration.cutover.actions`: preflight, rounds, freeze,
  verify gate, reverse rounds) as one ``furet cutover step`` there, which journals the
  step's start, runs it and journals its end, in one SSH round trip;
- ``switch_endpoint`` as ``furet endpoint switch`` on every host of the app_endpoint
  group, and hook ``command`` steps on their group (or the controller), each journaled
  around by ``furet cutover journal mark`` on the ETL host.

A killed ``fab`` (kill -9, a lost laptop) leaves its step ``started``; ``resume`` runs that
step again (every action is idempotent) and the steps after it; a step that ended ``ok`` is
never run twice, so every step appears once in the journal. Remote commands run in a pty,
so they end with the SSH connection that ran them (rather than racing the resumed step).

The write freeze (the steps from ``downtime: start`` to ``downtime: end``) is held against
``max_downtime_s``: before each step inside it, the time frozen so far (the target's
clock) plus the step's estimate must fit, else the runbook unfreezes the legacy master and
stops before the switch, saying why. A step that fails inside the freeze unfreezes too: the
application never stays frozen because a cutover stopped. After the switch nothing is
undone automatically: ``rollback`` is the operator's decision. A rollback step that fails
leaves its run open, the application's writes refused at the endpoint, and says so: the
operator resumes it, or lets the application write Galera again (``furet endpoint switch``).
"""

from __future__ import annotations

import getpass
import json
import shlex
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from migration.cutover.actions import ACTIONS as ETL_ACTIONS
from migration.cutover.runbook import Runbook, Step
from migration.errors import FuretError

ETL_GROUP = "etl"
ENDPOINT_GROUP = "app_endpoint"
SWITCH_ESTIMATE_S = 5.0


class Platform(Protocol):
    """How the engine reaches the hosts (Fabric over SSH; tests may use their own)."""

    def etl(self, args: Sequence[str]) -> Any:
        """``furet <args>`` on the ETL host; its last JSON line, or FuretError (one line)."""

    def furet_on(self, group: str, args: Sequence[str]) -> dict[str, Any]:
        """``furet <args>`` on every host of ``group``: host -> its last JSON line."""

    def shell_on(self, group: str, line: str) -> None:
        """A hook's shell command on every host of ``group`` (``local``: the controller)."""

    def hosts_of(self, group: str) -> list[str]:
        """The host names of an inventory group ([] when it has none)."""


@dataclass(frozen=True)
class CutoverOptions:
    max_downtime_s: float = 120.0
    flows: tuple[str, ...] = ("runtime", "cassandra_prod", "rt_bo")
    verify_flows: tuple[str, ...] = ("runtime", "cassandra_prod")
    reverse_flows: tuple[str, ...] = ("runtime",)
    who: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")
    # where the ETL host writes the verify reports (the inventory's etl_runner_reports_dir)
    reports_dir: str = "/var/lib/furet/reports"
    # the preflight's backup gate: these kinds (None: the runbook's preflight `backups`,
    # else legacy, galera and cassandra), each younger than this (seconds)
    backups: tuple[str, ...] | None = None
    max_backup_age_s: float = 86400.0

    def as_dict(self) -> dict[str, Any]:
        return {"max_downtime_s": self.max_downtime_s, "flows": list(self.flows),
                "verify_flows": list(self.verify_flows),
                "reverse_flows": list(self.reverse_flows), "reports_dir": self.reports_dir,
                "backups": None if self.backups is None else list(self.backups),
                "max_backup_age_s": self.max_backup_age_s}


@dataclass
class Outcome:
    run_id: int
    kind: str
    status: str                       # done | aborted | failed
    lines: list[str] = field(default_factory=list)


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def step_args(step: Step, options: CutoverOptions) -> dict[str, Any]:
    """The args a step's action gets: the runbook's, with the run's flows by default."""
    args = dict(step.args)
    if step.action in ("preflight", "catch_up", "final_rounds"):
        args.setdefault("flows", list(options.flows))
    elif step.action in ("verify_gate",):
        args.setdefault("flows", list(options.verify_flows))
    elif step.action in ("reverse_rounds", "reverse_final", "reverse_verify"):
        args.setdefault("flows", list(options.reverse_flows))
    if step.action in ("verify_gate", "reverse_verify"):
        args.setdefault("reports_dir", options.reports_dir)
    if step.action == "preflight":
        if options.backups is not None:  # --backups: over the runbook's own
            args["backups"] = list(options.backups)
        args.setdefault("max_backup_age_s", options.max_backup_age_s)
    return args


def journal_show(platform: Platform, run_id: int | None = None,
                  kind: str | None = None) -> dict[str, Any] | None:
    args = ["cutover", "journal", "show"]
    if run_id is not None:
        args += ["--run", str(run_id)]
    if kind is not None:
        args += ["--kind", kind]
    result = platform.etl(args)
    return result if isinstance(result, dict) else None


def _mark(platform: Platform, run_id: int, seq: int, step: Step, status: str, who: str,
          host: str, detail: str = "") -> None:
    platform.etl(["cutover", "journal", "mark", "--run", str(run_id), "--seq", str(seq),
                  "--step", step.id, "--status", status, "--who", who, "--host", host,
                  "--detail", detail])


def _close(platform: Platform, run_id: int, status: str, detail: str = "") -> None:
    platform.etl(["cutover", "journal", "close", "--run", str(run_id), "--status", status,
                  "--detail", detail])


# -- running steps --------------------------------------------------------------------------

def run_step(platform: Platform, run_id: int, seq: int, step: Step,
             options: CutoverOptions) -> Any:
    """Run one step where it belongs, journaled; raise FuretError when it fails."""
    args = step_args(step, options)
    if step.action in ETL_ACTIONS:
        return platform.etl(["cutover", "step", "--run", str(run_id), "--seq", str(seq),
                             "--step", step.id, "--action", step.action,
                             "--args", json.dumps(args, sort_keys=True),
                             "--who", options.who])
    run: Callable[[], Any]
    if step.action == "switch_endpoint":
        where, run = ENDPOINT_GROUP, (lambda: platform.furet_on(
            ENDPOINT_GROUP, ["endpoint", "switch", "--to", str(args.get("to", "")), "--json"]))
    elif step.action == "command":
        group = str(args["hosts"])
        where, run = group, (lambda: platform.shell_on(group, str(args["run"])))
    else:
        raise FuretError(f"cutover step {step.id}: no action {step.action!r}")
    _mark(platform, run_id, seq, step, "started", options.who, where)
    try:
        result = run()
    except FuretError as exc:
        _mark(platform, run_id, seq, step, "failed", options.who, where, str(exc))
        raise
    _mark(platform, run_id, seq, step, "ok", options.who, where,
          json.dumps(result, sort_keys=True, default=str))
    return result


def _estimate(step: Step, journal: dict[str, Any]) -> float:
    """Seconds a step inside the freeze is expected to take: the final rounds as long as
    the catch-up's last rounds, the switch a few seconds; others are measured as they go."""
    if step.action == "final_rounds":
        for row in journal["steps"]:
            if row["status"] == "ok" and row["detail"].startswith("{"):
                detail = json.loads(row["detail"])
                if "estimate_final_s" in detail:
                    return float(detail["estimate_final_s"])
    if step.action == "switch_endpoint":
        return SWITCH_ESTIMATE_S
    return 0.0


def freeze_marks(steps: Sequence[Step]) -> tuple[str | None, str | None]:
    """The ids of the steps that start and end the write freeze."""
    return (next((s.id for s in steps if s.downtime == "start"), None),
            next((s.id for s in steps if s.downtime == "end"), None))


def _frozen_since(steps: Sequence[Step], journal: dict[str, Any]) -> float | None:
    """When the freeze started (the target's clock), if it has and has not ended."""
    start, end = freeze_marks(steps)
    rows = {r["step_id"]: r for r in journal["steps"]}
    if start not in rows or (end in rows and rows[end]["status"] == "ok"):
        return None
    return float(rows[start]["started_at"])


def _unfreeze_after(platform: Platform, run_id: int, seq: int, unfreeze: Step,
                    options: CutoverOptions) -> str:
    """The unfreeze of a run that stops inside its freeze; what it did, as the end of the
    run's reason. One that fails does not keep the run open: its reason says so, and `fab
    cutover abort` cannot help (the run is closed), `furet legacy unfreeze` can."""
    try:
        run_step(platform, run_id, seq, unfreeze, options)
    except FuretError as exc:
        return (f"; the unfreeze failed ({exc}): run `furet legacy unfreeze` on the ETL host "
                "once the source is reachable")
    return "; the legacy master is writable again"


def execute(platform: Platform, run: dict[str, Any], steps: Sequence[Step],
            options: CutoverOptions, out: TextIO = sys.stderr,
            on_step: Callable[[Step, str], None] | None = None) -> Outcome:
    """Run the steps of an open run that have not ended ``ok``, in order."""
    run_id, kind = int(run["run_id"]), str(run["kind"])
    outcome = Outcome(run_id, kind, "done")
    unfreeze = Step("budget-unfreeze", "unfreeze")
    for seq, step in enumerate(steps, 1):
        journal = journal_show(platform, run_id) or {"steps": [], "now": 0.0}
        done = {r["step_id"]: r for r in journal["steps"] if r["status"] == "ok"}
        if step.id in done:
            continue
        frozen_since = _frozen_since(steps, journal)
        if frozen_since is not None and kind == "cutover":
            frozen = float(journal["now"]) - frozen_since
            expected = _estimate(step, journal)
            if frozen + expected > options.max_downtime_s:
                why = (f"downtime budget: frozen {frozen:.1f}s + {expected:.1f}s expected for "
                       f"step {step.id} > --max-downtime {options.max_downtime_s:g}s")
                unfrozen = _unfreeze_after(platform, run_id, len(steps) + 1, unfreeze, options)
                _close(platform, run_id, "aborted", why + unfrozen)
                _say(out, f"cutover run {run_id}: {why}{unfrozen}, nothing was switched")
                outcome.status = "aborted"
                outcome.lines.append(why)
                return outcome
        _say(out, f"cutover run {run_id} step {seq}/{len(steps)} {step.id} ({step.action})")
        if on_step is not None:
            on_step(step, "started")
        try:
            result = run_step(platform, run_id, seq, step, options)
        except FuretError as exc:
            why = f"step {step.id} failed: {exc}"
            if kind == "cutover" and (frozen_since is not None or step.downtime == "start"):
                why += _unfreeze_after(platform, run_id, len(steps) + 1, unfreeze, options)
                why += ", nothing was switched"
                _close(platform, run_id, "failed", why)
                outcome.status = "failed"
            elif kind == "rollback" and frozen_since is not None:
                # the application's writes are refused at the endpoint: nothing is undone
                # behind the operator's back, who resumes or lets Galera take them again
                outcome.status = "stopped"
                why += (f"; the application's writes are refused at the endpoint: fix it, then "
                        f"`fab cutover resume` (run {run_id} stays open), or `furet endpoint "
                        "switch --to galera` on the app_endpoint hosts to let it write Galera "
                        "again")
            else:
                outcome.status = "stopped"
                why += f"; fix it, then `fab cutover resume` (run {run_id} stays open)"
            outcome.lines.append(why)
            raise FuretError(f"cutover run {run_id}: {why}") from None
        _say(out, f"cutover run {run_id} step {step.id}: ok {json.dumps(result, default=str)}"
                  [:400])
        if on_step is not None:
            on_step(step, "ok")
    _close(platform, run_id, "done")
    return outcome


# -- the operations -------------------------------------------------------------------------

def run(platform: Platform, runbook: Runbook, options: CutoverOptions,
        out: TextIO = sys.stderr) -> Outcome:
    opened = platform.etl(["cutover", "journal", "open", "--kind", "cutover",
                           "--runbook-sha", runbook.sha256, "--who", options.who,
                           "--options", json.dumps(options.as_dict())])
    return execute(platform, opened, runbook.steps, options, out)


def _options_of(run: dict[str, Any], who: str) -> CutoverOptions:
    """The options a run started with (a resume keeps them)."""
    saved = json.loads(run.get("options") or "{}")
    base = CutoverOptions(who=who)
    return CutoverOptions(float(saved.get("max_downtime_s", base.max_downtime_s)),
                          tuple(saved.get("flows", ())) or base.flows,
                          tuple(saved.get("verify_flows", ())) or base.verify_flows,
                          tuple(saved.get("reverse_flows", ())) or base.reverse_flows,
                          who, str(saved.get("reports_dir") or base.reports_dir),
                          None if saved.get("backups") is None
                          else tuple(saved["backups"]),
                          float(saved.get("max_backup_age_s", base.max_backup_age_s)))


def _same_runbook(run_row: dict[str, Any], runbook: Runbook, what: str) -> None:
    """Refuse to ``what`` a run with steps other than those it ran: another --runbook (the
    galera-next runbook's rollback switches back to the old cluster, the shipped one's to
    the legacy master), another --hooks file, or either changed since."""
    if run_row["runbook_sha"] != runbook.sha256:
        raise FuretError(f"cutover run {run_row['run_id']} ran another runbook or --hooks file "
                         f"(or it changed since): {what} with the --runbook and --hooks it "
                         "ran with")


def resume(platform: Platform, runbook: Runbook, who: str,
           out: TextIO = sys.stderr) -> Outcome:
    """Continue the unfinished run with the options it started with."""
    run_row = journal_show(platform)
    if run_row is None or run_row["status"] != "running":
        raise FuretError("cutover: no unfinished run to resume (`fab cutover status`)")
    _same_runbook(run_row, runbook, "resume")
    steps = runbook.steps if run_row["kind"] == "cutover" else runbook.rollback
    _say(out, f"cutover: resuming {run_row['kind']} run {run_row['run_id']} "
              f"(started by {run_row['who']})")
    return execute(platform, run_row, steps, _options_of(run_row, who), out)


def abort(platform: Platform, runbook: Runbook, who: str,
          out: TextIO = sys.stderr) -> Outcome:
    """End the unfinished cutover run before its switch: the legacy writable again."""
    run_row = journal_show(platform)
    if run_row is None or run_row["status"] != "running":
        raise FuretError("cutover: no unfinished run to abort")
    _same_runbook(run_row, runbook, "abort")
    run_id = int(run_row["run_id"])
    rows = {r["step_id"]: r for r in run_row["steps"]}
    switch = freeze_marks(runbook.steps)[1]
    if run_row["kind"] == "cutover" and switch is not None and switch in rows:
        raise FuretError(f"cutover run {run_id}: step {switch} has run (the application "
                         "may write to Galera): `fab cutover resume` to finish, or "
                         "`fab cutover rollback` after it")
    options = _options_of(run_row, who)
    if run_row["kind"] == "cutover" and _frozen_since(runbook.steps, run_row) is not None:
        run_step(platform, run_id, len(runbook.steps) + 1, Step("abort-unfreeze", "unfreeze"),
                 options)
    _close(platform, run_id, "aborted", f"aborted by {who}")
    _say(out, f"cutover run {run_id}: aborted; the legacy master is writable")
    return Outcome(run_id, str(run_row["kind"]), "aborted")


def rollback(platform: Platform, runbook: Runbook, options: CutoverOptions,
             out: TextIO = sys.stderr) -> Outcome:
    """After a switch: the application refused, the last reverse round, a reverse verify,
    the legacy writable and the endpoint back on it (the runbook's ``rollback:`` steps)."""
    last = journal_show(platform, kind="cutover")
    switch = freeze_marks(runbook.steps)[1]
    switched = last is not None and any(
        r["step_id"] == switch and r["status"] in ("ok", "started") for r in last["steps"])
    if not switched:
        raise FuretError("cutover: nothing to roll back (no cutover run has switched the "
                         "endpoint); `fab cutover abort` ends a run before its switch")
    assert last is not None
    _same_runbook(last, runbook, "roll back")
    if last["status"] == "running":
        _close(platform, int(last["run_id"]), "aborted", f"rolled back by {options.who}")
    opened = platform.etl(["cutover", "journal", "open", "--kind", "rollback",
                           "--runbook-sha", runbook.sha256, "--who", options.who,
                           "--options", json.dumps(options.as_dict())])
    return execute(platform, opened, runbook.rollback, options, out)


# -- plan and status ------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanLine:
    step: str
    action: str
    where: str
    ok: bool
    detail: str


def plan(platform: Platform, runbook: Runbook, options: CutoverOptions) -> list[PlanLine]:
    """Every step with its preconditions evaluated against the real hosts; nothing is
    changed (no journal row, no read_only, no HAProxy change)."""
    lines = []
    for step in runbook.steps:
        args = step_args(step, options)
        try:
            if step.action in ETL_ACTIONS:
                where = ETL_GROUP
                result = platform.etl(["cutover", "check", "--action", step.action,
                                       "--args", json.dumps(args, sort_keys=True)])
                detail = str(result.get("check", "ok")) if isinstance(result, dict) else "ok"
            elif step.action == "switch_endpoint":
                where = ENDPOINT_GROUP
                results = platform.furet_on(ENDPOINT_GROUP, [
                    "endpoint", "switch", "--to", str(args.get("to", "")), "--dry-run",
                    "--json"])
                detail = "; ".join(_switch_plan(h, r) for h, r in results.items())
            elif step.action == "command":
                where = str(args["hosts"])
                hosts = ["controller"] if where == "local" else platform.hosts_of(where)
                if not hosts:
                    raise FuretError(f"no host in group {where}")
                detail = f"would run on {', '.join(hosts)}: {shlex.quote(str(args['run']))}"
            else:
                raise FuretError(f"no action {step.action!r}")
            lines.append(PlanLine(step.id, step.action, where, True, detail))
        except FuretError as exc:
            lines.append(PlanLine(step.id, step.action, step.action, False, str(exc)))
    return lines


def _switch_plan(host: str, result: Any) -> str:
    if not isinstance(result, dict) or "from" not in result:
        return f"{host}: {json.dumps(result, default=str)[:200]}"
    if result["from"] == result["to"]:
        return f"{host}: already on {result['to']}"
    return f"{host}: would switch {result['from']} -> {result['to']}"


def downtime(steps: Sequence[Step], journal: Mapping[str, Any]) -> float | None:
    """Seconds from the freeze's start to the end of the step that ends it (journal)."""
    start, end = freeze_marks(steps)
    rows = {r["step_id"]: r for r in journal["steps"]}
    if start in rows and end in rows and rows[end]["finished_at"] is not None:
        return float(rows[end]["finished_at"]) - float(rows[start]["started_at"])
    return None


def report(platform: Platform, run_id: int, reports_dir: str) -> dict[str, Any]:
    """The cutover report of run ``run_id`` (a cutover run, or the rollback run after it)
    written on the ETL host in ``reports_dir``: ``{"json": path, "html": path}`` there."""
    result = platform.etl(["cutover", "report", "--run", str(run_id), "--to", reports_dir])
    if not isinstance(result, dict) or not {"json", "html"} <= set(result):
        raise FuretError(f"cutover run {run_id}: the ETL host's `furet cutover report` "
                         "printed no {json, html} paths")
    return result
