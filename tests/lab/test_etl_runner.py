"""etl_runner on etl1 (offline install, idempotent, config), then furet driven by `fab`."""

from __future__ import annotations

import json

import pytest

from migration.remote import connection_for, select_hosts
from tests.helpers import REPO, fab, run_playbook
from tests.lab.conftest import ProvisionedLab

INVENTORY = "inventories/lab/hosts.yml"


@pytest.fixture(scope="module")
def etl_runner(etl_provisioned: ProvisionedLab, galera_healthy: ProvisionedLab) -> ProvisionedLab:
    # site.yml installed furet already: this run must find nothing to do or only finish it.
    # fab status reads the ledger through HAProxy: the Galera cluster must be healthy.
    first = run_playbook("etl.yml")
    assert first.returncode == 0, first.output[-6000:]
    assert first.recap["etl1"]["failed"] == 0, first.output[-6000:]
    return etl_provisioned


def test_etl_playbook_is_idempotent_and_truthful_in_check_mode(etl_runner: ProvisionedLab) -> None:
    second = run_playbook("etl.yml")
    assert second.returncode == 0, second.output[-4000:]
    assert second.changed_hosts() == {}, second.output[-4000:]
    checked = run_playbook("etl.yml", "--check", "--diff")
    assert checked.returncode == 0, checked.output[-4000:]
    assert checked.changed_hosts() == {}, checked.output[-4000:]
    # The config's passwords never reach the playbook output.
    for run in (second, checked):
        assert "lab-furet-not-secret" not in run.output
        assert "lab-cassandra-furet-not-secret" not in run.output


def test_furet_is_installed_from_the_wheelhouse_with_its_config(etl_runner: ProvisionedLab) -> None:
    etl1 = select_hosts(REPO / INVENTORY, ["etl1"])[0]
    with connection_for(etl1) as conn:
        def sh(command: str) -> str:
            return conn.run(command, hide=True).stdout.strip()

        assert sh("readlink /usr/local/bin/furet") == "/opt/furet/venv/bin/furet"
        assert sh("stat -c '%a %U %G' /etc/furet/furet.yml") == "640 root furet"
        assert sh("furet --version").startswith("furet, version ")
        config = sh("cat /etc/furet/furet.yml")
        assert "host: \"10.213.0.11\"" in config and "host: \"127.0.0.1\"" in config
        assert "10.213.0.31" in config
        # Installed offline: every distribution in the venv came from the copied wheelhouse.
        wheels = sh("ls /opt/furet/wheelhouse/*/").split()
        assert any(w.startswith("furet-") for w in wheels)
        assert any(w.startswith("cassandra_driver-") for w in wheels)
        assert sh("/opt/furet/venv/bin/python -c 'import cassandra, fabric, pymysql; "
                  "print(pymysql.__version__)'")


def test_fab_version_runs_on_the_etl_group_with_either_inventory_flag(
        etl_runner: ProvisionedLab) -> None:
    for args in (["version", "-i", INVENTORY], ["-i", INVENTORY, "version"]):
        result = fab(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "furet, version" in result.stdout
        assert "fab version: etl1 ok" in result.stderr


def test_fab_status_reads_the_ledger_through_haproxy(etl_runner: ProvisionedLab) -> None:
    result = fab("status", "-i", INVENTORY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "target 127.0.0.1:3306" in result.stdout  # the table's title
    assert "fab status: etl1 ok" in result.stderr
    as_json = fab("status", "-i", INVENTORY, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert set(json.loads(as_json.stdout)) == {"rounds", "quarantine"}


def test_fab_reports_which_host_failed_and_why(etl_runner: ProvisionedLab) -> None:
    # legacy1 has no furet: etl1 still answers, legacy1 is named with the reason.
    result = fab("status", "-i", INVENTORY, "--on", "etl1,legacy1")
    assert result.returncode == 127, result.stdout + result.stderr
    assert "[etl1] " in result.stdout
    assert "fab status: etl1 ok" in result.stderr
    assert "fab status: legacy1 FAILED (furet is not installed there" in result.stderr
    assert "1 of 2 host(s) failed: legacy1" in result.stderr
    # State-changing tasks refuse several hosts before reaching any.
    refused = fab("round", "--flow", "runtime", "-i", INVENTORY, "--on", "etl1,legacy1")
    assert refused.returncode == 2
    assert "round runs on one host only" in refused.stderr
