"""playbooks/pki.yml (role pki: the controller part of site.yml and certificates.yml) on
the lab's inventory, on the controller only (pki_new_ca: no host is read). The CA and each node's
certificate are made once, a second run changes nothing, a renewal re-issues the nodes'
certificates and keeps the CA, and what is made is what the services need (PKCS#8 keys,
the names, both usages). Certificates of your own CA are checked, not signed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import run_playbook

# a scratch pki_dir while the lab's hosts may hold the lab's CA: the guard (test_pki_guard)
# would refuse it; these tests are about the controller's part
SCRATCH = ("-e", "pki_new_ca=true")
# the lab's pki_node_groups: the clusters' nodes, its managed legacy master, the ETL host
NODES = ("galera1", "galera2", "galera3", "cassandra1", "cassandra2", "cassandra3", "legacy1",
         "etl1")


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


def _ran(output: str, task: str) -> set[str]:
    """The hosts on which the pki task named ``task...`` ran (not skipped)."""
    hosts: set[str] = set()
    for section in output.split("\nTASK [")[1:]:
        if section.startswith(f"pki : {task}"):
            hosts |= set(re.findall(r"^(?:ok|changed|failed|fatal): \[([\w.-]+)", section,
                                    re.MULTILINE))
    return hosts


def _serial(crt: Path) -> str:
    return _openssl("x509", "-in", str(crt), "-noout", "-serial")


def _chains(pki: Path, crt: Path) -> bool:
    """``crt`` verifies against pki_dir's CA."""
    return _openssl("verify", "-CAfile", str(pki / "ca.crt"), str(crt)).strip() == f"{crt}: OK"


def test_ca_and_node_certificates_are_made_once_and_renewed(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    first = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={pki}")
    assert first.returncode == 0, first.output[-4000:]
    # playbooks/callback_plugins/furet_preload.py runs before each task, without a failure
    assert "Failure using method" not in first.output, first.output[-4000:]
    assert sorted(p.stem for p in (pki / "nodes").glob("*.crt")) == sorted(NODES)
    assert (pki / "ca.key").stat().st_mode & 0o077 == 0
    assert (pki / "nodes").stat().st_mode & 0o077 == 0
    for node in NODES:
        crt, key = pki / "nodes" / f"{node}.crt", pki / "nodes" / f"{node}.key"
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")     # PKCS#8
        assert _chains(pki, crt)
        text = _openssl("x509", "-in", str(crt), "-noout", "-text")
        assert f"DNS:{node}" in text and "IP Address:10.213.0." in text
        assert ("DNS:galera.furet.internal" in text) == node.startswith("galera")
        # the application endpoint's name: the legacy master before the switch, Galera after
        assert ("DNS:db.furet.internal" in text) == node.startswith(("galera", "legacy"))
        assert "TLS Web Server Authentication, TLS Web Client Authentication" in text

    second = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={pki}")
    assert second.returncode == 0 and second.changed_hosts() == {}, second.output[-4000:]
    # current files are read by community.crypto's filters: no module runs for them
    for task in ("Node | Key of the node", "Node | Request", "Node | Certificate signed"):
        assert _ran(first.output, task) == set(NODES), first.output[-4000:]
        assert _ran(second.output, task) == set(), second.output[-4000:]
    checked = run_playbook("pki.yml", *SCRATCH, "--check", "-e", f"pki_dir={pki}")
    assert checked.returncode == 0 and checked.changed_hosts() == {}, checked.output[-4000:]

    serials = {n: _serial(pki / "nodes" / f"{n}.crt") for n in NODES}
    ca_before = (pki / "ca.crt").read_text()
    renewed = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={pki}", "-e",
                           "pki_renew_days=800")     # every node certificate is due
    assert renewed.returncode == 0, renewed.output[-4000:]
    assert (pki / "ca.crt").read_text() == ca_before
    for node in NODES:
        crt = pki / "nodes" / f"{node}.crt"
        assert _serial(crt) != serials[node]
        assert _chains(pki, crt)

    # a truncated certificate (a disk that filled up) is not read by the renewal check:
    # x509_certificate re-signs what it cannot load, on that node only
    broken = pki / "nodes" / "galera2.crt"
    broken.write_text(broken.read_text()[:300])
    healed = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={pki}")
    assert healed.returncode == 0, healed.output[-4000:]
    assert set(healed.changed_hosts()) == {"galera2"}, healed.output[-4000:]
    assert _chains(pki, broken)

    # what the filters compare, each on a node of its own, in one run: a new name for the
    # application endpoint (carried by the Galera nodes and legacy1), a key no longer 0600
    # (cassandra1: its mode is put back, its certificate kept), a new key (cassandra2: a
    # certificate for it), a certificate of another CA, the same in all else (etl1: one of
    # this CA instead)
    nodes = pki / "nodes"
    serials = {n: _serial(nodes / f"{n}.crt") for n in NODES}
    (nodes / "cassandra1.key").chmod(0o644)
    new_key = nodes / "cassandra2.key"
    new_key.write_text(_openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                                "ec_paramgen_curve:P-256"))
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=another CA", "-days", "30", "-keyout", str(other / "ca.key"),
             "-out", str(other / "ca.crt"))
    _openssl("x509", "-req", "-in", str(nodes / "etl1.csr"), "-CA", str(other / "ca.crt"),
             "-CAkey", str(other / "ca.key"), "-copy_extensions", "copy", "-days", "700",
             "-out", str(nodes / "etl1.crt"))
    assert "CN = another CA" in _openssl("x509", "-in", str(nodes / "etl1.crt"), "-noout",
                                         "-issuer")
    drifted = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={pki}", "-e",
                           "pki_endpoint_name=db2.furet.internal")
    assert drifted.returncode == 0, drifted.output[-4000:]
    assert set(drifted.changed_hosts()) == {"galera1", "galera2", "galera3", "legacy1",
                                            "cassandra1", "cassandra2", "etl1"}, \
        drifted.output[-4000:]
    for node in ("galera1", "galera2", "galera3", "legacy1"):
        text = _openssl("x509", "-in", str(nodes / f"{node}.crt"), "-noout", "-text")
        assert "DNS:db2.furet.internal" in text and "DNS:db.furet.internal" not in text
    assert (nodes / "cassandra1.key").stat().st_mode & 0o777 == 0o600
    assert _serial(nodes / "cassandra1.crt") == serials["cassandra1"]
    assert _serial(nodes / "cassandra3.crt") == serials["cassandra3"]
    assert _openssl("x509", "-in", str(nodes / "cassandra2.crt"), "-noout", "-pubkey") == \
        _openssl("pkey", "-in", str(new_key), "-pubout")
    assert "CN = another CA" not in _openssl("x509", "-in", str(nodes / "etl1.crt"), "-noout",
                                             "-issuer")
    for node in NODES:
        crt = nodes / f"{node}.crt"
        assert _chains(pki, crt)


