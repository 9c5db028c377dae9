"""Fabric reads the inventory through Ansible, so templated SSH settings resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.errors import FuretError
from migration.inventory import load_inventory
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
