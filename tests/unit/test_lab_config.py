"""The lab's configuration: image recipe hash, inventory/subnet agreement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from migration.errors import FuretError
from migration.lab.config import load_lab_config
from migration.lab.image import image_tag, recipe_hash
from tests.helpers import REPO


def _copy_lab_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "lab", root / "lab")
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab")
    return root


def test_lab_hosts_come_from_the_inventory() -> None:
    config = load_lab_config(REPO)
    names = [h.name for h in config.hosts]
    assert names == ["legacy1", "galera1", "galera2", "galera3",
                     "cassandra1", "cassandra2", "cassandra3", "etl1", "app1", "backup1"]
    addresses = {h.address for h in config.hosts}
    assert len(addresses) == len(names), "every lab host needs its own address"
    assert config.container_name(config.hosts[0]) == "furet-lab-legacy1"


def test_recipe_hash_changes_only_with_the_recipe(tmp_path: Path) -> None:
    root = _copy_lab_tree(tmp_path)
    config = load_lab_config(root)
    before = recipe_hash(config)
    assert recipe_hash(load_lab_config(root)) == before
    assert image_tag(config) == f"localhost/furet-lab-base:{before}"
    # Something outside lab/image/ does not count...
    (root / "lab" / "lab.yml").write_text((root / "lab" / "lab.yml").read_text() + "\n# x\n")
    assert recipe_hash(load_lab_config(root)) == before
    # ...a change to the recipe does.
    build = root / "lab" / "image" / "build.sh"
    build.write_text(build.read_text() + "\n# changed\n")
    assert recipe_hash(load_lab_config(root)) != before


def test_host_outside_the_lab_subnet_is_refused(tmp_path: Path) -> None:
    root = _copy_lab_tree(tmp_path)
    inventory = root / "inventories" / "lab" / "hosts.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["children"]["etl"]["hosts"]["etl1"]["ansible_host"] = "10.99.0.41"
    inventory.write_text(yaml.safe_dump(data))
    with pytest.raises(FuretError, match=r"etl1: ansible_host 10.99.0.41 is outside"):
        load_lab_config(root)
