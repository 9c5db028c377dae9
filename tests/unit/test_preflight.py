"""The inventory preflight fails before any host is touched, naming host and variable.

These run playbooks/preflight.yml for real (ansible-playbook) against inventories of
unreachable documentation addresses: the play must decide on the controller alone.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

LAB_INVENTORY = yaml.safe_load((REPO / "inventories/lab/hosts.yml").read_text())


def _inventory(tmp_path: Path, mutate) -> Path:
    data = copy.deepcopy(LAB_INVENTORY)
    # Unreachable addresses: if the preflight let anything through, the play would fail
    # on SSH instead of on the assertion, and the message checks below would not match.
    for group in data["all"]["children"].values():
        for host_vars in group["hosts"].values():
            host_vars["ansible_host"] = "192.0.2.1"
    mutate(data["all"]["children"])
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sane_inventory_passes(tmp_path: Path) -> None:
    run = run_playbook("preflight.yml", inventory=_inventory(tmp_path, lambda groups: None))
    assert run.returncode == 0, run.output
    assert run.recap["legacy1"]["failed"] == 0


@pytest.mark.parametrize("variable", ["dc", "rack"])
def test_cassandra_host_without_dc_or_rack_is_refused(tmp_path: Path, variable: str) -> None:
    def drop(groups):
        del groups["cassandra"]["hosts"]["cassandra2"][variable]

    run = run_playbook("preflight.yml", inventory=_inventory(tmp_path, drop))
    assert run.returncode != 0
    assert f"host cassandra2: variable '{variable}' is missing" in run.output
    assert "UNREACHABLE" not in run.output


def test_invalid_dc_value_is_named(tmp_path: Path) -> None:
    def bad(groups):
        groups["cassandra"]["hosts"]["cassandra3"]["dc"] = "gra 1"

    run = run_playbook("preflight.yml", inventory=_inventory(tmp_path, bad))
    assert run.returncode != 0
    assert "host cassandra3: variable 'dc' is invalid (gra 1)" in run.output


def test_even_galera_count_is_refused_with_escape_hatch(tmp_path: Path) -> None:
    def even(groups):
        del groups["galera"]["hosts"]["galera3"]

    inventory = _inventory(tmp_path, even)
    run = run_playbook("preflight.yml", inventory=inventory)
    assert run.returncode != 0
    assert "group 'galera' has 2 hosts (galera1, galera2)" in run.output
    assert "-e common_preflight_galera_odd=false bypasses" in run.output

    bypassed = run_playbook("preflight.yml", "-e", "common_preflight_galera_odd=false",
                            inventory=inventory)
    assert bypassed.returncode == 0, bypassed.output


def test_missing_group_is_named(tmp_path: Path) -> None:
    def no_etl(groups):
        del groups["etl"]

    run = run_playbook("preflight.yml", inventory=_inventory(tmp_path, no_etl))
    assert run.returncode != 0
    assert "inventory group 'etl' is missing or empty" in run.output


# The operations validate their arguments (the role entry point's argument_specs) before
# any host is touched: on unreachable hosts they fail on the arguments, not on SSH.
@pytest.mark.parametrize(("playbook", "extra", "message"), [
    ("galera_recover.yml", "galera_recover_force=maybe",
     "argument 'galera_recover_force' is of type str and we were unable to convert to bool"),
    ("galera_recover.yml", "galera_recover_forse=true",
     "unknown variable(s) galera_recover_forse: the recovery knows galera_recover_force, "
     "galera_recover_settle_timeout, galera_recover_report"),
    ("galera_recover.yml", "galera_synced_timeout=soon",
     "argument 'galera_synced_timeout' is of type str and we were unable to convert to int"),
    ("galera_rolling_restart.yml", "galera_upgrade=maybe",
     "argument 'galera_upgrade' is of type str and we were unable to convert to bool"),
])
def test_operations_refuse_bad_arguments_before_any_host_is_touched(
        tmp_path: Path, playbook: str, extra: str, message: str) -> None:
    run = run_playbook(playbook, "-e", extra, inventory=_inventory(tmp_path, lambda groups: None))
    assert run.returncode != 0
    assert message in " ".join(run.output.split()), run.output[-3000:]
    assert "UNREACHABLE" not in run.output
    assert "Recover | Reach every node" not in run.output
