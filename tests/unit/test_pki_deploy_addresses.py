"""The pki role's entry point deploy checks that the node's certificate names every address
its service is reached at (pki_deploy_addresses: Galera's node address, Cassandra's listen
and rpc addresses) before it copies anything: a node whose private address is not in its
certificate would be refused by its peers' endpoint verification, with a TLS error far
from the cause. Run on this machine (ansible_connection local, files in a scratch dir)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.helpers import REPO, run_playbook
from tests.tls_certs import make_ca, make_node


def _deploy(tmp_path: Path, addresses: list[str], mode: str = "furet"):  # type: ignore[no-untyped-def]
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    make_node(ca, pki / "nodes", "galera1", "10.213.0.21")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"galera1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    deployed = tmp_path / "tls"
    playbook = tmp_path / "deploy.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Deploy", "hosts": "galera1", "gather_facts": False,
        "tasks": [{"name": "The node's files", "ansible.builtin.include_role": {
            "name": str(REPO / "roles" / "pki"), "tasks_from": "deploy"},
            "vars": {"pki_dir": str(pki), "pki_mode": mode, "pki_deploy_dir": str(deployed),
                     "pki_deploy_group": _group(), "pki_deploy_node": True,
                     "pki_deploy_addresses": addresses}}],
    }]))
    return run_playbook(str(playbook), inventory=inventory), deployed


def _group() -> str:
    import grp
    import os
    return grp.getgrgid(os.getgid()).gr_name


def test_an_address_missing_from_the_certificate_fails_before_any_file_is_copied(
        tmp_path: Path) -> None:
    run, deployed = _deploy(tmp_path, ["10.213.0.21", "172.16.0.21"])
    assert run.returncode != 0
    said = " ".join(run.output.split())
    assert "host galera1: its certificate (" in said, said[-3000:]
    assert ("does not name 172.16.0.21, where the service is reached: add it to "
            "pki_ip_addresses for this host" in said), said[-3000:]
    assert not deployed.exists()


def test_your_own_ca_is_asked_for_a_certificate_with_that_address(tmp_path: Path) -> None:
    run, _ = _deploy(tmp_path, ["172.16.0.21"], mode="external")
    assert run.returncode != 0
    assert "have your CA issue a certificate with that address" in " ".join(run.output.split())


def test_addresses_in_the_certificate_and_wildcards_deploy(tmp_path: Path) -> None:
    run, deployed = _deploy(tmp_path, ["10.213.0.21", "0.0.0.0"])
    assert run.returncode == 0, run.output[-3000:]
    assert (deployed / "node.crt").read_text() == (
        tmp_path / "pki" / "nodes" / "galera1.crt").read_text()
