"""playbooks/rolling_os_update.yml on the whole lab under a continuous write load: Galera
through HAProxy (etl1) and Cassandra at QUORUM (`make soak`).

Every host is given a pending security update (a package the lab has from -security put
back to the older version of the main archive, the same package on every host), and a
seeded subset of hosts (one Galera node, one Cassandra node and two others at least) is
marked as needing a reboot (/run/reboot-required). The dry run (--check) changes nothing;
the real run installs the update everywhere, restarts only the marked hosts' containers
(the lab's reboot), one node at a time in each cluster, and loses no acknowledged write.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from migration.inventory import InventoryHost
from migration.lab.podman import Podman
from tests.helpers import run_playbook
from tests.lab.cassandra_client import ContinuousWriter as CassandraWriter
from tests.lab.cassandra_client import connect as cassandra_connect
from tests.lab.cassandra_client import create_table, missing_keys
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import ContinuousWriter as GaleraWriter
from tests.lab.galera_client import node_shell, node_sql, present_keys, wsrep_status
from tests.lab.timeline import pauses_per_host, task_windows

pytestmark = pytest.mark.soak

GALERA = ("galera1", "galera2", "galera3")
CASSANDRA = ("cassandra1", "cassandra2", "cassandra3")
# Packages the lab's hosts get from -security whose main archive has an older version;
# the first one that has both on this day is used.
CANDIDATES = ("tzdata", "libexpat1", "bind9-host", "openssl")


def _madison(host: InventoryHost, package: str) -> list[tuple[str, str]]:
    """(version, archive) as apt-cache madison lists them."""
    # `|| true`: a package apt does not know has no versions: not a candidate, not an error
    out = node_shell(host, f"apt-cache madison {package} 2>/dev/null || true")
    return [(f[1].strip(), f[2].strip()) for f in (line.split("|") for line in out.splitlines())
            if len(f) >= 3]


def _installed(host: InventoryHost, package: str) -> str:
    # `|| true`: dpkg-query exits 1 for a package that is not installed: the answer ""
    return node_shell(host, f"dpkg-query -W -f='${{Version}}' {package} 2>/dev/null || true")


def _pick(host: InventoryHost) -> tuple[str, str, str]:
    """(package, the security version, an older version of the main archive)."""
    node_shell(host, "apt-get update -qq")
    for package in CANDIDATES:
        versions = _madison(host, package)
        security = [v for v, a in versions if "-security" in a]
        older = [v for v, a in versions if "-security" not in a and "-updates" not in a]
        if security and older and _installed(host, package) == security[0] \
                and older[0] != security[0]:
            return package, security[0], older[0]
    pytest.fail(f"none of {CANDIDATES} has a security version and an older main one on "
                f"{host.name} today: no pending update can be made")


def _started(podman: Podman, container: str) -> str:
    return podman.run("inspect", "-f", "{{.State.StartedAt}}", container).stdout.strip()


def _turn(task: str, host: str) -> bool:
    return task.endswith(host) and "Pending |" not in task


def test_security_updates_and_reboots_one_host_at_a_time_under_load(
        provisioned_lab: ProvisionedLab, galera_healthy: ProvisionedLab,
        cassandra_healthy: ProvisionedLab, seed: int, figures) -> None:
    lab = provisioned_lab.config
    hosts = {h.name: h for h in lab.hosts}
    podman = Podman(lab.containers_conf)
    package, security, older = _pick(hosts["etl1"])
    for host in hosts.values():
        node_shell(host, f"apt-get install -y -qq --allow-downgrades {package}={older}")
    rng = random.Random(seed)
    others = sorted(set(hosts) - set(GALERA) - set(CASSANDRA))
    marked = sorted({rng.choice(GALERA), rng.choice(CASSANDRA), *rng.sample(others, 2)})
    for name in marked:
        node_shell(hosts[name], "touch /run/reboot-required")
    before = {n: _started(podman, lab.container_name(h)) for n, h in hosts.items()}

    dry = run_playbook("rolling_os_update.yml", "--check")
    assert dry.returncode == 0, dry.output[-6000:]
    assert {n: _installed(h, package) for n, h in hosts.items()} == dict.fromkeys(hosts, older)
    assert {n: _started(podman, lab.container_name(h)) for n, h in hosts.items()} == before

    node_sql(hosts["galera1"], "CREATE TABLE IF NOT EXISTS furet.fault_probe ("
             " id BIGINT AUTO_INCREMENT PRIMARY KEY, k CHAR(32) NOT NULL UNIQUE,"
             " phase VARCHAR(16) NOT NULL)")
    galera = GaleraWriter(hosts["etl1"].address, max_seconds=3600).start()
    cluster, session = cassandra_connect([hosts[n].address for n in CASSANDRA])
    try:
        create_table(session)
        ring = CassandraWriter(session, max_seconds=3600).start()
        time.sleep(3)
        started = time.monotonic()
        run = run_playbook("rolling_os_update.yml")
        took_s = time.monotonic() - started
        finished_at = time.time()
        time.sleep(3)
        ring.stop()
        galera.stop()
        assert run.returncode == 0, run.output[-6000:]
        # both writers still acknowledged writes once every host had had its turn
        assert galera.last_ack_at > finished_at, (galera.last_ack_at, finished_at, galera.errors)
        assert ring.last_ack_at > finished_at, (ring.last_ack_at, finished_at, ring.errors)
        assert {n: _installed(h, package) for n, h in hosts.items()} == \
            dict.fromkeys(hosts, security)
        after = {n: _started(podman, lab.container_name(h)) for n, h in hosts.items()}
        assert sorted(n for n in hosts if after[n] != before[n]) == marked, \
            "only the hosts that needed it were rebooted"
        for name in GALERA:
            assert wsrep_status(hosts[name])["WSREP_LOCAL_STATE_COMMENT"] == "Synced"
            missing = set(galera.acked) - present_keys(hosts[name], galera.acked)
            assert not missing, f"{name}: {len(missing)} acknowledged writes missing"
        lost = missing_keys(session, ring.acked)
        assert not lost, f"{len(lost)} acknowledged Cassandra writes not readable at QUORUM"
        # one node at a time: the Galera nodes, then the Cassandra nodes, in group order
        order = re.findall(r"TASK \[mariadb_galera : Rolling \| OS updates on (\w+)\]",
                           run.output)
        assert order == list(GALERA), order
        order = re.findall(r"TASK \[cassandra : Rolling \| OS updates on (\w+)\]", run.output)
        assert order == list(CASSANDRA), order
        windows = task_windows(run.output, sorted(hosts), _turn)
        figures(seed=seed, package=f"{package} {older} -> {security}", rebooted=marked,
                run_s=round(took_s, 1), galera_acknowledged=len(galera.acked),
                galera_failed_attempts=galera.failed_attempts,
                galera_longest_pause_s=round(galera.longest_pause_s, 2),
                galera_longest_pause_per_host_s=pauses_per_host(galera.pauses, windows),
                cassandra_acknowledged=len(ring.acked),
                cassandra_failed_attempts=ring.failed_attempts,
                cassandra_longest_pause_s=round(ring.longest_pause_s, 2),
                cassandra_longest_pause_per_host_s=pauses_per_host(ring.pauses, windows))
    finally:
        cluster.shutdown()
