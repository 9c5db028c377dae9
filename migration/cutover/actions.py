"""The cutover's actions that run on the ETL host (``furet cutover step``), each a function
``(config, args) -> result`` whose result (a JSON-able mapping) the journal keeps.

Every action is idempotent, because ``resume`` runs a step again when a kill left it
``started``: a second freeze finds the legacy read-only and waits for nothing, a second
final round finds no change, a second verify compares the same data. The actions that run
elsewhere (the endpoint switch on the app_endpoint hosts, hook commands) are the
controller's (:mod:`migration.cutover.engine`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pymysql

from migration.config import FuretConfig
from migration.db import connection, db_error, error_code, query, server_now_ms
from migration.errors import FuretError

Result = dict[str, Any]
Action = Callable[[FuretConfig, Mapping[str, Any]], Result]

DEFAULT_FLOWS = ("runtime", "cassandra_prod", "rt_bo")
DEFAULT_VERIFY_FLOWS = ("runtime", "cassandra_prod")
DEFAULT_REVERSE_FLOWS = ("runtime",)
# the backups the preflight wants, each recent and proven by a restore test
DEFAULT_BACKUPS = ("legacy", "galera", "cassandra")


def _flows(args: Mapping[str, Any], key: str, default: Sequence[str]) -> list[str]:
    value = args.get(key) or list(default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FuretError(f"cutover: `{key}` must be a list of flow names")
    return list(value)


# -- preflight ------------------------------------------------------------------------------

def _galera_problems(config: FuretConfig) -> list[str]:
    """Galera Primary and its writer Synced (a target without wsrep is a plain MariaDB)."""
    with connection(config.target) as conn:
        if not int(query(conn, "SELECT @@wsrep_on")[0][0]):
            return []
        rows = dict(query(conn, "SHOW GLOBAL STATUS WHERE Variable_name IN "
                                "('wsrep_cluster_status', 'wsrep_local_state_comment', "
                                "'wsrep_cluster_size', 'wsrep_ready')"))
    problems = []
    if rows.get("wsrep_cluster_status", "Primary") != "Primary":
        problems.append(f"Galera ({config.target.where}) is {rows['wsrep_cluster_status']}, "
                        "not Primary")
    if rows.get("wsrep_local_state_comment", "Synced") != "Synced":
        problems.append(f"the Galera writer ({config.target.where}) is "
                        f"{rows['wsrep_local_state_comment']}, not Synced")
    return problems


def preflight(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """The platform is ready: Galera Primary and Synced, the legacy master writable (the
    freeze has not happened), every flow's tables fit both schemas, and the newest backup
    of each kind in ``backups`` younger than ``max_backup_age_s`` with its restore test
    passed, as the ledger on ``backups_ledger`` (target, or legacy: the galera-next
    runbook's old cluster) recorded them (migration/backup/catalog.py)."""
    from migration.flows.check import check_flow
    from migration.legacy.freeze import read_only

    problems = _galera_problems(config)
    with connection(config.legacy) as conn:
        if read_only(conn):
            problems.append(f"the legacy master ({config.legacy.where}) is already read-only: "
                            "a cutover starts from a writable legacy (`furet legacy unfreeze`)")
    checked = []
    for name in _flows(args, "flows", DEFAULT_FLOWS):
        result = check_flow(config, name)
        checked.append(name)
        problems += [t.error for t in result.failures]
    backups: list[dict[str, str]] = []
    kinds = args.get("backups", list(DEFAULT_BACKUPS))
    if kinds:
        from migration.backup.catalog import gate

        try:
            backups = gate(config, kinds, float(args.get("max_backup_age_s", 86400)),
                           str(args.get("backups_ledger", "target")))
        except FuretError as exc:
            problems.append(str(exc).removeprefix("preflight: "))
    if problems:
        raise FuretError("preflight: " + "; ".join(problems))
    return {"flows": checked, "target": config.target.where, "legacy": "writable",
            "backups": backups}


# -- rounds -------------------------------------------------------------------------------

def _round(config: FuretConfig, flow: str, *, final: bool = False,
           reverse: bool = False) -> Result:
    from migration.engine.round import RoundOptions, run_round

    # a reverse final round runs after the rollback refused the application's writes at the
    # endpoint, which furet cannot see from here: the runbook's order is the assurance
    options = RoundOptions(flow, final=final, reverse=reverse, assume_frozen=reverse and final)
    summary = run_round(config, options)
    if summary.status != "done":
        raise FuretError(f"flow {flow} round {summary.round_no} ended {summary.status}")
    return {"flow": flow, "round": summary.round_no, "final": summary.final,
            "rows_read": summary.rows_read, "rows_written": summary.rows_written,
            "rows_quarantined": summary.rows_quarantined,
            "seconds": round(summary.seconds or 0.0, 3),
            "watermark_ms": summary.now_ms}


def catch_up(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """Rounds of every flow, again and again, until each flow's last round took at most
    ``max_lag_seconds`` (what its final round, inside the freeze, will take about)."""
    flows = _flows(args, "flows", DEFAULT_FLOWS)
    max_lag = float(args.get("max_lag_seconds", 30))
    max_rounds = int(args.get("max_rounds", 10))
    last: dict[str, Result] = {}
    for attempt in range(1, max_rounds + 1):
        for flow in flows:
            last[flow] = _round(config, flow)
        slow = {f: r["seconds"] for f, r in last.items() if r["seconds"] > max_lag}
        if not slow:
            return {"rounds": attempt, "last": last,
                    "estimate_final_s": round(sum(r["seconds"] for r in last.values()), 3)}
    raise FuretError(f"catch-up: after {max_rounds} rounds of each flow, "
                     f"{', '.join(f'{f} still takes {s:.1f}s' for f, s in slow.items())} "
                     f"per round (max_lag_seconds {max_lag:g}): the writes outpace the rounds")


def final_rounds(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """The final round of every flow (the legacy frozen: safety lag 0)."""
    rounds = [_round(config, flow, final=True)
              for flow in _flows(args, "flows", DEFAULT_FLOWS)]
    return {"rounds": rounds}


# -- the write freeze -----------------------------------------------------------------------

def freeze(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """Legacy read-only, no write in flight; its binlog coordinates recorded (where a
    rollback's legacy stands, and what a replica restarted from it would need)."""
    from migration.legacy.freeze import freeze as legacy_freeze

    _binlog(config)  # the right to read them, before anything changes
    waited = legacy_freeze(config.legacy, float(args.get("timeout_s", 60)))
    with connection(config.legacy) as conn:
        now_ms = server_now_ms(conn)
    return {"waited_s": round(waited, 3), "binlog": _binlog(config), "frozen_at_ms": now_ms}


def _binlog(config: FuretConfig) -> dict[str, Any]:
    """The legacy's binlog coordinates ({} when it writes no binary log)."""
    try:
        with connection(config.legacy) as conn:
            rows = query(conn, "SHOW MASTER STATUS")
    except pymysql.MySQLError as exc:
        if error_code(exc) in (1227, 1044, 1142):
            raise FuretError(f"{config.legacy.where}: user {config.legacy.user} may not read "
                             "the binlog coordinates (SHOW MASTER STATUS needs BINLOG MONITOR "
                             "on MariaDB, REPLICATION CLIENT on MySQL)") from None
        raise db_error(exc, config.legacy) from None
    return {"file": str(rows[0][0]), "position": int(rows[0][1])} if rows else {}


def unfreeze(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    from migration.legacy.freeze import unfreeze as legacy_unfreeze

    legacy_unfreeze(config.legacy)
    return {"legacy": "writable"}


# -- the verify gate ----------------------------------------------------------------------

def _verify(config: FuretConfig, args: Mapping[str, Any], default: Sequence[str],
            reverse: bool, what: str) -> Result:
    from migration.verify.report import write_reports
    from migration.verify.run import VerifyOptions, run_verify

    reports_dir = Path(str(args.get("reports_dir") or "/var/lib/furet/reports")) / (
        f"cutover-{int(time.time())}")
    results = []
    for flow in _flows(args, "flows", default):
        if args.get("repair"):
            # the rows the application deleted on Galera are extra on the legacy (a
            # versioned table keeps no tombstone): repaired first, then verified again
            run_verify(config, VerifyOptions(flow, reverse=reverse, repair=True,
                                             delete_extra=True))
        report = run_verify(config, VerifyOptions(flow, reverse=reverse))
        json_path, html_path = write_reports(report, reports_dir)
        results.append({"flow": flow, "agrees": report.agrees,
                        "seconds": round(report.seconds, 3), "report": str(html_path)})
        if not report.agrees:
            bad = [t.target_table for t in report.tables if not t.agrees]
            raise FuretError(f"{what}: flow {flow}{' reversed' if reverse else ''} differs in "
                             f"{', '.join(bad)} (report {html_path})")
    return {"verify": results}


def verify_gate(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """A fresh verify of every flow, after the final rounds (so it covers the final
    watermark); any difference stops the cutover before the switch."""
    return _verify(config, args, DEFAULT_VERIFY_FLOWS, False, "verify gate")


def reverse_verify(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """The rollback's gate: the legacy holds what the application wrote on Galera."""
    return _verify(config, args, DEFAULT_REVERSE_FLOWS, True, "reverse verify")


# -- after the switch ---------------------------------------------------------------------

def reverse_rounds(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    """A reverse round of every reversible flow (Galera -> legacy): what the application
    writes on Galera from now on reaches the legacy master, so a rollback loses nothing."""
    rounds = [_round(config, flow, reverse=True)
              for flow in _flows(args, "flows", DEFAULT_REVERSE_FLOWS)]
    return {"rounds": rounds}


def reverse_final(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    rounds = [_round(config, flow, final=True, reverse=True)
              for flow in _flows(args, "flows", DEFAULT_REVERSE_FLOWS)]
    return {"rounds": rounds}


# -- plan: each action's preconditions, read-only ---------------------------------------------

def _flows_load(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    from migration.flows.mapping import load_flow

    names = _flows(args, "flows", DEFAULT_FLOWS)
    for name in names:
        load_flow(name, flows_dir=config.flows.dir)
    return {"check": f"flows {', '.join(names)} found"}


def _freeze_check(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    from migration.legacy.freeze import can_freeze

    nodes = can_freeze(config.legacy)
    binlog = _binlog(config)
    where = (f"binlog at {binlog['file']}:{binlog['position']}" if binlog
             else "no binary log")
    servers = f" and its {len(nodes)} Galera nodes" if len(nodes) > 1 else ""
    return {"check": f"{config.legacy.where}{servers} writable, {where}; "
                     f"{config.legacy.user} may set read_only"}


def _unfreeze_check(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    from migration.legacy.freeze import read_only

    with connection(config.legacy) as conn:
        state = "read-only" if read_only(conn) else "writable"
    return {"check": f"{config.legacy.where} reachable ({state})"}


def _preflight_check(config: FuretConfig, args: Mapping[str, Any]) -> Result:
    return {"check": json.dumps(preflight(config, args), sort_keys=True)}


CHECKS: dict[str, Action] = {
    "preflight": _preflight_check,
    "freeze": _freeze_check,
    "unfreeze": _unfreeze_check,
}


def check(config: FuretConfig, action: str, args: Mapping[str, Any]) -> Result:
    """What ``fab cutover plan`` asks of a step: its preconditions, nothing changed."""
    return CHECKS.get(action, _flows_load)(config, args)


ACTIONS: dict[str, Action] = {
    "preflight": preflight,
    "catch_up": catch_up,
    "freeze": freeze,
    "final_rounds": final_rounds,
    "verify_gate": verify_gate,
    "reverse_rounds": reverse_rounds,
    "reverse_final": reverse_final,
    "reverse_verify": reverse_verify,
    "unfreeze": unfreeze,
}
