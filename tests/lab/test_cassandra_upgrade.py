"""playbooks/cassandra_upgrade.yml on the lab's real ring, under a continuous write load at
QUORUM (`make soak`: the ring is rebuilt on the older version first, about 20 minutes).

The three Cassandra hosts are recreated bare and formed on 5.0.8 (both distributions are
built from Maven Central by packaging/cassandra/build.sh). Then, DC by DC (gra first):

1. a random node (seeded, the seed printed) of rbx gets a broken 5.0.9 install: the play
   stops naming it with its rollback command, the nodes before it are on 5.0.9, the nodes
   after it untouched, and the ring keeps acknowledging writes;
2. the documented rollback (cassandra_rollback_node.yml) puts the node back on 5.0.8, UN;
3. with every node up and the versions mixed, cassandra_repair.yml is refused with the reason;
4. the upgrade run again skips the nodes done and finishes: every node reports 5.0.9 in
   `nodetool version`, UN in every view, one schema version, the upgrade's snapshot on
   every node, and every acknowledged write readable at QUORUM;
5. a downgrade request is refused naming the node and the reason.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from migration.inventory import InventoryHost
from migration.lab.podman import Podman
from tests.helpers import REPO, furet, run_playbook
from tests.lab.cassandra_client import (
    ContinuousWriter,
    connect,
    create_table,
    missing_keys,
    node_shell,
)
from tests.lab.conftest import ProvisionedLab
from tests.lab.timeline import pauses_per_host, task_windows

pytestmark = pytest.mark.soak

NODES = ("cassandra1", "cassandra2", "cassandra3")
OLD, NEW = "5.0.8", "5.0.9"
DC_ORDER = '{"cassandra_upgrade_dc_order": ["gra", "rbx"]}'   # cassandra3, then 1 and 2


def _dist(version: str) -> None:
    built = subprocess.run(["bash", str(REPO / "packaging" / "cassandra" / "build.sh")],
                           env={**os.environ, "CASSANDRA_VERSION": version},
                           capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]


def _version(host: InventoryHost) -> str:
    # nodetool fails on a node that is down: that is an answer here, not an error
    out = node_shell(host, "nodetool version 2>/dev/null || true")
    return out.removeprefix("ReleaseVersion:").strip() or "down"


def _un(host: InventoryHost) -> int:
    # nodetool fails on a node that is down: no UN line is the answer, not an error
    return len(re.findall(r"(?m)^UN\s", node_shell(host, "nodetool status 2>/dev/null || true")))


@pytest.fixture(scope="module")
def old_ring(provisioned_lab: ProvisionedLab) -> Iterator[dict[str, InventoryHost]]:
    """The ring's three hosts recreated bare and formed on the older version."""
    lab = provisioned_lab.config
    _dist(OLD)
    _dist(NEW)
    hosts = {h.name: h for h in lab.hosts if h.name in NODES}
    podman = Podman(lab.containers_conf)
    for host in hosts.values():
        podman.run("kill", lab.container_name(host))
    up = furet("lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    formed = run_playbook("site.yml", "--limit", "cassandra", "-e", f"cassandra_version={OLD}")
    assert formed.returncode == 0, formed.output[-6000:]
    assert {n: _version(h) for n, h in hosts.items()} == dict.fromkeys(NODES, OLD)
    yield hosts


def _turn(task: str, node: str) -> bool:
    """A task of the node's own upgrade (not the plan's, run on every node at once)."""
    return "cassandra : Upgrade |" in task and task.endswith(node)


def _upgrade(*extra: str):  # type: ignore[no-untyped-def]
    return run_playbook("cassandra_upgrade.yml", "-e", f"cassandra_target_version={NEW}",
                        "-e", DC_ORDER, "-e", "cassandra_up_timeout=120", *extra)


def test_an_upgrade_under_load_with_a_node_that_fails_its_rollback_and_a_resume(
        old_ring: dict[str, InventoryHost], seed: int, figures) -> None:
    hosts = old_ring
    broken = random.Random(seed).choice(["cassandra1", "cassandra2"])
    before_broken = ["cassandra3"] + (["cassandra1"] if broken == "cassandra2" else [])
    after_broken = ["cassandra2"] if broken == "cassandra1" else []
    launcher = f"/opt/cassandra-{NEW}/bin/cassandra"   # the unpack sees it and skips
    node_shell(hosts[broken], f"mkdir -p /opt/cassandra-{NEW}/bin && printf "
               f"'#!/bin/sh\\necho furet-test: broken install >&2\\nexit 1\\n' "
               f"> {launcher} && chmod 755 {launcher}")
    cluster, session = connect([h.address for h in hosts.values()])
    try:
        create_table(session)
        writer = ContinuousWriter(session, max_seconds=3600).start()
        time.sleep(3)
        started = time.monotonic()
        failed = _upgrade()
        failed_s = time.monotonic() - started
        acked_at_failure = len(writer.acked)
        windows = task_windows(failed.output, NODES, _turn)
        time.sleep(5)
        assert failed.returncode != 0, "the play went on past a node that cannot start"
        said = " ".join(failed.output.split())
        assert f"{broken} is not upgraded to {NEW}: " in said, said[-4000:]
        assert (f"ansible-playbook playbooks/cassandra_rollback_node.yml -l {broken} "
                f"-e cassandra_rollback_version={OLD}") in said, said[-4000:]
        assert len(writer.acked) > acked_at_failure, "the ring stopped taking writes"
        versions = {n: _version(h) for n, h in hosts.items()}
        assert all(versions[n] == NEW for n in before_broken), versions
        assert all(versions[n] == OLD for n in after_broken), versions
        assert re.findall(r"TASK \[cassandra : Upgrade \| Stop cassandra on (\w+)\]",
                          failed.output) == before_broken + [broken], "DC by DC, gra first"

        rollback = run_playbook("cassandra_rollback_node.yml", "-l", broken,
                                "-e", f"cassandra_rollback_version={OLD}")
        assert rollback.returncode == 0, rollback.output[-4000:]
        assert _version(hosts[broken]) == OLD
        node_shell(hosts[broken], f"rm -rf /opt/cassandra-{NEW}")

        # every node up, versions mixed: a repair is refused with the reason
        repair = run_playbook("cassandra_repair.yml")
        assert repair.returncode != 0
        assert ("nodetool repair is refused while the nodes run different versions"
                in " ".join(repair.output.split())), repair.output[-3000:]

        started = time.monotonic()
        resumed = _upgrade()
        resumed_s = time.monotonic() - started
        assert resumed.returncode == 0, resumed.output[-6000:]
        windows.update(task_windows(resumed.output, NODES, _turn))
        assert re.findall(r"TASK \[cassandra : Upgrade \| Stop cassandra on (\w+)\]",
                          resumed.output) == [broken] + after_broken, "the nodes done are skipped"
        time.sleep(3)
        writer.stop()
        assert {n: _version(h) for n, h in hosts.items()} == dict.fromkeys(NODES, NEW)
        assert all(_un(h) == 3 for h in hosts.values())
        tag = re.search(r"snapshot (furet-upgrade-\S+) on every node",
                        " ".join(resumed.output.split()))   # the callback folds long lines
        assert tag, resumed.output[-3000:]
        for host in hosts.values():
            assert tag.group(1) in node_shell(host, "nodetool listsnapshots")
        missing = missing_keys(session, writer.acked)
        assert not missing, f"{len(missing)} acknowledged writes not readable at QUORUM"

        downgrade = run_playbook("cassandra_upgrade.yml", "-e", f"cassandra_target_version={OLD}")
        assert downgrade.returncode != 0
        assert re.search(rf"cassandra\d runs Cassandra {NEW}, newer than the target {OLD}: "
                         "downgrades are refused", " ".join(downgrade.output.split()))
        figures(seed=seed, broken=broken, failed_run_s=round(failed_s, 1),
                resumed_run_s=round(resumed_s, 1), acknowledged=len(writer.acked),
                failed_attempts=writer.failed_attempts,
                longest_pause_s=round(writer.longest_pause_s, 2),
                longest_pause_per_node_s=pauses_per_host(writer.pauses, windows),
                errors=writer.errors)
    finally:
        cluster.shutdown()
