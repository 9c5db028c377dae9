"""playbooks/galera_upgrade.yml on the lab's real Galera cluster, under a continuous write
load through HAProxy (`make soak`: the cluster is rebuilt on the older version first).

The versions are the two newest MariaDB 10.11 releases Debian's mirror serves (bookworm and
bookworm-security: 10.11.18 and 10.11.19 when this was written), read from the nodes' apt.
The three Galera hosts are recreated bare and formed on the older one (site.yml with
galera_version, which pins it). Then, one node at a time:

1. a random node (seeded, the seed printed) of galera2 and galera3 cannot start on the new
   version (a systemd drop-in refuses it): the play stops naming it with its rollback
   command; the nodes before it run the new version, the ones after it the old one; the
   cluster keeps acknowledging writes; furet is on hold;
2. the documented rollback (galera_rollback_node.yml) puts the node back on the old version,
   Synced; the versions are still mixed, so the hold stays;
3. the upgrade run again skips the nodes done and finishes: every node reports the new
   version and one provider, Synced, system tables clean (the playbook checks them), the
   hold ended, every acknowledged write on every node;
4. a downgrade, a jump over a major and a site.yml asking for the old version are refused
   with their reasons.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shlex
import time
from collections.abc import Iterator

import pytest

from migration.inventory import InventoryHost
from migration.lab.podman import Podman
from migration.upgrade import upstream_version
from tests.helpers import furet, run_playbook, wait_for
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import (
    ContinuousWriter,
    node_shell,
    node_sql,
    present_keys,
    wsrep_status,
)
from tests.lab.timeline import pauses_per_host, task_windows

pytestmark = pytest.mark.soak

GALERA = ("galera1", "galera2", "galera3")
DROP_IN = "/etc/systemd/system/mariadb.service.d/zz-furet-test-broken.conf"
REFUSE = "/usr/local/sbin/furet-test-refuse-new-mariadb"


def _version(host: InventoryHost) -> str:
    return upstream_version(node_sql(host, "SELECT @@version"))


def _synced(host: InventoryHost) -> bool:
    return wsrep_status(host, warn=True).get("WSREP_LOCAL_STATE_COMMENT") == "Synced"


def _hold(etl: InventoryHost) -> dict | None:
    shown = node_shell(etl, "furet --config /etc/furet/furet.yml hold show --json")
    return json.loads(shown)


@pytest.fixture(scope="module")
def versions(provisioned_lab: ProvisionedLab) -> tuple[str, str]:
    """The two newest MariaDB 10.11 versions the mirror serves, oldest first."""
    galera1 = provisioned_lab.host("galera1")
    madison = node_shell(galera1, "apt-get update -qq && apt-cache madison mariadb-server")
    found = sorted({upstream_version(line.split("|")[1].strip()) for line in madison.splitlines()
                    if "|" in line and line.split("|")[1].strip().startswith("1:10.11.")},
                   key=lambda v: tuple(int(x) for x in v.split(".")))
    if len(found) < 2:
        pytest.fail(f"the mirror serves one MariaDB 10.11 version only ({found}): nothing to "
                    "upgrade between")
    return found[-2], found[-1]


@pytest.fixture(scope="module")
def old_cluster(provisioned_lab: ProvisionedLab, versions: tuple[str, str]
                ) -> Iterator[dict[str, InventoryHost]]:
    """The three Galera hosts recreated bare and formed on the older version, pinned."""
    old, _ = versions
    lab = provisioned_lab.config
    hosts = {h.name: h for h in lab.hosts if h.name in (*GALERA, "etl1")}
    podman = Podman(lab.containers_conf)
    for name in GALERA:
        podman.run("kill", lab.container_name(hosts[name]))
    up = furet("lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    formed = run_playbook("site.yml", "--limit", "galera,etl", "-e", f"galera_version={old}")
    assert formed.returncode == 0, formed.output[-6000:]
    assert {n: _version(hosts[n]) for n in GALERA} == dict.fromkeys(GALERA, old)
    node_sql(hosts["galera1"], "CREATE TABLE IF NOT EXISTS furet.fault_probe ("
             " id BIGINT AUTO_INCREMENT PRIMARY KEY, k CHAR(32) NOT NULL UNIQUE,"
             " phase VARCHAR(16) NOT NULL)")
    yield hosts


def _upgrade(new: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_playbook("galera_upgrade.yml", "-e", f"galera_target_version={new}", *extra)


def _rolling(task: str, node: str) -> bool:
    return "mariadb_galera : Rolling |" in task and task.endswith(node)


def test_an_upgrade_under_load_with_a_node_that_fails_its_rollback_and_a_resume(
        old_cluster: dict[str, InventoryHost], versions: tuple[str, str], seed: int,
        figures) -> None:
    old, new = versions
    hosts = old_cluster
    etl = hosts["etl1"]
    broken = random.Random(seed).choice(["galera2", "galera3"])
    before = list(GALERA[:GALERA.index(broken)])
    after = list(GALERA[GALERA.index(broken) + 1:])
    # the new version refuses to start on that node; the old one starts as before
    refuse = (f"#!/bin/sh\nif /usr/sbin/mariadbd --version | grep -q ' {new}-'; then\n"
              f"  echo 'furet-test: this node refuses MariaDB {new}' >&2\n  exit 1\nfi\n")
    node_shell(hosts[broken], f"mkdir -p {os.path.dirname(DROP_IN)} && printf %s "
               f"{shlex.quote(refuse)} > {REFUSE} && chmod 755 {REFUSE} && printf %s "
               f"{shlex.quote(f'[Service]{chr(10)}ExecStartPre={REFUSE}{chr(10)}')} "
               f"> {DROP_IN} && systemctl daemon-reload")
    writer = ContinuousWriter(etl.address, max_seconds=3600).start()
    try:
        time.sleep(3)
        started = time.monotonic()
        failed = _upgrade(new)
        failed_s = time.monotonic() - started
        acked_at_failure = len(writer.acked)
        time.sleep(5)
        said = " ".join(failed.output.split())
        assert failed.returncode != 0, "the play went on past a node that cannot start"
        assert f"{broken} is not back in service: " in said, said[-4000:]
        assert (f"ansible-playbook playbooks/galera_rollback_node.yml -l {broken} "
                f"-e galera_rollback_version={old}") in said, said[-4000:]
        assert "rejoins by IST" in said or "will take an SST" in said, said[-4000:]
        assert len(writer.acked) > acked_at_failure, "the cluster stopped taking writes"
        assert {n: _version(hosts[n]) for n in before + after} == {
            **dict.fromkeys(before, new), **dict.fromkeys(after, old)}
        assert (_hold(etl) or {}).get("reason") == f"galera upgrade to {new}"
        windows = task_windows(failed.output, GALERA, _rolling)

        node_shell(hosts[broken], f"rm -f {DROP_IN} {REFUSE} && systemctl daemon-reload")
        rollback = run_playbook("galera_rollback_node.yml", "-l", broken,
                                "-e", f"galera_rollback_version={old}")
        assert rollback.returncode == 0, rollback.output[-4000:]
        assert _version(hosts[broken]) == old
        assert (_hold(etl) or {}).get("reason") == f"galera upgrade to {new}", \
            "the versions are still mixed: the hold stays"

        started = time.monotonic()
        resumed = _upgrade(new, "-e", "galera_upgrade_backup=false")
        resumed_s = time.monotonic() - started
        assert resumed.returncode == 0, resumed.output[-6000:]
        upgraded = re.findall(r"TASK \[mariadb_galera : Upgrade \| Stop mariadb cleanly on "
                              r"(\w+)\]", resumed.output)
        assert upgraded == [broken] + after, "the nodes done are skipped"
        windows.update(task_windows(resumed.output, GALERA, _rolling))
        time.sleep(3)
    finally:
        writer.stop()
        node_shell(hosts[broken], f"rm -f {DROP_IN} {REFUSE} && systemctl daemon-reload",
                   warn=True)
    assert {n: _version(hosts[n]) for n in GALERA} == dict.fromkeys(GALERA, new)
    providers = {wsrep_status(hosts[n])["WSREP_PROVIDER_VERSION"] for n in GALERA}
    assert len(providers) == 1, providers
    for name in GALERA:
        wait_for(functools.partial(_synced, hosts[name]), f"{name} Synced", 60)
        checked = node_shell(hosts[name], "mariadb-check --check --databases mysql")
        assert not re.search(r"(?im)^(error|warning)|corrupt", checked), checked
        missing = set(writer.acked) - present_keys(hosts[name], writer.acked)
        assert not missing, f"{name}: {len(missing)} acknowledged writes missing"
    assert _hold(etl) is None, "the hold ended with the upgrade"

    downgrade = _upgrade(old, "-e", "galera_upgrade_backup=false")
    assert downgrade.returncode != 0
    assert re.search(rf"galera\d runs MariaDB {re.escape(new)}, newer than the target "
                     rf"{re.escape(old)}: downgrades are refused",
                     " ".join(downgrade.output.split())), downgrade.output[-3000:]
    jump = _upgrade("11.8.9", "-e", "galera_upgrade_backup=false")
    assert jump.returncode != 0
    assert "11.8.9 skips 11.4, and Galera replicates between mixed versions only across " \
           "adjacent major releases (10.11 -> 11.4 -> 11.8)" in " ".join(jump.output.split())
    site = run_playbook("site.yml", "--limit", "galera1", "--tags", "galera:install",
                        "-e", f"galera_version={old}")
    assert site.returncode != 0
    assert (f"galera1 runs MariaDB {new}, newer than galera_version {old}: site.yml does not "
            "downgrade") in " ".join(site.output.split()), site.output[-3000:]
    figures(seed=seed, broken=broken, old=old, new=new, failed_run_s=round(failed_s, 1),
            resumed_run_s=round(resumed_s, 1), acknowledged=len(writer.acked),
            failed_attempts=writer.failed_attempts,
            longest_pause_s=round(writer.longest_pause_s, 2),
            longest_pause_per_node_s=pauses_per_host(writer.pauses, windows),
            errors=writer.errors)
