"""Galera under faults, on the lab's real 3-node cluster and HAProxy (etl1).

1. Every node crashes (kill -9) after writes that reached different nodes last; the
   recovery playbook must bootstrap from the most advanced node and lose nothing.
2. A rolling restart under a continuous write load through HAProxy loses no
   acknowledged write.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from migration.inventory import InventoryHost
from tests.helpers import REPO, run_playbook
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import ContinuousWriter, insert_rows, node_shell, node_sql

# While a test crashes nodes, systemd must not restart mariadbd by itself (Debian's unit
# has Restart=on-abort): a runtime drop-in, gone at the next boot, removed by the test.
NO_RESTART_DROPIN = "/run/systemd/system/mariadb.service.d/zz-furet-test-no-restart.conf"


@pytest.fixture(scope="module")
def nodes(galera_healthy: ProvisionedLab) -> dict[str, InventoryHost]:
    """The Galera nodes and etl1 (HAProxy), the cluster healthy, a table to write into."""
    hosts = {h.name: h for h in galera_healthy.config.hosts}
    node_sql(hosts["galera1"], "CREATE TABLE IF NOT EXISTS furet.fault_probe ("
             " id BIGINT AUTO_INCREMENT PRIMARY KEY, k CHAR(32) NOT NULL UNIQUE,"
             " phase VARCHAR(16) NOT NULL)")
    return hosts


def _wsrep(host: InventoryHost) -> dict[str, str]:
    out = node_sql(host, "SELECT VARIABLE_NAME, VARIABLE_VALUE"
                         " FROM information_schema.GLOBAL_STATUS"
                         " WHERE VARIABLE_NAME LIKE 'WSREP_%'", warn=True)
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _crash(host: InventoryHost) -> None:
    node_shell(host, "kill -9 $(pidof mariadbd)")
    # pidof exits 1 once no mariadbd is left, which is what we wait for.
    _wait_for(lambda: node_shell(host, "pidof mariadbd || true") == "", f"{host.name} to die", 30)


def _present(host: InventoryHost, keys: list[str]) -> set[str]:
    out = node_sql(host, "SELECT k FROM furet.fault_probe")
    return set(out.split()) & set(keys)


def test_recover_after_every_node_crashed(nodes: dict[str, InventoryHost], figures) -> None:
    g1, g2, g3 = nodes["galera1"], nodes["galera2"], nodes["galera3"]
    galera = [g1, g2, g3]
    for host in galera:
        node_shell(host, f"mkdir -p {NO_RESTART_DROPIN.rsplit('/', 1)[0]} && "
                         f"printf '[Service]\\nRestart=no\\n' > {NO_RESTART_DROPIN} && "
                         "systemctl daemon-reload")
    try:
        acked = insert_rows(g1.address, "all3", 40)
        # galera3 crashes first: the two others keep quorum and go on.
        _crash(g3)
        _wait_for(lambda: _wsrep(g1).get("WSREP_CLUSTER_SIZE") == "2", "galera3 evicted")
        acked += insert_rows(g2.address, "g1g2", 40)
        # galera1 crashes: galera2 alone is not Primary until an operator forces it.
        _crash(g1)
        _wait_for(lambda: _wsrep(g2).get("WSREP_CLUSTER_STATUS") == "non-Primary",
                  "galera2 to lose quorum")
        node_sql(g2, "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'")
        _wait_for(lambda: _wsrep(g2).get("WSREP_CLUSTER_STATUS") == "Primary", "galera2 Primary")
        acked += insert_rows(g2.address, "g2only", 40)
        _crash(g2)
    finally:
        for host in galera:
            node_shell(host, f"rm -f {NO_RESTART_DROPIN} && systemctl daemon-reload", warn=True)

    started = time.monotonic()
    run = run_playbook("galera_recover.yml")
    recover_s = time.monotonic() - started
    assert run.returncode == 0, run.output[-6000:]
    decision = json.loads((REPO / "reports" / "galera_recover.json").read_text())
    table = {row["host"]: row for row in decision["nodes"]}
    assert decision["bootstrap"] == "galera2"
    assert table["galera2"]["seqno"] > table["galera1"]["seqno"] > table["galera3"]["seqno"]
    assert {row["source"] for row in table.values()} == {"wsrep-recover"}
    for host in galera:
        state = _wsrep(host)
        assert (state["WSREP_CLUSTER_SIZE"], state["WSREP_LOCAL_STATE_COMMENT"]) == ("3", "Synced")
        assert _present(host, acked) == set(acked), f"{host.name} lost acknowledged writes"
    figures(recover_seconds=round(recover_s, 1), acknowledged=len(acked),
            decision={h: table[h]["seqno"] for h in sorted(table)}, bootstrap="galera2")


def test_rolling_restart_under_write_load(nodes: dict[str, InventoryHost], figures) -> None:
    etl = nodes["etl1"]
    writer = ContinuousWriter(etl.address).start()
    time.sleep(3)
    started = time.monotonic()
    run = run_playbook("galera_rolling_restart.yml")
    restart_s = time.monotonic() - started
    time.sleep(3)
    writer.stop()
    assert run.returncode == 0, run.output[-6000:]
    restarted = re.findall(
        r"TASK \[mariadb_galera : Rolling \| Restart mariadb and wait until Synced on (\w+)\]",
        run.output)
    assert len(restarted) == 3, "every node restarts once"
    assert restarted == ["galera1", "galera2", "galera3"], "one node at a time, in group order"
    assert len(writer.acked) > 100, "the writer made progress"
    for host in (nodes["galera1"], nodes["galera3"]):
        missing = set(writer.acked) - _present(host, writer.acked)
        assert not missing, f"{host.name}: {len(missing)} acknowledged inserts missing"
    figures(rolling_restart_seconds=round(restart_s, 1), acknowledged=len(writer.acked),
            failed_attempts=writer.failed_attempts,
            longest_pause_seconds=round(writer.longest_pause_s, 2), errors=writer.errors)
