"""Fabric tasks: run furet on the ETL hosts of the Ansible inventory, over the same SSH.

    fab round --flow runtime [--final] [--strategy ts] [--max-quarantined N] [--json]
    fab status [--flow F] [--last N] [--json]
    fab freeze [--timeout S]          legacy read-only, waits until no write is in flight
    fab unfreeze
    fab version                       furet --version on every ETL host
    fab verify --flow F [--repair [--delete-extra]] [--since T] [--until T] [--sample P]
                                      furet verify; reports fetched to ./reports/
    fab rehearsal [--quotes N] [--rounds R] [--rate TPS]
                                      lab only: seed, rounds under traffic, freeze, final

Every task takes ``-i/--inventory`` (else FURET_INVENTORY, else inventories/lab/hosts.yml)
and ``-o/--on`` (inventory names or groups, comma separated; default the host of
``fab -H``, else the ``etl`` group). round,
freeze, unfreeze and rehearsal run on exactly one host. The remote output streams back live; at the
end one line per host says ok or why it failed, and fab exits non-zero if any host failed.
The logic is in migration/fabric_tasks.py; this file only wires it to Fabric.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from fabric import Connection, task
from invoke import Context, Exit

from migration import fabric_tasks
from migration.errors import EXIT_USER_ERROR, FuretError

_COMMON_HELP = {
    "inventory": "Ansible inventory (default: $FURET_INVENTORY, else inventories/lab/hosts.yml).",
    "on": "Hosts or groups, comma separated (default: fab -H's host, else the etl group).",
}


def _identity(c: Context) -> list[str]:
    """Values of fab's own -i/--identity (see fabric_tasks.resolve_inventory)."""
    value = c.config.get("connect_kwargs", {}).get("key_filename") or []
    return [value] if isinstance(value, str) else list(value)


def _patterns(c: Context, on: str | None) -> tuple[str, ...]:
    """--on, else the host of ``fab -H host`` (an inventory name), else the etl group."""
    if not on and isinstance(c, Connection):
        on = c.original_host
    return fabric_tasks.split_hosts(on)


def _run(c: Context, name: str, args_builder: Callable[[], Sequence[str]],
         inventory: str | None, on: str | None) -> None:
    try:
        args = args_builder()
        report = fabric_tasks.execute(
            name, args, fabric_tasks.resolve_inventory(inventory, os.environ, _identity(c)),
            _patterns(c, on))
    except FuretError as exc:
        raise Exit(f"fab {name}: error: {exc}", code=EXIT_USER_ERROR) from None
    for line in report.lines():
        print(line, file=sys.stderr, flush=True)
    if report.failed:
        raise Exit(code=report.exit_code)


@task(name="round", help={
    "flow": "Flow name: runtime, rt_bo, cassandra_prod (migration/flows/).",
    "final": "Cutover round, safety lag 0 (run fab freeze first).",
    "strategy": "ts (default), naive or id (the last two only to show their losses).",
    "max_quarantined": "Fail when the round quarantines more rows than this.",
    "json": "Print the round summary as JSON.", **_COMMON_HELP})
def round_(c: Context, flow: str = "", inventory: str | None = None, final: bool = False,
           strategy: str | None = None, max_quarantined: str | None = None,
           json: bool = False, on: str | None = None) -> None:
    """Run (or resume) the next round of a flow on the ETL host."""
    _run(c, "round",
         lambda: fabric_tasks.round_args(flow, final, strategy, max_quarantined, json),
         inventory, on)


@task(help={"flow": "Only this flow.", "last": "Rounds per flow.",
            "json": "Print as JSON.", **_COMMON_HELP})
def status(c: Context, flow: str | None = None, inventory: str | None = None,
           last: str | None = None, json: bool = False, on: str | None = None) -> None:
    """Rounds, counts, watermarks and quarantine from the furet ledger."""
    _run(c, "status", lambda: fabric_tasks.status_args(flow, last, json), inventory, on)


@task(help={"timeout": "Seconds to wait for in-flight writes (furet's default 60).",
            **_COMMON_HELP})
