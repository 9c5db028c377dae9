"""The cutover report: ``furet cutover report [--run N] [--acked FILE] --to DIR`` on the ETL
host writes one JSON file and one self-contained HTML page (inline CSS, no external asset,
like :mod:`migration.verify.report`) for a cutover run and the rollback run that followed it.

Everything in it comes from the journal (furet.cutover_runs / furet.cutover_steps, read with
:func:`migration.cutover.journal.show`) and, when given, the web app's acked-writes log
(``furet legacy traffic --acked``); nothing is estimated or filled in. A section with
nothing recorded says so (the backups: a run whose preflight gated on none).

- **Times** are the target's clock (epoch seconds; ISO UTC in the files).
- **The write freeze, as the runbook saw it**: from the start of the ``downtime: start``
  step to the end of the ``downtime: end`` step (:func:`migration.cutover.engine.downtime`)
  or, when the run stopped before its switch, to the end of the engine's unfreeze.
- **The downtime, as the application saw it**: the longest gap between two consecutive
  acknowledged writes (sorted by their stamps) that overlaps the freeze. A write's stamp
  is the app's clock when its transaction started, not when it was acknowledged: a late
  commit is acknowledged up to ~1.5 s after its stamp, so the gap is that precise; the app
  host's and the target's clocks are taken to agree (NTP).
- **Decisions**: who opened each run, steps run more than once (a resume after a kill),
  failed steps, budget aborts, aborts, the rollback, how each run ended.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from migration.config import FuretConfig
from migration.cutover.engine import downtime, freeze_marks
from migration.cutover.runbook import Runbook, Step, load_runbook
from migration.errors import FuretError
from migration.legacy.traffic import Write, read_acked
from migration.paths import write_report_file
from migration.verify.report import CSS as VERIFY_CSS
from migration.verify.window import ms_to_iso

# Steps the engine adds to a cutover run itself (migration/cutover/engine.py): the
# unfreeze after a budget abort or a failure inside the freeze, and after `abort`.
ENGINE_UNFREEZES = ("budget-unfreeze", "abort-unfreeze")
REVERSE_ACTIONS = ("reverse_rounds", "reverse_final", "reverse_verify")
ROUND_FIELDS = ("round", "final", "rows_read", "rows_written", "rows_quarantined", "seconds",
                "watermark_ms")


def _row(value: Any) -> dict[str, Any]:
    """A journal row as a dict, whether from ``journal.show`` (JSON) or the ledger."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value)


def iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _result(detail: str) -> dict[str, Any] | None:
    """A step's result (the JSON its action returned); None for a failure line."""
    if not detail.startswith("{"):
        return None
    try:
        value = json.loads(detail)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _options(run: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(run.get("options") or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _plan(runbook: Runbook, kind: str) -> tuple[Step, ...]:
    return runbook.rollback if kind == "rollback" else runbook.steps


# -- the parts --------------------------------------------------------------------------------

def _timeline(run: Mapping[str, Any], rows: Sequence[dict[str, Any]],
              plan: Sequence[Step]) -> list[dict[str, Any]]:
    known = {s.id: s for s in plan}
    out = []
    for r in sorted(rows, key=lambda r: (r["started_at"], r["seq"])):
        step = known.get(r["step_id"])
        action = step.action if step else ("unfreeze" if r["step_id"] in ENGINE_UNFREEZES
                                           else "")
        marker = step.downtime if step else ("end" if r["step_id"] in ENGINE_UNFREEZES else "")
        end = r["finished_at"]
        out.append({"run_id": run["run_id"], "kind": run["kind"], "seq": r["seq"],
                    "step_id": r["step_id"], "action": action, "downtime": marker,
                    "status": r["status"], "attempts": r["attempts"], "host": r["host"],
                    "who": r["who"], "started_at": r["started_at"],
                    "started": iso(r["started_at"]), "finished_at": end, "finished": iso(end),
                    "seconds": None if end is None else round(end - r["started_at"], 3),
                    "detail": r["detail"], "result": _result(r["detail"])})
    return out


def _freeze(run: Mapping[str, Any], rows: Sequence[dict[str, Any]],
            plan: Sequence[Step]) -> dict[str, Any] | None:
    """The write freeze of one run (None when it never started)."""
    start, end = freeze_marks(plan)
    by_id = {r["step_id"]: r for r in rows}
    if start not in by_id:
        return None
    started_at = float(by_id[start]["started_at"])
    ended_by, ended_at, seconds = "", None, None
    switched = end in by_id and by_id[end]["status"] == "ok"
    if switched:
        seconds = downtime(plan, {"steps": rows})
        ended_by, ended_at = str(end), by_id[str(end)]["finished_at"]
    else:
        unfreeze = next((by_id[u] for u in ENGINE_UNFREEZES
                         if u in by_id and by_id[u]["status"] == "ok"), None)
        if unfreeze is not None:
            ended_by, ended_at = unfreeze["step_id"], unfreeze["finished_at"]
            seconds = float(ended_at) - started_at
    budget = _options(run).get("max_downtime_s") if run["kind"] == "cutover" else None
    return {"run_id": run["run_id"], "kind": run["kind"], "start_step": start,
            "end_step": end, "ended_by": ended_by, "switched": switched,
            "started_at": started_at, "started": iso(started_at), "ended_at": ended_at,
            "ended": iso(ended_at), "seconds": None if seconds is None else round(seconds, 3),
            "max_downtime_s": budget,
            "within_budget": (None if budget is None or seconds is None
                              else seconds <= float(budget))}


def _rounds(timeline: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each flow's rounds, in the order they ran, from the round steps' results (the
    catch-up keeps the last round of each flow only)."""
    flows: dict[str, list[dict[str, Any]]] = {}
    for t in timeline:
        result = t["result"] or {}
        if isinstance(result.get("rounds"), list):
            found, note = result["rounds"], ""
        elif isinstance(result.get("last"), dict):
            found = list(result["last"].values())
            note = f"the last of {result.get('rounds', '?')} catch-up rounds"
        else:
            continue
        for r in found:
            if not isinstance(r, dict) or "flow" not in r:
                continue
            row = {"run_id": t["run_id"], "step_id": t["step_id"],
                   "direction": "reverse" if t["action"] in REVERSE_ACTIONS else "forward",
                   "flow": r["flow"], **{k: r.get(k) for k in ROUND_FIELDS},
                   "watermark": ms_to_iso(r.get("watermark_ms")), "note": note}
            flows.setdefault(str(r["flow"]), []).append(row)
    return flows


def _verify(timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in timeline:
        for v in (t["result"] or {}).get("verify", []) or []:
            if isinstance(v, dict):
                out.append({"run_id": t["run_id"], "step_id": t["step_id"],
                            "direction": ("reverse" if t["action"] in REVERSE_ACTIONS
                                          else "forward"),
                            "flow": v.get("flow"), "agrees": v.get("agrees"),
                            "seconds": v.get("seconds"), "report": v.get("report", "")})
    return out


def _binlog(timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in timeline:
        result = t["result"] or {}
        if t["status"] == "ok" and isinstance(result.get("binlog"), dict):
            coords = result["binlog"]
            out.append({"run_id": t["run_id"], "step_id": t["step_id"],
                        "file": coords.get("file", ""), "position": coords.get("position"),
                        "waited_s": result.get("waited_s"),
                        "frozen_at": ms_to_iso(result.get("frozen_at_ms"))})
    return out


def _backups(timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backups each preflight that ended ok gated on (its result's ``backups``)."""
    out = []
    for t in timeline:
        result = t["result"] or {}
        if t["status"] == "ok" and isinstance(result.get("backups"), list):
            out += [{"run_id": t["run_id"], "step_id": t["step_id"], **b}
                    for b in result["backups"] if isinstance(b, dict)]
    return out


def _decisions(run: Mapping[str, Any],
               timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rid, kind, who = run["run_id"], run["kind"], run["who"]
    out = [{"kind": "rollback" if kind == "rollback" else "start", "run_id": rid,
            "step_id": "", "who": who, "at": run["started_at"],
            "text": (f"{kind} run {rid} started by {who}"
                     + (f" (max downtime {_options(run)['max_downtime_s']:g}s)"
                        if kind == "cutover" and "max_downtime_s" in _options(run) else ""))}]
    for t in timeline:
        if t["attempts"] > 1:
            out.append({"kind": "resume", "run_id": rid, "step_id": t["step_id"],
                        "who": t["who"], "at": t["started_at"],
                        "text": f"step {t['step_id']} ran {t['attempts']} times: the run was "
                                f"resumed after it stopped there (last by {t['who']} on "
                                f"{t['host']})"})
        if t["status"] == "failed":
            out.append({"kind": "failure", "run_id": rid, "step_id": t["step_id"],
                        "who": t["who"], "at": t["finished_at"] or t["started_at"],
                        "text": f"step {t['step_id']} failed on {t['host']}: {t['detail']}"})
        elif t["status"] == "started":
            out.append({"kind": "interrupted", "run_id": rid, "step_id": t["step_id"],
                        "who": t["who"], "at": t["started_at"],
                        "text": f"step {t['step_id']} started on {t['host']} and has not "
                                "ended in the journal"})
        if t["step_id"] in ENGINE_UNFREEZES and t["status"] == "ok":
            out.append({"kind": "unfreeze", "run_id": rid, "step_id": t["step_id"],
                        "who": t["who"], "at": t["started_at"],
                        "text": "the runbook made the legacy master writable again before "
                                "any switch"})
    status, detail = run["status"], run["detail"]
    if status != "running":
        end_kind = {"done": "end", "failed": "failure"}.get(status, "abort")
        if status == "aborted" and detail.startswith("downtime budget"):
            end_kind = "budget-abort"
        out.append({"kind": end_kind, "run_id": rid, "step_id": "", "who": who,
                    "at": run["finished_at"] or run["started_at"],
                    "text": detail if end_kind == "budget-abort" else
                    f"{kind} run {rid} ended {status}" + (f": {detail}" if detail else "")})
    return out


def _operators(runs: Sequence[Mapping[str, Any]],
               timeline: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    who: dict[str, dict[str, Any]] = {}
    for run in runs:
        who.setdefault(run["who"], {"who": run["who"], "runs": [], "steps": []})
        who[run["who"]]["runs"].append(run["run_id"])
    for t in timeline:
        entry = who.setdefault(t["who"], {"who": t["who"], "runs": [], "steps": []})
        entry["steps"].append(t["step_id"])
    return list(who.values())


def _gap(pairs: Sequence[tuple[int, str]], lo: float | None = None,
         hi: float | None = None) -> dict[str, Any] | None:
    """The longest gap between consecutive stamps (ms), among those overlapping [lo, hi]
    (epoch seconds) when given."""
    best: tuple[int, int] | None = None
    for i in range(1, len(pairs)):
        a, b = pairs[i - 1][0], pairs[i][0]
        if lo is not None and hi is not None and not (a < hi * 1000 and b > lo * 1000):
            continue
        if best is None or b - a > pairs[best[1]][0] - pairs[best[0]][0]:
            best = (i - 1, i)
    if best is None:
        return None
    (a, server_a), (b, server_b) = pairs[best[0]], pairs[best[1]]
    return {"seconds": round((b - a) / 1000, 3), "from": ms_to_iso(a), "to": ms_to_iso(b),
            "from_ms": a, "to_ms": b, "from_server": server_a, "to_server": server_b}


def _application(acked: Iterable[Write],
                 freezes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    pairs = sorted((int(w.ts), w.server) for w in acked)
    by_server: dict[str, int] = {}
    for _, server in pairs:
        by_server[server] = by_server.get(server, 0) + 1
    around = []
    for f in freezes:
        gap = (_gap(pairs, f["started_at"], f["ended_at"]) if f["ended_at"] is not None
               else None)
        around.append({"run_id": f["run_id"], "kind": f["kind"],
                       **(gap or {"seconds": None, "note": "no acknowledged writes on both "
                                                           "sides of this freeze"})})
    return {"writes": len(pairs), "first": ms_to_iso(pairs[0][0]) if pairs else "",
            "last": ms_to_iso(pairs[-1][0]) if pairs else "", "by_server": by_server,
            "longest_gap": _gap(pairs), "around_freezes": around}


def _run_summary(run: Mapping[str, Any], rows: Sequence[dict[str, Any]],
                 plan: Sequence[Step], shipped_sha: str) -> dict[str, Any]:
    seen = {r["step_id"] for r in rows}
    exact = run["runbook_sha"] == shipped_sha
    return {"run_id": run["run_id"], "kind": run["kind"], "status": run["status"],
            "who": run["who"], "detail": run["detail"], "started": iso(run["started_at"]),
            "finished": iso(run["finished_at"]),
            "seconds": (None if run["finished_at"] is None
                        else round(run["finished_at"] - run["started_at"], 3)),
            "runbook_sha": run["runbook_sha"],
            "runbook": "shipped" if exact else "shipped with hooks, or another furet version",
            "options": _options(run),
            # known only when the run used this furet's shipped runbook without hooks
            "not_reached": [s.id for s in plan if s.id not in seen] if exact else None}


def build(run: Any, steps: Sequence[Any], rollback_run: Any = None,
          rollback_steps: Sequence[Any] | None = None, acked: Iterable[Write] | None = None,
          *, runbook: Runbook | None = None) -> dict[str, Any]:
    """The report's data from a cutover run's journal (rows as ``journal.show`` gives them,
    or the ledger's dataclasses), the rollback that followed it and the acked writes."""
    book = runbook or load_runbook()
    runs = [(_row(run), [_row(s) for s in steps])]
    if rollback_run is not None:
        runs.append((_row(rollback_run), [_row(s) for s in rollback_steps or []]))
    timeline: list[dict[str, Any]] = []
    freezes, decisions, summaries = [], [], []
    for r, rows in runs:
        plan = _plan(book, r["kind"])
        part = _timeline(r, rows, plan)
        timeline += part
        decisions += _decisions(r, part)
        summaries.append(_run_summary(r, rows, plan, book.sha256))
        freeze = _freeze(r, rows, plan)
        if freeze is not None:
            freezes.append(freeze)
    decisions.sort(key=lambda d: d["at"])
    for d in decisions:
        d["when"] = iso(d["at"])
    return {"runs": summaries, "cutover": summaries[0],
            "rollback": summaries[1] if len(summaries) > 1 else None,
            "timeline": timeline, "freezes": freezes,
            "application": None if acked is None else _application(acked, freezes),
            "rounds": _rounds(timeline), "verify": _verify(timeline),
            "backups": _backups(timeline),
            "decisions": decisions, "operators": _operators([r for r, _ in runs], timeline),
            "binlog": _binlog(timeline)}


# -- reading the journal and writing the files ----------------------------------------------

def load(config: FuretConfig,
         run_id: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The cutover run ``run_id`` (the latest when None; a rollback run's id names the
    cutover run before it) and the rollback run that followed it (the last one before the
    next cutover run), as ``journal.show`` gives them."""
    from migration.cutover.journal import show

    where = f"furet.cutover_runs on {config.target.where}"
    run = show(config, run_id) if run_id is not None else show(config, kind="cutover")
    if run is None:
        what = "no cutover run" if run_id is None else f"no run {run_id}"
        raise FuretError(f"cutover report: {what} in {where}")
    rollback = None
    if run["kind"] == "rollback":
        rollback = run
        found = next((r for r in (show(config, k) for k in range(run["run_id"] - 1, 0, -1))
                      if r is not None and r["kind"] == "cutover"), None)
        if found is None:
            raise FuretError(f"cutover report: rollback run {run['run_id']} follows no "
                             f"cutover run in {where}")
        return found, rollback
    latest = show(config)
    for k in range(run["run_id"] + 1, (latest or run)["run_id"] + 1):
        later = show(config, k)
        if later is None:
            continue
        if later["kind"] == "cutover":
            break
        rollback = later
    return run, rollback


def _acked(path: Path) -> list[Write]:
    try:
        return list(read_acked(path))
    except OSError as exc:
        raise FuretError(f"cutover report: cannot read the acked-writes log {path} "
                         f"({exc.strerror})") from None
    except (ValueError, TypeError):
        raise FuretError(f"cutover report: {path} is not an acked-writes log of `furet legacy "
                         "traffic --acked` (JSON lines of table, key, value, ts)") from None


def report_files(config: FuretConfig, run_id: int | None, acked: Path | None,
                 directory: str | Path) -> tuple[Path, Path]:
    """``furet cutover report``: read the journal, build, write both files."""
    run, rollback = load(config, run_id)
    data = build(run, run["steps"], rollback, rollback["steps"] if rollback else None,
                 _acked(acked) if acked is not None else None)
    return write(data, directory)


def write(data: Mapping[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """``cutover-report-run<N>.json`` and ``.html`` in ``directory`` (created), mode 0640;
    a later report of the same run (after its rollback) replaces them."""
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / f"cutover-report-run{data['cutover']['run_id']}"
        json_path, html_path = base.with_suffix(".json"), base.with_suffix(".html")
        write_report_file(json_path, json.dumps(data, indent=2, default=str, ensure_ascii=False)
                    + "\n")
        write_report_file(html_path, render_html(data))
    except OSError as exc:
        raise FuretError(f"cutover report: cannot write in {folder} ({exc.strerror})") from None
    return json_path, html_path


# -- HTML -------------------------------------------------------------------------------------

CSS = VERIFY_CSS + """
.bar{height:10px;background:#2e9e4f;border-radius:2px;min-width:2px}
.bar.failed{background:#d7263d}.bar.started{background:#f2a541}.bar.frozen{background:#3b6fb6}
td.w{width:260px;min-width:260px}pre{margin:0;white-space:pre-wrap;max-width:700px}
details summary{cursor:pointer}.muted{color:#777}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _s(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


def _status(value: str) -> str:
    css = {"ok": "ok", "done": "ok", "failed": "bad", "aborted": "warn"}.get(value, "warn")
    return f"<span class={css}>{_e(value)}</span>"


def _detail(t: Mapping[str, Any]) -> str:
    text = (json.dumps(t["result"], indent=1, sort_keys=True, default=str)
            if t["result"] is not None else t["detail"])
    short = t["detail"] if len(t["detail"]) <= 90 else t["detail"][:90] + " …"
    if len(t["detail"]) <= 90 and t["result"] is None:
        return _e(short)
    return f"<details><summary>{_e(short)}</summary><pre>{_e(text)}</pre></details>"


def _timeline_html(data: Mapping[str, Any]) -> list[str]:
    rows = data["timeline"]
    if not rows:
        return ["<p class=muted>no step in the journal</p>"]
    t0 = min(r["started_at"] for r in rows)
    t1 = max((r["finished_at"] or r["started_at"]) for r in rows)
    span = max(t1 - t0, 0.001)
    parts = ["<table><tr><th>run</th><th>#</th><th class=l>step</th><th class=l>action</th>"
             "<th class=l>status</th><th>attempts</th><th class=l>host</th><th class=l>who</th>"
             "<th class=l>start (UTC)</th><th class=l>end (UTC)</th><th>seconds</th>"
             "<th class=l>when</th><th class=l>result</th></tr>"]
    for r in rows:
        left = (r["started_at"] - t0) / span * 100
        width = ((r["finished_at"] or r["started_at"]) - r["started_at"]) / span * 100
        css = r["status"] if r["status"] in ("failed", "started") else (
            "frozen" if r["downtime"] else "")
        attempts = (f"<span class=warn>{r['attempts']}</span>" if r["attempts"] > 1
                    else str(r["attempts"]))
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.3f}"
        parts.append(
            f"<tr><td>{_e(r['run_id'])}</td><td>{_e(r['seq'])}</td>"
            f"<td class=l>{_e(r['step_id'])}</td><td class=l>{_e(r['action'])}"
            f"{' <small>(' + _e(r['downtime']) + ')</small>' if r['downtime'] else ''}</td>"
            f"<td class=l>{_status(r['status'])}</td><td>{attempts}</td>"
            f"<td class=l>{_e(r['host'])}</td><td class=l>{_e(r['who'])}</td>"
            f"<td class=l>{_e(r['started'])}</td><td class=l>{_e(r['finished'])}</td>"
            f"<td>{seconds}</td>"
            f"<td class=w><div class='bar {css}' style='margin-left:{left:.2f}%;"
            f"width:{width:.2f}%'></div></td><td class=l>{_detail(r)}</td></tr>")
    parts.append("</table><p class=legend><span><i style='background:#3b6fb6'></i>"
                 "inside the write freeze</span><span><i style='background:#d7263d'></i>"
                 "failed</span><span><i style='background:#f2a541'></i>not ended</span></p>")
    return parts


def _freeze_html(data: Mapping[str, Any]) -> list[str]:
    if not data["freezes"]:
        return ["<p class=muted>no write freeze in the journal (the runs stopped before it)</p>"]
    parts = ["<table><tr><th>run</th><th class=l>kind</th><th class=l>from</th>"
             "<th class=l>to</th><th class=l>start (UTC)</th><th class=l>end (UTC)</th>"
             "<th>seconds</th><th>budget</th><th class=l>switched</th></tr>"]
    for f in data["freezes"]:
        budget = "-" if f["max_downtime_s"] is None else f"{float(f['max_downtime_s']):g}s"
        if f["within_budget"] is False:
            budget = f"<span class=bad>{budget} (over)</span>"
        parts.append(
            f"<tr><td>{_e(f['run_id'])}</td><td class=l>{_e(f['kind'])}</td>"
            f"<td class=l>{_e(f['start_step'])} start</td>"
            f"<td class=l>{_e(f['ended_by'] or 'not ended')} end</td>"
            f"<td class=l>{_e(f['started'])}</td><td class=l>{_e(f['ended'])}</td>"
            f"<td>{_s(f['seconds'])}</td><td>{budget}</td>"
            f"<td class=l>{'yes' if f['switched'] else 'no'}</td></tr>")
    parts.append("</table>")
    return parts


def _application_html(app: Mapping[str, Any] | None) -> list[str]:
    if app is None:
        return ["<p class=muted>no acked-writes log given (<code>furet cutover report --acked "
                "FILE</code>, the log of <code>furet legacy traffic --acked</code>)</p>"]
    servers = ", ".join(f"{_e(k)} {v:,}" for k, v in sorted(app["by_server"].items()))
    longest = app["longest_gap"]
    parts = [f"<p>{app['writes']:,} acknowledged writes from {_e(app['first'])} to "
             f"{_e(app['last'])} ({servers}); longest gap anywhere: "
             f"{_s(longest['seconds']) if longest else '-'}</p>",
             "<table><tr><th>run</th><th class=l>kind</th><th>longest gap</th>"
             "<th class=l>last write before</th><th class=l>first write after</th></tr>"]
    for a in app["around_freezes"]:
        if a["seconds"] is None:
            parts.append(f"<tr><td>{_e(a['run_id'])}</td><td class=l>{_e(a['kind'])}</td>"
                         f"<td>-</td><td class=l colspan=2>{_e(a['note'])}</td></tr>")
            continue
        parts.append(f"<tr><td>{_e(a['run_id'])}</td><td class=l>{_e(a['kind'])}</td>"
                     f"<td>{_s(a['seconds'])}</td>"
                     f"<td class=l>{_e(a['from'])} on {_e(a['from_server'])}</td>"
                     f"<td class=l>{_e(a['to'])} on {_e(a['to_server'])}</td></tr>")
    parts.append("</table><p class=muted>stamps are the app's clock at each transaction's "
                 "start; a late commit is acknowledged up to ~1.5 s later</p>")
    return parts


def _rounds_html(data: Mapping[str, Any]) -> list[str]:
    if not data["rounds"]:
        return ["<p class=muted>no round in the journal</p>"]
    parts = []
    for flow, rounds in sorted(data["rounds"].items()):
        parts.append(f"<h3>flow <code>{_e(flow)}</code></h3><table><tr><th>run</th>"
                     "<th class=l>step</th><th class=l>direction</th><th>round</th>"
                     "<th class=l>final</th><th>rows read</th><th>written</th>"
                     "<th>quarantined</th><th>seconds</th><th class=l>watermark (UTC)</th>"
                     "<th class=l>note</th></tr>")
        for r in rounds:
            q = r["rows_quarantined"] or 0
            parts.append(
                f"<tr><td>{_e(r['run_id'])}</td><td class=l>{_e(r['step_id'])}</td>"
                f"<td class=l>{_e(r['direction'])}</td><td>{_e(r['round'])}</td>"
                f"<td class=l>{'final' if r['final'] else ''}</td>"
                f"<td>{_e(r['rows_read'])}</td><td>{_e(r['rows_written'])}</td>"
                f"<td>{f'<span class=warn>{q}</span>' if q else '0'}</td>"
                f"<td>{_e(r['seconds'])}</td><td class=l>{_e(r['watermark'])}</td>"
                f"<td class=l>{_e(r['note'])}</td></tr>")
        parts.append("</table>")
    return parts


def _verify_html(data: Mapping[str, Any]) -> list[str]:
    if not data["verify"]:
        return ["<p class=muted>no verify result in the journal</p>"]
    parts = ["<table><tr><th>run</th><th class=l>step</th><th class=l>direction</th>"
             "<th class=l>flow</th><th class=l>result</th><th>seconds</th>"
             "<th class=l>report (on the ETL host)</th></tr>"]
    for v in data["verify"]:
        verdict = ("<span class=ok>agree</span>" if v["agrees"]
                   else "<span class=bad>differ</span>")
        parts.append(f"<tr><td>{_e(v['run_id'])}</td><td class=l>{_e(v['step_id'])}</td>"
                     f"<td class=l>{_e(v['direction'])}</td><td class=l>{_e(v['flow'])}</td>"
                     f"<td class=l>{verdict}</td><td>{_e(v['seconds'])}</td>"
                     f"<td class=l><code>{_e(v['report'])}</code></td></tr>")
    parts.append("</table>")
    return parts


def _decisions_html(data: Mapping[str, Any]) -> list[str]:
    parts = ["<table><tr><th class=l>when (UTC)</th><th>run</th><th class=l>decision</th>"
             "<th class=l>who</th><th class=l>what</th></tr>"]
    for d in data["decisions"]:
        css = {"failure": "bad", "budget-abort": "bad", "abort": "warn", "resume": "warn",
               "rollback": "warn", "interrupted": "warn"}.get(d["kind"], "")
        parts.append(f"<tr><td class=l>{_e(d['when'])}</td><td>{_e(d['run_id'])}</td>"
                     f"<td class=l><span class='{css}'>{_e(d['kind'])}</span></td>"
                     f"<td class=l>{_e(d['who'])}</td><td class=l>{_e(d['text'])}</td></tr>")
    parts.append("</table><p>who ran what: " + "; ".join(
        f"{_e(o['who'])}: runs {_e(', '.join(map(str, o['runs'])) or '-')}, steps "
        f"{_e(', '.join(o['steps']) or '-')}" for o in data["operators"]) + "</p>")
    return parts


def _binlog_html(data: Mapping[str, Any]) -> list[str]:
    if not data["binlog"]:
        return ["<p class=muted>none recorded (no freeze step ended ok)</p>"]
    parts = ["<table><tr><th>run</th><th class=l>step</th><th class=l>binlog file</th>"
             "<th>position</th><th class=l>frozen at (legacy clock)</th>"
             "<th>waited for writes in flight</th></tr>"]
    for b in data["binlog"]:
        where = (f"<td class=l><code>{_e(b['file'])}</code></td><td>{_e(b['position'])}</td>"
                 if b["file"] else "<td class='l warn' colspan=2>none: the legacy master's "
                 "binary log is off (SHOW MASTER STATUS was empty)</td>")
        parts.append(f"<tr><td>{_e(b['run_id'])}</td><td class=l>{_e(b['step_id'])}</td>{where}"
                     f"<td class=l>{_e(b['frozen_at'])}</td><td>{_s(b['waited_s'])}</td></tr>")
    parts.append("</table>")
    return parts


def _backups_html(data: Mapping[str, Any]) -> list[str]:
    if not data["backups"]:
        return ["<p class=muted>none recorded: no preflight of this run gated on a backup "
                "(--backups none)</p>"]
    parts = ["<table><tr><th>run</th><th class=l>step</th><th class=l>kind</th>"
             "<th class=l>backup</th><th class=l>where</th><th>age</th>"
             "<th class=l>restore test</th></tr>"]
    for b in data["backups"]:
        parts.append(f"<tr><td>{_e(b['run_id'])}</td><td class=l>{_e(b['step_id'])}</td>"
                     f"<td class=l>{_e(b.get('kind', ''))}</td>"
                     f"<td class=l><code>{_e(b.get('id', ''))}</code></td>"
                     f"<td class=l>{_e(b.get('host', ''))}:{_e(b.get('path', ''))}</td>"
                     f"<td>{_e(b.get('age', ''))}</td>"
                     f"<td class=l>{_e(b.get('restore_test', ''))}</td></tr>")
    parts.append("</table>")
    return parts


def render_html(data: Mapping[str, Any]) -> str:
    cutover, rollback = data["cutover"], data["rollback"]
    title = f"furet cutover run {cutover['run_id']}"
    head = (f"{_e(title)}: {_status(cutover['status'])}"
            + (f", rolled back (run {_e(rollback['run_id'])}: {_status(rollback['status'])})"
               if rollback else ""))
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{head}</h1>",
    ]
    for run in data["runs"]:
        parts.append(
            f"<p>{_e(run['kind'])} run {_e(run['run_id'])} by {_e(run['who'])}: "
            f"{_e(run['started'])} → {_e(run['finished'] or 'not finished')} "
            f"({_s(run['seconds'])}), {_status(run['status'])}"
            f"{': ' + _e(run['detail']) if run['detail'] else ''}; runbook "
            f"<code>{_e(run['runbook_sha'][:12])}</code> ({_e(run['runbook'])})"
            + (f"; steps not reached: {_e(', '.join(run['not_reached']))}"
               if run["not_reached"] else "") + "</p>")
    parts += ["<h2>Write freeze, as the runbook saw it</h2>", *_freeze_html(data),
              "<h2>Downtime, as the application saw it</h2>",
              *_application_html(data["application"]),
              "<h2>Timeline</h2>", *_timeline_html(data),
              "<h2>Decisions</h2>", *_decisions_html(data),
              "<h2>Rounds</h2>", *_rounds_html(data),
              "<h2>Verify</h2>", *_verify_html(data),
              "<h2>Backups used</h2>", *_backups_html(data),
              "<h2>Binlog coordinates of the freeze (legacy master)</h2>", *_binlog_html(data),
              "</body></html>\n"]
    return "".join(parts)
