"""The inventory preflight fails before any host is touched, naming host and variable.

These run playbooks/preflight.yml for real (ansible-playbook) against inventories of
unreachable documentation addresses: the play must decide on the controller alone.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, PlaybookRun, run_playbook

LAB_INVENTORY = yaml.safe_load((REPO / "inventories/lab/hosts.yml").read_text())


def _inventory(tmp_path: Path, mutate) -> Path:
    data = copy.deepcopy(LAB_INVENTORY)
    # Unreachable addresses: if the preflight let anything through, the play would fail
    # on SSH instead of on the assertion, and the message checks below would not match.
    for group in data["all"]["children"].values():
        for host_vars in group["hosts"].values():
            host_vars["ansible_host"] = "192.0.2.1"
    # Every inventory names the networks SSH stays open to (the firewall's preflight).
    data["all"]["vars"] = {"firewall_management_networks": ["192.0.2.0/24"]}
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


def test_a_new_cluster_of_two_nodes_is_refused_too(tmp_path: Path) -> None:
    def next_cluster(groups):
        groups["galera_next"] = {"hosts": {"galeranext1": {"ansible_host": "192.0.2.1"},
                                           "galeranext2": {"ansible_host": "192.0.2.1"}}}

    run = run_playbook("preflight.yml", inventory=_inventory(tmp_path, next_cluster))
    assert run.returncode != 0
    assert "group 'galera_next' has 2 hosts (galeranext1, galeranext2)" in run.output
    assert "group 'galera' has" not in run.output


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
    ("galera_rolling_restart.yml", "galera_stop_timeout=soon",
     "argument 'galera_stop_timeout' is of type str and we were unable to convert to int"),
    ("galera_upgrade.yml", "galera_upgrade_node_downtime=soon",
     "argument 'galera_upgrade_node_downtime' is of type str and we were unable to convert to "
     "int"),
])
def test_operations_refuse_bad_arguments_before_any_host_is_touched(
        tmp_path: Path, playbook: str, extra: str, message: str) -> None:
    run = run_playbook(playbook, "-e", extra, inventory=_inventory(tmp_path, lambda groups: None))
    assert run.returncode != 0
    assert message in " ".join(run.output.split()), run.output[-3000:]
    assert "UNREACHABLE" not in run.output
    assert "Recover | Reach every node" not in run.output


# The roles' own preflights check the passwords' length: their messages name the variable
# (or the entry of a user list) and are visible, the value is not in them. One weak secret
# per case: a failed check ends the host's play.
@pytest.mark.parametrize(("group", "role", "vars_file", "old", "new", "message"), [
    ("galera", "mariadb_galera", "galera.yml", "lab-sst-not-secret", "short1",
     "host galera1: galera_sst_password must be set, 8 characters or more"),
    ("galera", "mariadb_galera", "galera.yml", "password: lab-legacy-webapp-not-secret",
     "password: tiny22",
     "host galera1: galera_users entry webapp needs a name and a password of 8 characters"),
    ("cassandra", "cassandra", "cassandra.yml", "lab-cassandra-admin-not-secret", "short3",
     "host cassandra1: cassandra_superuser (not 'cassandra') and cassandra_superuser_password"),
    ("cassandra", "cassandra", "cassandra.yml", "lab-cassandra-furet-not-secret", "tiny44",
     "cassandra_roles: role furet needs a name and, when it logs in, a password"),
    ("legacy_mysql", "legacy_mysql", "legacy_mysql.yml", "lab-legacy-webapp-not-secret",
     "short5", "host legacy1: legacy_mysql_users entry webapp needs a name, a priv and a password"),
], ids=["galera_sst_password", "galera_users", "cassandra_superuser_password",
        "cassandra_roles", "legacy_mysql_users"])
def test_role_preflight_messages_name_the_variable_visibly(
        tmp_path: Path, group: str, role: str, vars_file: str, old: str, new: str,
        message: str) -> None:
    run = _role_preflight(tmp_path, group, role, vars_file, old, new)
    assert run.returncode != 0, run.output[-3000:]
    assert message in " ".join(run.output.split()), run.output[-3000:]
    assert "output has been hidden" not in run.output
    assert "censored" not in run.output
    assert new.removeprefix("password: ") not in run.output


def _role_preflight(tmp_path: Path, group: str, role: str, vars_file: str, old: str,
                    new: str) -> PlaybookRun:
    """The role's entry point preflight on the lab's inventory, with ``old`` replaced by
    ``new`` in group_vars/``vars_file``."""
    root = tmp_path / "lab"
    shutil.copytree(REPO / "inventories/lab", root)
    path = root / "group_vars" / vars_file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    playbook = tmp_path / "role_preflight.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Role preflight", "hosts": group, "gather_facts": False,
        "tasks": [{"name": "Preflight of the role", "ansible.builtin.include_role": {
            "name": role, "tasks_from": "preflight"}}]}]))
    return run_playbook(str(playbook), inventory=root / "hosts.yml")


# A user bound to hosts whose list is empty (`groups['app_endpoint'] | default([])` without
# an endpoint) would lose its account at '%' and get none: refused, naming the user.
@pytest.mark.parametrize(("group", "role", "vars_file", "old", "new", "message"), [
    ("galera", "mariadb_galera", "galera.yml",
     "hosts: \"{{ groups['app_endpoint'] | map('extract', hostvars, 'ansible_host') | list }}\"",
     "hosts: \"{{ groups['no_endpoint'] | default([]) }}\"",
     "host galera1: galera_users entry webapp has an empty hosts list"),
    ("legacy_mysql", "legacy_mysql", "legacy_mysql.yml",
     "  - name: webapp\n    password: lab-legacy-webapp-not-secret\n",
     "  - name: webapp\n    password: lab-legacy-webapp-not-secret\n    hosts: []\n",
     "host legacy1: legacy_mysql_users entry webapp has an empty hosts list"),
], ids=["galera_users", "legacy_mysql_users"])
def test_a_user_bound_to_an_empty_hosts_list_is_refused(
        tmp_path: Path, group: str, role: str, vars_file: str, old: str, new: str,
        message: str) -> None:
    run = _role_preflight(tmp_path, group, role, vars_file, old, new)
    assert run.returncode != 0, run.output[-3000:]
    assert message in " ".join(run.output.split()), run.output[-3000:]
    assert "lab-legacy-webapp-not-secret" not in run.output
    assert "output has been hidden" not in run.output
