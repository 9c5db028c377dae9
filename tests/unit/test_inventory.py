"""Fabric reads the inventory through Ansible, so templated SSH settings resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.errors import FuretError
from migration.inventory import InventoryHost, load_inventory
from migration.remote import select_hosts
from tests.helpers import REPO


def test_lab_key_path_is_templated_from_inventory_dir() -> None:
    hosts = {h.name: h for h in load_inventory(REPO / "inventories/lab/hosts.yml")}
    etl = hosts["etl1"]
    assert etl.address == "10.213.0.41"
    assert etl.user == "root"
    assert etl.key_file == str(REPO / ".cache/lab/ssh/id_ed25519")
    assert etl.groups == ("etl",)
    assert hosts["cassandra3"].variables == {"dc": "gra", "rack": "rack1",
                                             "furet_rehearsal_allowed": True}


def test_production_example_has_the_documented_shape() -> None:
    hosts = load_inventory(REPO / "inventories/production/hosts.yml")
    by_group: dict[str, list[str]] = {}
    for host in hosts:
        for group in host.groups:
            by_group.setdefault(group, []).append(host.name)
    assert len(by_group["galera"]) == 3
    assert len(by_group["cassandra"]) == 6
    dcs = sorted(h.variables["dc"] for h in hosts if "cassandra" in h.groups)
    assert dcs == ["gra"] * 3 + ["rbx"] * 3
    assert all(h.user == "deploy" for h in hosts)


def test_select_hosts_by_group_and_name() -> None:
    inventory = REPO / "inventories/lab/hosts.yml"
    assert [h.name for h in select_hosts(inventory, ["galera", "etl1"])] == [
        "galera1", "galera2", "galera3", "etl1"]
    with pytest.raises(FuretError, match="no host or group named nosuch"):
        select_hosts(inventory, ["nosuch"])


def test_missing_inventory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FuretError, match="does not exist"):
        load_inventory(tmp_path / "nope.yml")


def test_etl_runner_config_dir_in_the_inventory_moves_the_remote_config(tmp_path: Path) -> None:
    """fab reads where furet lives from the etl_runner role's variables: the role's default
    (/etc/furet), or the inventory's override, templated; no vault needed to read it."""
    from migration import fabric_tasks

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    etl:\n      hosts:\n"
        "        etl1:\n          ansible_host: 10.0.0.41\n"
        "        etl2:\n          ansible_host: 10.0.0.42\n"
        "          etl_runner_config_dir: \"{{ furet_base }}/etc\"\n"
        "          furet_base: /srv/furet\n"
        "          secret: \"{{ vault_not_loaded }}\"\n")
    hosts = {h.name: h for h in load_inventory(inventory)}
    assert hosts["etl1"].remote.config == "/etc/furet/furet.yml"  # the role's default
    assert hosts["etl2"].remote.config == "/srv/furet/etc/furet.yml"
    assert "secret" not in hosts["etl2"].variables

    class Host:
        lines: list[str] = []

        def __enter__(self) -> Host:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def run(self, line: str, **kwargs: object) -> object:
            self.lines.append(line)
            return type("Result", (), {"exited": 0, "stderr": ""})()

    report = fabric_tasks.execute("status", fabric_tasks.argv("status"), str(inventory),
                                  ("etl",), connect=lambda h: Host())
    assert report.exit_code == 0
    assert Host.lines == ["furet --config /etc/furet/furet.yml status",
                          "furet --config /srv/furet/etc/furet.yml status"]


def test_ssh_host_keys_are_checked_unless_the_inventory_turns_it_off(tmp_path: Path) -> None:
    """Fabric alone accepts any host key; furet checks it the way the inventory's ssh
    settings say, like ansible-playbook: the lab turns checking off, production does not."""
    import paramiko

    from migration.inventory import host_key_settings
    from migration.remote import connection_for

    lab = {h.name: h for h in load_inventory(REPO / "inventories/lab/hosts.yml")}["etl1"]
    prod = load_inventory(REPO / "inventories/production/hosts.yml")[0]
    assert (lab.check_host_key, lab.known_hosts) == (False, None)
    assert (prod.check_host_key, prod.known_hosts) == (True, None)
    assert host_key_settings({"ansible_ssh_common_args": "-o UserKnownHostsFile=/k/h"}) == \
        (True, "/k/h")
    assert host_key_settings({"ansible_ssh_extra_args": "-oStrictHostKeyChecking=no"}) == \
        (False, None)
    assert host_key_settings({"ansible_host_key_checking": False}) == (False, None)

    assert isinstance(connection_for(lab).client._policy, paramiko.AutoAddPolicy)
    known = tmp_path / "known_hosts"
    key = paramiko.Ed25519Key.from_private_key_file(str(_lab_like_key(tmp_path)))
    known.write_text(f"10.0.0.9 {key.get_name()} {key.get_base64()}\n")
    checked = connection_for(InventoryHost("db1", "10.0.0.9", "deploy", 22, None, ("etl",),
                                           known_hosts=str(known)))
    assert isinstance(checked.client._policy, paramiko.RejectPolicy)
    assert checked.client._system_host_keys.lookup("10.0.0.9") is not None


def _lab_like_key(tmp_path: Path) -> Path:
    import subprocess

    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path