def test_your_own_ca_is_checked_not_signed(tmp_path: Path) -> None:
    """pki_mode external: certificates made by another CA are used as they are when they
    chain, match and are valid; a node whose certificate does not chain is named."""
    made = tmp_path / "made"
    assert run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={made}").returncode == 0
    external = tmp_path / "external"
    (external / "nodes").mkdir(parents=True)
    for path in [made / "ca.crt", *sorted((made / "nodes").glob("*.crt")),
                 *sorted((made / "nodes").glob("*.key"))]:
        target = external / path.relative_to(made)
        target.write_bytes(path.read_bytes())
    before = {p.name: p.read_bytes() for p in (external / "nodes").iterdir()}
    ok = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={external}", "-e",
                      "pki_mode=external")
    assert ok.returncode == 0 and ok.changed_hosts() == {}, ok.output[-4000:]
    checked = run_playbook("pki.yml", *SCRATCH, "--check", "-e", f"pki_dir={external}", "-e",
                           "pki_mode=external")     # its probes run in check mode too
    assert checked.returncode == 0 and checked.changed_hosts() == {}, checked.output[-4000:]
    assert {p.name: p.read_bytes() for p in (external / "nodes").iterdir()} == before
    assert not (external / "ca.key").exists()
    # galera2's certificate and key replaced by a self-signed pair: it chains to nothing
    nodes = external / "nodes"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=galera2", "-days", "700",
                    "-keyout", str(nodes / "galera2.key"), "-out", str(nodes / "galera2.crt")],
                   check=True, capture_output=True, timeout=30)
    bad = run_playbook("pki.yml", *SCRATCH, "-e", f"pki_dir={external}", "-e",
                       "pki_mode=external")
    assert bad.returncode != 0
    assert f"galera2: {external}/nodes/galera2.crt and .key must exist, chain to" in bad.output
    assert f"galera1: {external}/nodes/galera1.crt and .key must" not in bad.output


def test_check_mode_on_a_fresh_pki_dir_changes_nothing_and_does_not_fail(tmp_path: Path) -> None:
    """`site.yml --check --diff` on a new inventory: pki.yml reports what it would make
    (only the controller's directory is made, as probes need it), and the deploy entry point
    skips the files that check mode did not make instead of failing on them."""
    pki = tmp_path / "pki"
    check = run_playbook("pki.yml", *SCRATCH, "--check", "-e", f"pki_dir={pki}")
    assert check.returncode == 0, check.output[-4000:]
    assert check.changed_hosts(), check.output[-4000:]      # it says it would make them
    assert (pki / "nodes").is_dir() and list(pki.rglob("*.*")) == []

    # the deploy entry point, on this machine as a node of the lab's galera group
    deployed = tmp_path / "deployed"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"galera": {"hosts": {
        "galera1": {"ansible_connection": "local", "ansible_host": "127.0.0.1",
                    "ansible_python_interpreter": sys.executable}}}}}}))
    playbook = tmp_path / "deploy.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Deploy", "hosts": "galera", "gather_facts": False, "tasks": [
            {"name": "Deploy", "ansible.builtin.include_role": {
                "name": "pki", "tasks_from": "deploy"},
             "vars": {"pki_dir": str(pki), "pki_deploy_dir": str(deployed),
                      "pki_deploy_node": True, "pki_deploy_bundle": bundle}}]}
        for bundle in (False, True)]))
    run = run_playbook(str(playbook), "--check", inventory=inventory)
    assert run.returncode == 0, run.output[-4000:]
    assert not deployed.exists()
