"""Fabric tasks: run furet on the ETL hosts of the Ansible inventory, over the same SSH.

    fab round --flow runtime [--final] [--strategy ts] [--max-quarantined N] [--json] ...
    fab status [--flow F] [--last N] [--json]
    fab freeze [--timeout S]          legacy read-only, waits until no write is in flight
    fab unfreeze
    fab add-version --table T [--database DB] [--column C] [--dry-run] [--allow-lock] ...
                                      furet legacy add-version (a version column, online)
    fab flow-init --source-db DB --target mariadb:DB > inventories/.../flows/DB.yml
                                      furet flow init on the ETL host (stdout unprefixed)
    fab target-schema --flow F [--apply]
                                      furet target schema (the target tables of a flow)
    fab version                       furet --version on every ETL host
    fab verify --flow F [--repair [--delete-extra]] [--table T]... [--workers N] ...
                                      furet verify; reports fetched to ./reports/
    fab rehearsal [--quotes N] [--rounds R] [--rate TPS]
                                      lab only: seed, rounds under traffic, freeze, final

round, status, verify, freeze, unfreeze, add-version, flow-init and target-schema are built
from the command contract
(migration/contract.py): they take every option furet's command takes remotely, and the
group's (--target-host...); `fab --help TASK` lists them. Every task takes
``-i/--inventory`` (else FURET_INVENTORY, else inventories/lab/hosts.yml), ``--vault-password-file``
(else ANSIBLE_VAULT_PASSWORD_FILE, else asked in a terminal) and ``-o/--on``
(inventory names or groups, comma separated; default the host of ``fab -H``, else the
``etl`` group). round, verify, freeze, unfreeze, add-version, flow-init, target-schema and
rehearsal run on exactly one host. The remote output streams back live; at the end one
line per host says ok or why it failed, and fab exits non-zero if any host failed (with its
code; 2 when it was not reached). A local failure is one line too, exit 2, its traceback in
a log file the line names; Ctrl-C exits 130 (fabric_tasks.guarded). The
logic is in migration/fabric_tasks.py; this file only wires it to Fabric.
"""

from __future__ import annotations

import os
import sys

from fabric import task
from invoke import Context, Exit

from migration import contract, fabric_tasks
from migration.errors import EXIT_USER_ERROR

_COMMON_HELP = {o.name: o.fab_help() for o in contract.FAB_COMMON}

round_ = fabric_tasks.contract_task("round")
status = fabric_tasks.contract_task("status")
verify = fabric_tasks.contract_task("verify")
freeze = fabric_tasks.contract_task("freeze")
unfreeze = fabric_tasks.contract_task("unfreeze")
add_version = fabric_tasks.contract_task("add_version")
# one host, output unprefixed: `fab flow-init ... > inventories/production/flows/shop.yml`
flow_init = fabric_tasks.contract_task("flow_init")
target_schema = fabric_tasks.contract_task("target_schema")


@task(help=_COMMON_HELP)
def version(c: Context, inventory: str | None = None, on: str | None = None,
            vault_password_file: str | None = None) -> None:
    """furet --version on every selected host (is it installed, which build)."""
    fabric_tasks.conclude("version", lambda: (fabric_tasks.execute(
        "version", ["--version"],
        fabric_tasks.resolve_inventory(inventory, os.environ, fabric_tasks.identity(c),
                                       vault_password_file),
        fabric_tasks.patterns_for(c, on)), []))


@task(help={"quotes": "Quotes to seed the legacy with (default 20000).",
            "rounds": "Rounds under traffic before the freeze (default 3).",
            "rate": "Web-app transactions per second during the rounds (default 30).",
            **_COMMON_HELP})
def rehearsal(c: Context, quotes: str = "20000", rounds: str = "3", rate: str = "30",
              inventory: str | None = None, on: str | None = None,
              vault_password_file: str | None = None) -> None:
    """Lab only: re-seed the legacy, run rounds under traffic, freeze, final round of
    every flow (migration/rehearsal.py)."""
    from migration import rehearsal as rehearsal_mod

    with fabric_tasks.guarded("rehearsal"):  # one line, never a traceback
        try:
            steps = rehearsal_mod.plan(int(quotes), int(rounds), float(rate))
        except ValueError as exc:
            raise Exit(f"fab rehearsal: error: {exc}", code=EXIT_USER_ERROR) from None
        report = rehearsal_mod.run_rehearsal(
            fabric_tasks.resolve_inventory(inventory, os.environ, fabric_tasks.identity(c),
                                           vault_password_file),
            fabric_tasks.patterns_for(c, on), steps)
    for line in report.lines():
        print(line, file=sys.stderr, flush=True)


CUTOVER_ACTIONS = ("plan", "run", "resume", "abort", "rollback", "status")


@task(positional=["action"], help={
    "action": f"One of {', '.join(CUTOVER_ACTIONS)}.",
    "max_downtime": "Seconds the write freeze may last; beyond, unfreeze and stop before "
                    "the switch (default 120).",
    "hooks": "Your own hook steps (YAML), placed before/after the runbook's steps.",
    "runbook": "galera-next (an old Galera cluster onto a new one, group galera_next) or "
               "your own runbook file (default: legacy master onto Galera).",
    "flows": "Flows of the rounds, comma separated (default runtime,cassandra_prod,rt_bo).",
    "verify_flows": "Flows the verify gate checks (default runtime,cassandra_prod).",
    "reverse_flows": "Flows copied back to the legacy after the switch (default runtime).",
    "backups": "Backups the preflight wants recent and restore-tested (default "
               "legacy,galera,cassandra; none: no backup gate).",
    "max_backup_age": "How old the newest backup of each kind may be (default 24h).",
    "inventory": _COMMON_HELP["inventory"],
    "vault_password_file": _COMMON_HELP["vault_password_file"]})
def cutover(c: Context, action: str, max_downtime: str = "120", hooks: str | None = None,
            flows: str | None = None, verify_flows: str | None = None,
            reverse_flows: str | None = None, backups: str | None = None,
            max_backup_age: str = "24h", inventory: str | None = None,
            vault_password_file: str | None = None, runbook: str | None = None) -> None:
    """The cutover runbook (migration/cutover): plan (dry-run), run, resume, abort,
    rollback, status."""
    from migration.cutover import operator

    with fabric_tasks.guarded(f"cutover {action}"):  # one line, never a traceback
        code = operator.main(
            action, fabric_tasks.resolve_inventory(inventory, os.environ,
                                                   fabric_tasks.identity(c),
                                                   vault_password_file),
            max_downtime=max_downtime, hooks=hooks, flows=flows, verify_flows=verify_flows,
            reverse_flows=reverse_flows, backups=backups, max_backup_age=max_backup_age,
            runbook_name=runbook)
    if code:
        raise Exit(code=code)
