"""User flows on etl1 (role etl_runner, tag etl:flows): a flows directory on the controller
copied to /etc/furet/flows, idempotent and truthful in check mode, only what the role
deployed removed again; `fab round --flow NAME` runs the deployed flow on etl1.

The flow copies a scratch table into another one in furet_bench (the lab's scratch
database, where the furet user may write); both tables are dropped at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration.inventory import InventoryHost
from tests.helpers import PlaybookRun, fab, run_playbook
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import node_shell, node_sql

INVENTORY = "inventories/lab/hosts.yml"
NAME = "lab_user_flow"
REMOTE = "/etc/furet/flows"  # the role's default: etl_runner_config_dir/flows
SCRATCH = "furet_bench"
FLOW = f"""\
# A user flow of the lab test (tests/lab/test_etl_runner_flows.py).
name: {NAME}
description: scratch table -> scratch table, both in {SCRATCH}
source: {{server: target, database: {SCRATCH}}}
target: {{kind: mariadb, server: target, database: {SCRATCH}}}
tables:
  - source: lab_flow_src
    key: id
    version: updated_ts
    targets:
      - table: lab_flow_dst
        columns: {{id: id, updated_ts: updated_ts, label: label}}
"""
TABLE = ("(id BIGINT NOT NULL PRIMARY KEY, updated_ts BIGINT NOT NULL, label VARCHAR(64), "
         "KEY (updated_ts)) ENGINE=InnoDB")


def deploy_flows(flows_dir: Path, *args: str) -> PlaybookRun:
    """Only the flows part of the role, from ``flows_dir``."""
    run = run_playbook("etl.yml", "--tags", "etl:flows", "-e", f"etl_runner_flows_dir={flows_dir}",
                       *args)
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["etl1"]["failed"] == 0, run.output[-4000:]
    return run


@pytest.fixture(scope="module")
def etl1(etl_provisioned: ProvisionedLab, galera_healthy: ProvisionedLab
         ) -> Iterator[InventoryHost]:
    # furet on etl1 is built from this tree, with flows.dir in its furet.yml: site.yml ran
    # once in this session (provisioned_lab), and etl_provisioned converged it since if
    # needed.
    host = etl_provisioned.host("etl1")
    yield host
    node_shell(host, f"rm -f {REMOTE}/hand_placed.yml", warn=True)
    node_sql(galera_healthy.host("galera1"),
             f"DROP TABLE IF EXISTS {SCRATCH}.lab_flow_src, {SCRATCH}.lab_flow_dst", warn=True)


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "flows"
    path.mkdir()
    (path / f"{NAME}.yml").write_text(FLOW)
    (path / "README.txt").write_text("not a flow: never copied\n")
    return path


@pytest.fixture(scope="module")
def deployed(etl1: InventoryHost, flows_dir: Path) -> Iterator[PlaybookRun]:
    first = deploy_flows(flows_dir)
    yield first
    # Leave etl1 without the test's flow: an empty flows directory removes what was deployed.
    empty = flows_dir.parent / "empty"
    empty.mkdir(exist_ok=True)
    deploy_flows(empty)


def test_flows_are_copied_idempotently_and_check_mode_is_truthful(
        etl1: InventoryHost, flows_dir: Path, deployed: PlaybookRun) -> None:
    def sh(command: str) -> str:
        return node_shell(etl1, command)

    assert sh(f"cat {REMOTE}/{NAME}.yml") == FLOW.strip()
    assert sh(f"stat -c '%a %U %G' {REMOTE} {REMOTE}/{NAME}.yml").splitlines() == [
        "750 root furet", "640 root furet"]
    assert sorted(sh(f"ls -A {REMOTE}").split()) == [".furet-managed", f"{NAME}.yml"]
    assert f'["{NAME}.yml"]' in sh(f"cat {REMOTE}/.furet-managed")
    assert f'dir: "{REMOTE}"' in sh("cat /etc/furet/furet.yml")
    second = deploy_flows(flows_dir)
    assert second.changed_hosts() == {}, second.output[-4000:]
    checked = deploy_flows(flows_dir, "--check", "--diff")
    assert checked.changed_hosts() == {}, checked.output[-4000:]
    # A changed flow: check mode shows the change without making it, the real run makes it.
    (flows_dir / f"{NAME}.yml").write_text(FLOW + "# edited\n")
    try:
        checked = deploy_flows(flows_dir, "--check", "--diff")
        assert checked.changed_hosts() == {"etl1": 1}, checked.output[-4000:]
        assert "+# edited" in checked.output
        assert "# edited" not in sh(f"cat {REMOTE}/{NAME}.yml")
    finally:
        (flows_dir / f"{NAME}.yml").write_text(FLOW)
    assert deploy_flows(flows_dir).changed_hosts() == {}


def test_fab_round_runs_the_deployed_flow(etl1: InventoryHost, deployed: PlaybookRun,
                                          galera_healthy: ProvisionedLab) -> None:
    galera1 = galera_healthy.host("galera1")
    # Versions past the rounds' safety lag (5 s) and after any earlier run's watermark.
    now_ms = int(time.time() * 1000) - 30_000
    node_sql(galera1, f"CREATE DATABASE IF NOT EXISTS {SCRATCH}; "
                      f"DROP TABLE IF EXISTS {SCRATCH}.lab_flow_src, {SCRATCH}.lab_flow_dst; "
                      f"CREATE TABLE {SCRATCH}.lab_flow_src {TABLE}; "
                      f"CREATE TABLE {SCRATCH}.lab_flow_dst {TABLE}; "
                      f"INSERT INTO {SCRATCH}.lab_flow_src VALUES (1, {now_ms}, 'one'), "
                      f"(2, {now_ms + 1}, 'two'), (3, {now_ms + 2}, 'three')")
    result = fab("round", "--flow", NAME, "-i", INVENTORY, "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fab round: etl1 ok" in result.stderr
    assert node_sql(galera1, f"SELECT GROUP_CONCAT(label ORDER BY id) FROM "
                             f"{SCRATCH}.lab_flow_dst") == "one,two,three"
    # An unknown name: the remote furet lists the shipped and the deployed flows.
    unknown = fab("round", "--flow", "no_such_flow", "-i", INVENTORY, "--no-progress")
    assert unknown.returncode != 0
    output = unknown.stdout + unknown.stderr
    assert "unknown flow 'no_such_flow' (shipped: " in output
    assert f"deployed in {REMOTE}: {NAME})" in output


def test_only_the_flows_the_role_deployed_are_removed(
        etl1: InventoryHost, flows_dir: Path, deployed: PlaybookRun) -> None:
    node_shell(etl1, f"echo 'name: hand_placed' > {REMOTE}/hand_placed.yml")
    gone = flows_dir.parent / "gone"  # the inventory no longer has a flows directory
    removed = deploy_flows(gone)
    assert removed.changed_hosts() == {"etl1": 2}, removed.output[-4000:]  # file + manifest
    assert "Unable to find" not in removed.output  # a missing directory is no warning either
    assert sorted(node_shell(etl1, f"ls -A {REMOTE}").split()) == [".furet-managed",
                                                                    "hand_placed.yml"]
    assert deploy_flows(gone).changed_hosts() == {}
    assert deploy_flows(flows_dir).changed_hosts() == {"etl1": 2}  # back for the next tests
