"""The pki role's guard (roles/pki/tasks/guard.yml): before a CA is made or deployed, the CA
each host trusts now (the ca.crt of pki_host_ca_dirs) must be pki_dir's, or none yet. A lost
or wrong pki_dir would otherwise mint a new CA and roll it node by node, splitting the
clusters. Run with playbooks/pki.yml on this machine as a Galera node (local connection)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

from tests.helpers import run_playbook
from tests.tls_certs import make_ca


def _pki(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"galera": {"hosts": {
        "galera1": {"ansible_connection": "local", "ansible_host": "127.0.0.1",
                    "ansible_python_interpreter": sys.executable}}}}}}))
    settings = {"pki_dir": str(tmp_path / "pki"),
                "pki_host_ca_dirs": [str(tmp_path / "host-tls")]}
    return run_playbook("pki.yml", "-e", json.dumps(settings), *extra, inventory=inventory)


def test_a_host_that_trusts_another_ca_stops_the_play_before_anything_is_made(
        tmp_path: Path) -> None:
    make_ca(tmp_path / "host-tls", "a CA from another pki_dir")
    refused = _pki(tmp_path)
    assert refused.returncode != 0
    said = " ".join(refused.output.split())
    assert (f"host galera1 trusts a CA ({tmp_path}/host-tls/ca.crt) and {tmp_path}/pki has "
            "none: a new CA rolled node by node would split the clusters" in said), said[-3000:]
    assert not (tmp_path / "pki" / "ca.key").exists()

    made = _pki(tmp_path, "-e", "pki_new_ca=true")      # a new CA is what the operator wants
    assert made.returncode == 0, made.output[-3000:]
    assert (tmp_path / "pki" / "ca.key").exists()
    # pki_dir now has a CA, the host still trusts the other one
    refused = _pki(tmp_path)
    assert refused.returncode != 0
    assert (f"host galera1 trusts another CA than {tmp_path}/pki/ca.crt "
            f"({tmp_path}/host-tls/ca.crt): a new CA" in " ".join(refused.output.split()))


def test_hosts_that_trust_this_ca_or_none_go_on(tmp_path: Path) -> None:
    first = _pki(tmp_path)                   # a new inventory: no host trusts any CA yet
    assert first.returncode == 0, first.output[-3000:]
    (tmp_path / "host-tls").mkdir()
    shutil.copy(tmp_path / "pki" / "ca.crt", tmp_path / "host-tls" / "ca.crt")
    second = _pki(tmp_path)                  # the host trusts pki_dir's CA (as deployed)
    assert second.returncode == 0 and second.changed_hosts() == {}, second.output[-3000:]
