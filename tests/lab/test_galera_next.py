"""MariaDB 10.11 (Debian 12) to 11.8 (Debian 13) the way Debian's packages allow it: a new
cluster, filled by furet's rounds and switched to by the cutover runbook (`make soak`).

MariaDB's Galera runs mixed versions only across adjacent majors (10.11 -> 11.4 -> 11.8),
Debian serves no 11.4, and trixie's 11.8 needs Debian 13's libc: no rolling upgrade of the
running nodes reaches 11.8 (migration/upgrade.py refuses it, naming this path). So:

1. `furet lab up --with next` starts three Debian 13 hosts (inventories/lab/next.yml, group
   galera_next) and `site.yml` with both inventory files makes them a second Galera cluster
   (MariaDB 11.8, furet's TLS, firewall, the endpoint's backend app_galera_next);
2. the web app writes through the application endpoint (app1) onto the old cluster, all along;
3. etl1's furet is pointed at the old cluster as its source (`etl_runner_migration:
   galera_next`), a flow is written by `fab flow-init` and deployed, the target schema made;
4. `fab cutover run --runbook galera-next`: rounds, the old cluster frozen on every node,
   the final round, the verify gate, the endpoint switched to the new cluster, a reverse round.

Then every write the endpoint acknowledged is on every node of the new cluster, each of which
runs 11.8, is Synced and has clean system tables.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migration.inventory import InventoryHost
from migration.lab.config import load_lab_config
from tests.helpers import fab as run_fab
from tests.helpers import furet, run_playbook, wait_for
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import ContinuousWriter, node_shell, node_sql, wsrep_status

pytestmark = pytest.mark.soak

OLD = ("galera1", "galera2", "galera3")
NEXT = ("galeranext1", "galeranext2", "galeranext3")
FLOW = "upgrade"
SEED_ROWS = 20_000
# LAB ONLY: the web app's account (inventories/lab/group_vars/galera.yml), on both clusters
WEBAPP = ("webapp", "lab-legacy-webapp-not-secret", "shop")
# etl1's furet reads the old cluster with Galera's furet account (LAB ONLY password, that of
# inventories/lab/group_vars/galera.yml); bench/lab.py and other tests read etl.yml's plain value
GALERA_NEXT_SOURCE = ("-e", "etl_runner_migration=galera_next",
                      "-e", "etl_runner_legacy_password=lab-furet-not-secret")
INSERT = "INSERT INTO upgrade_orders (k, note) VALUES (%s, 'web')"
TABLE = ("(k CHAR(32) NOT NULL PRIMARY KEY, note VARCHAR(40) NOT NULL, "
         "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
         "ON UPDATE CURRENT_TIMESTAMP(6), KEY (updated_at))")


fab = functools.partial(run_fab, check=True)  # each fab here must succeed


def converge(playbook: str, *args: str) -> None:
    """``playbook`` on the lab with its next hosts (-i hosts.yml -i next.yml)."""
    files = load_lab_config(extras=("next",)).inventory_files()
    run = run_playbook(playbook, *(a for f in files for a in ("-i", str(f))), *args,
                       timeout=3600)
    assert run.returncode == 0 and not any(r["failed"] or r["unreachable"]
                                           for r in run.recap.values()), run.output[-6000:]


@pytest.fixture(scope="module")
def clusters(backups_ready: ProvisionedLab, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, InventoryHost]]:
    """Both clusters provisioned, the old one's and Cassandra's backups restore-tested
    (backup.yml, restore_test.yml: recorded in the old cluster's ledger, where the
    galera-next runbook's backup gate reads them), etl1 migrating the old one into the new
    one, shop's table seeded on the old one and absent from the new one; afterwards etl1
    back on the legacy master, the old cluster writable, the endpoint on the legacy master."""
    up = furet("lab", "up", "--with", "next", timeout=1800)
    assert up.returncode == 0, up.stderr[-3000:]
    converge("site.yml")
    hosts = {h.name: h for h in load_lab_config(extras=("next",)).hosts}
    flows = tmp_path_factory.mktemp("inventory") / "flows"
    flows.mkdir()
    converge("etl.yml", *GALERA_NEXT_SOURCE,
             "-e", f"etl_runner_flows_dir={flows}")
    old, new = hosts["galera1"], hosts["galeranext1"]
    node_sql(old, f"CREATE DATABASE IF NOT EXISTS shop; DROP TABLE IF EXISTS "
                  f"shop.upgrade_orders; CREATE TABLE shop.upgrade_orders {TABLE}; "
                  "INSERT INTO shop.upgrade_orders SELECT MD5(seq), 'seed', "
                  f"NOW(6) - INTERVAL 2 HOUR FROM shop.seq_0_to_{SEED_ROWS - 1}")
    # a run before this one: its rows, rounds and cutover journal on the new cluster
    # warn: on a cluster no run has used yet, these are no-ops or name absent ledger tables
    node_sql(new, "DROP DATABASE IF EXISTS shop; CREATE DATABASE shop", warn=True)
    node_sql(new, "DELETE FROM furet.cutover_steps; DELETE FROM furet.cutover_runs; "
                  + "; ".join(f"DELETE FROM furet.{t} WHERE flow LIKE '{FLOW}%'"
                              for t in ("quarantine", "chunks", "round_tables", "rounds")),
             warn=True)
    yield hosts | {"flows": flows}  # type: ignore[dict-item]
    # warn: the teardown restores what it can; a failed step must not hide the test's result
    node_shell(hosts["app1"], "furet endpoint switch --to legacy", warn=True)
    for name in OLD:
        node_sql(hosts[name], "SET GLOBAL read_only = 0", warn=True)
    converge("etl.yml")


def _keys(host: InventoryHost) -> set[str]:
    return set(node_sql(host, "SELECT k FROM shop.upgrade_orders").split())


def test_a_new_11_8_cluster_filled_by_rounds_and_switched_to_loses_no_write(
        clusters: dict[str, InventoryHost], figures) -> None:
    app1, new = clusters["app1"], clusters["galeranext1"]
    flows: Path = clusters["flows"]  # type: ignore[assignment]
    for name in NEXT:
        version = node_sql(clusters[name], "SELECT @@version")
        assert version.startswith("11.8."), f"{name} runs {version}"
    for name in OLD:
        assert node_sql(clusters[name], "SELECT @@version").startswith("10.11.")

    made = fab("flow-init", "--source-db", "shop", "--tables", "upgrade_orders",
               "--target", "mariadb:shop", "--name", FLOW)
    tables = yaml.safe_load(made.stdout)["tables"]
    assert [(t["source"], t["key"], t["version"]) for t in tables] == [
        ("upgrade_orders", "k", "updated_at")], made.stdout
    (flows / f"{FLOW}.yml").write_text(made.stdout)
    converge("etl.yml", "--tags", "etl:flows", *GALERA_NEXT_SOURCE,
             "-e", f"etl_runner_flows_dir={flows}")
    fab("target-schema", "--flow", FLOW, "--apply")

    node_shell(app1, "furet endpoint switch --to galera")
    writer = ContinuousWriter(app1.address, max_seconds=3600, account=WEBAPP,
                              insert=INSERT).start()
    try:
        wait_for(lambda: len(writer.acked) > 200, "writes through the endpoint", 120)
        flows_args = ("--flows", FLOW, "--verify-flows", FLOW, "--reverse-flows", FLOW)
        plan = fab("cutover", "plan", "--runbook", "galera-next", *flows_args).stderr
        # the freeze's check reaches each node of the old cluster; the backup gate reads
        # the old cluster's ledger: the runbook's galera and cassandra backups, restore-tested
        assert "and its 3 Galera nodes writable" in plan, plan
        assert '"kind": "galera"' in plan and '"kind": "cassandra"' in plan, plan
        assert '"kind": "legacy"' not in plan, plan
        started = time.monotonic()
        run = fab("cutover", "run", "--runbook", "galera-next", *flows_args, timeout=3600)
        cutover_s = time.monotonic() - started
        assert node_shell(app1, "cat /etc/haproxy/furet/app_endpoint.map") == (
            "active app_galera_next")
        switched = len(writer.acked)
        wait_for(lambda: len(writer.acked) > switched + 200, "writes on the new cluster", 120)
    finally:
        writer.stop()

    acked = set(writer.acked)
    for name in NEXT:
        node = clusters[name]
        status = wsrep_status(node)
        assert (status["WSREP_LOCAL_STATE_COMMENT"], status["WSREP_CLUSTER_SIZE"]) == (
            "Synced", "3"), name
        missing = acked - _keys(node)
        assert not missing, f"{len(missing)} acknowledged writes missing on {name}"
        checked = node_shell(node, "mariadb-check --check --databases mysql")
        assert checked and all(line.rstrip().endswith("OK") for line in checked.splitlines()
                               if line.strip()), checked
    assert int(node_sql(new, "SELECT COUNT(*) FROM shop.upgrade_orders WHERE note = 'seed'")
               ) == SEED_ROWS
    for name in OLD:
        assert node_sql(clusters[name], "SELECT @@global.read_only") == "1", name
    frozen_s = float(node_sql(new, "SELECT TIMESTAMPDIFF(MICROSECOND, f.started_at, "
                                   "s.finished_at) / 1e6 FROM furet.cutover_steps f JOIN "
                                   "furet.cutover_steps s USING (run_id) WHERE "
                                   "f.step_id = 'freeze' AND s.step_id = 'switch' "
                                   "ORDER BY run_id DESC LIMIT 1"))
    figures(acknowledged=len(acked), failed_attempts=writer.failed_attempts,
            longest_write_pause_s=round(writer.longest_pause_s, 2),
            freeze_to_switch_s=round(frozen_s, 1), cutover_run_s=round(cutover_s, 1),
            errors=writer.errors, output=run.stderr[-1500:])