def freeze(c: Context, inventory: str | None = None, timeout: str | None = None,
           on: str | None = None) -> None:
    """Legacy read-only on, then wait until no write is in flight."""
    _run(c, "freeze", lambda: fabric_tasks.freeze_args(timeout), inventory, on)


@task(help=_COMMON_HELP)
def unfreeze(c: Context, inventory: str | None = None, on: str | None = None) -> None:
    """Legacy read-only off."""
    _run(c, "unfreeze", fabric_tasks.unfreeze_args, inventory, on)


@task(help=_COMMON_HELP)
def version(c: Context, inventory: str | None = None, on: str | None = None) -> None:
    """furet --version on every selected host (is it installed, which build)."""
    _run(c, "version", lambda: ["--version"], inventory, on)


@task(help={"quotes": "Quotes to seed the legacy with (default 20000).",
            "rounds": "Rounds under traffic before the freeze (default 3).",
            "rate": "Web-app transactions per second during the rounds (default 30).",
            **_COMMON_HELP})
def rehearsal(c: Context, quotes: str = "20000", rounds: str = "3", rate: str = "30",
              inventory: str | None = None, on: str | None = None) -> None:
    """Lab only: re-seed the legacy, run rounds under traffic, freeze, final round of
    every flow (migration/rehearsal.py)."""
    from migration import rehearsal as rehearsal_mod

    try:
        steps = rehearsal_mod.plan(int(quotes), int(rounds), float(rate))
        report = rehearsal_mod.run_rehearsal(
            fabric_tasks.resolve_inventory(inventory, os.environ, _identity(c)),
            _patterns(c, on), steps)
    except ValueError as exc:
        raise Exit(f"fab rehearsal: error: {exc}", code=EXIT_USER_ERROR) from None
    except FuretError as exc:
        raise Exit(f"fab rehearsal: error: {exc}", code=EXIT_USER_ERROR) from None
    for line in report.lines():
        print(line, file=sys.stderr, flush=True)


@task(help={"flow": "Flow name: runtime, rt_bo, cassandra_prod.",
            "repair": "Re-copy missing and different rows (version-aware), then re-check.",
            "delete_extra": "With --repair: delete extra target rows.",
            "overwrite_newer": "With --repair: overwrite rows a newer target copy shadows.",
            "since": "Versions after this (epoch ms or ISO, UTC).",
            "until": "Versions up to this (epoch ms or ISO, UTC).",
            "sample": "Share of chunks to check, e.g. 0.1.",
            "max_rows_per_second": "Throttle the reads.",
            "consistency": "Cassandra read consistency (LOCAL_ONE, LOCAL_QUORUM...).",
            "json": "Print the report as JSON.",
            "reports": "Local directory for the fetched reports (default ./reports).",
            **_COMMON_HELP})
def verify(c: Context, flow: str = "", inventory: str | None = None, on: str | None = None,
           repair: bool = False, delete_extra: bool = False, overwrite_newer: bool = False,
           since: str | None = None, until: str | None = None, sample: str | None = None,
           max_rows_per_second: str | None = None, consistency: str | None = None,
           json: bool = False, reports: str = fabric_tasks.LOCAL_REPORTS) -> None:
    """furet verify on the ETL host; its JSON and HTML reports are fetched to ./reports/."""
    try:
        remote_dir = fabric_tasks.verify_report_dir(flow)
        args = fabric_tasks.verify_args(flow, remote_dir, repair, delete_extra, overwrite_newer,
                                        since, until, sample, max_rows_per_second, consistency,
                                        json)
        report, fetched = fabric_tasks.execute_verify(
            args, remote_dir, fabric_tasks.resolve_inventory(inventory, os.environ, _identity(c)),
            _patterns(c, on), reports)
    except FuretError as exc:
        raise Exit(f"fab verify: error: {exc}", code=EXIT_USER_ERROR) from None
    for path in fetched:
        print(f"fab verify: report {path}", file=sys.stderr, flush=True)
    for line in report.lines():
        print(line, file=sys.stderr, flush=True)
    if report.failed:
        raise Exit(code=report.exit_code)
