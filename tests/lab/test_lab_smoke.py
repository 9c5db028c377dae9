"""Smoke test of the lab: SSH for Ansible and Fabric, site.yml idempotent, lab-up safe."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from migration.hosts_summary import probe_host
from migration.inventory import load_inventory
from migration.lab.config import LabConfig
from migration.lab.podman import Podman
from migration.remote import connection_for
from tests.helpers import BIN, REPO, furet, run_playbook, tool_env
from tests.lab.conftest import ProvisionedLab


def _container_ids(lab: LabConfig) -> dict[str, str]:
    podman = Podman(lab.containers_conf)
    return {h.name: podman.inspect("container", lab.container_name(h))["Id"] for h in lab.hosts}


def test_ansible_reaches_every_host_over_ssh(lab: LabConfig) -> None:
    result = subprocess.run(
        [str(BIN / "ansible"), "all", "-m", "ansible.builtin.ping", "-o"],
        cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pongs = [line.split(" | ")[0] for line in result.stdout.splitlines() if '"pong"' in line]
    assert sorted(pongs) == sorted(h.name for h in lab.hosts)


def test_fabric_runs_on_every_host_which_answers_its_own_name(lab: LabConfig) -> None:
    for host in lab.hosts:
        with connection_for(host) as conn:
            assert conn.run("hostname", hide=True).stdout.strip() == host.name


def test_hosts_have_distinct_ssh_host_keys(lab: LabConfig) -> None:
    fingerprints = set()
    for host in lab.hosts:
        with connection_for(host) as conn:
            fingerprints.add(conn.run("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub",
                                      hide=True).stdout.split()[1])
    assert len(fingerprints) == len(lab.hosts)


def test_site_playbook_converges_then_changes_nothing(provisioned_lab: ProvisionedLab) -> None:
    lab, first = provisioned_lab.config, provisioned_lab.first_site_run
    assert first.returncode == 0, first.output[-4000:]
    assert set(first.recap) == {h.name for h in lab.hosts}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in first.recap.values())

    second = run_playbook("site.yml")
    assert second.returncode == 0, second.output[-4000:]
    assert second.changed_hosts() == {}, second.output[-4000:]

    # --check --diff on a converged lab tells the truth: nothing would change.
    checked = run_playbook("site.yml", "--check", "--diff")
    assert checked.returncode == 0, checked.output[-4000:]
    assert checked.changed_hosts() == {}, checked.output[-4000:]

    # What the common role promises, read back from a host of each group.
    for name in ("legacy1", "galera3", "cassandra2", "etl1"):
        host = next(h for h in lab.hosts if h.name == name)
        with connection_for(host) as conn:
            assert conn.run("cat /etc/timezone", hide=True).stdout.strip() == "UTC"
            assert conn.run("systemctl is-active chrony", hide=True).stdout.strip() == "active"
            sysctl = conn.run("cat /etc/sysctl.d/60-furet-databases.conf", hide=True).stdout
            assert "vm.max_map_count=1048575" in sysctl
            if name != "etl1":
                sources = conn.run("chronyc -n sources", hide=True).stdout
                assert "10.213.0.41" in sources, sources


def test_hosts_summary_lists_every_host(lab: LabConfig) -> None:
    result = furet("hosts")
    assert result.returncode == 0, result.stdout + result.stderr
    for host in lab.hosts:
        assert host.name in result.stdout and host.address in result.stdout


def test_fabric_refuses_a_host_key_that_is_not_in_known_hosts(lab: LabConfig,
                                                              tmp_path: Path) -> None:
    """The lab turns host key checking off (its hosts are recreated with new keys); an
    inventory that does not, as in production, gets an unknown host key refused, and the
    same host reached once its key is in the inventory's known_hosts file."""
    inventory = tmp_path / "inventories" / "lab"
    shutil.copytree(REPO / "inventories" / "lab", inventory)
    (tmp_path / ".cache").symlink_to(REPO / ".cache")  # the lab key, relative to the inventory
    known = tmp_path / "known_hosts"
    settings = inventory / "group_vars" / "all.yml"
    settings.write_text(settings.read_text().replace(
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        f"-o UserKnownHostsFile={known}"))
    etl1 = next(h for h in load_inventory(inventory / "hosts.yml") if h.name == "etl1")
    assert (etl1.check_host_key, etl1.known_hosts) == (True, str(known))
    refused = probe_host(etl1)
    assert refused.error == f"SSHException: Server '{etl1.address}' not found in known_hosts", \
        refused
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", etl1.address], capture_output=True,
                          text=True, timeout=30, check=True)
    known.write_text(scan.stdout)
    allowed = probe_host(etl1)
    assert allowed.error is None and allowed.facts["os"].startswith("Debian"), allowed


def test_fab_and_furet_hosts_read_an_inventory_whose_vault_is_encrypted(
        etl_provisioned: ProvisionedLab, tmp_path: Path) -> None:
    """A copy of the lab inventory with its etl group's variables in an ansible-vault file:
    with the password file furet hosts and fab status reach etl1; without it, one line."""
    inventory = tmp_path / "inventories" / "lab"
    shutil.copytree(REPO / "inventories" / "lab", inventory)
    (tmp_path / ".cache").symlink_to(REPO / ".cache")  # the lab key, relative to the inventory
    password = tmp_path / "vault-pass"
    password.write_text("lab-only-test-vault-password\n")
    etl_vars = inventory / "group_vars" / "etl.yml"
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(password), str(etl_vars)], check=True, capture_output=True, timeout=60)
    hosts = str(inventory / "hosts.yml")
    without = furet("hosts", "-i", hosts, "etl1")
    assert without.returncode == 2
    assert without.stderr.strip().splitlines() == [
        f"furet: error: inventory {hosts}: {etl_vars} is vault-encrypted and no vault password "
        "was given: set ANSIBLE_VAULT_PASSWORD_FILE, or pass --vault-password-file FILE (or "
        "run in a terminal to be asked)"], without.stderr
    summary = furet("hosts", "-i", hosts, "--vault-password-file", str(password), "etl1")
    assert summary.returncode == 0 and "10.213.0.41" in summary.stdout, summary.stderr
    status = subprocess.run([str(BIN / "fab"), "status", "-i", hosts, "--vault-password-file",
                             str(password), "--on", "etl1"], cwd=REPO, env=tool_env(),
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0 and "fab status: etl1 ok" in status.stderr, \
        status.stdout + status.stderr


def test_lab_up_twice_keeps_healthy_hosts_and_recovers_a_dead_one(lab: LabConfig) -> None:
    before = _container_ids(lab)
    again = furet("lab", "up")
    assert again.returncode == 0, again.stderr
    assert "every lab host was already running" in again.stdout
    assert _container_ids(lab) == before

    # A host whose processes were all killed (as after a CI stop) is recreated, bare. A module
    # that needs legacy1 provisioned asks for it (fixture legacy_provisioned in conftest.py),
    # which provisions it again: no module depends on running before or after this one.
    victim = next(h for h in lab.hosts if h.name == "legacy1")
    podman = Podman(lab.containers_conf)
    podman.run("kill", lab.container_name(victim))
    recovered = furet("lab", "up")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert f"{victim.name}: stale" in recovered.stdout
    after = _container_ids(lab)
    assert after[victim.name] != before[victim.name]
    assert {k: v for k, v in after.items() if k != victim.name} == {
        k: v for k, v in before.items() if k != victim.name}
    status = furet("lab", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    info = json.loads(podman.run("network", "inspect", lab.network).stdout)[0]
    assert info["subnets"][0]["subnet"] == lab.subnet
