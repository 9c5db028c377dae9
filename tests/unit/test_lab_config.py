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


def test_an_extra_inventory_adds_its_hosts_only_when_asked_for() -> None:
    base = load_lab_config(REPO)
    assert "galeranext1" not in {h.name for h in base.hosts}
    config = load_lab_config(REPO, extras=["next"])
    added = [h for h in config.hosts if h not in base.hosts]
    assert [h.name for h in added] == ["galeranext1", "galeranext2", "galeranext3"]
    assert {config.suite(h) for h in added} == {"trixie"}
    assert {config.suite(h) for h in base.hosts} == {"bookworm"}
    assert [p.name for p in config.inventory_files()] == ["hosts.yml", "next.yml"]
    with pytest.raises(FuretError, match=r"no inventories/lab/later.yml \(the lab's extra "
                                         r"inventories: next\)"):
        load_lab_config(REPO, extras=["later"])


def test_an_extra_host_may_not_take_a_name_or_an_address_of_the_lab(tmp_path: Path) -> None:
    root = _copy_lab_tree(tmp_path)
    extra = root / "inventories" / "lab" / "next.yml"
    extra.write_text(extra.read_text().replace("10.213.0.24", "10.213.0.21"))
    with pytest.raises(FuretError, match=r"galeranext1: 10.213.0.21 is also galera1's"):
        load_lab_config(root, extras=["next"])
    extra.write_text(extra.read_text().replace("10.213.0.21", "10.213.0.24")
                     .replace("lab_suite: trixie", "lab_suite: buster"))
    with pytest.raises(FuretError, match=r"galeranext1: lab_suite 'buster' is not one of"):
        load_lab_config(root, extras=["next"])


def test_each_suite_has_its_own_image_tag() -> None:
    config = load_lab_config(REPO)
    digest = recipe_hash(config)
    assert image_tag(config) == f"localhost/furet-lab-base:{digest}"
    assert image_tag(config, "trixie") == f"localhost/furet-lab-base:trixie-{digest}"
    with pytest.raises(FuretError, match="lab_suite 'sid': the lab builds bookworm, trixie"):
        image_tag(config, "sid")


class _Images:
    """podman's image store as ensure_image sees it (exists, images, tag, rmi)."""

    def __init__(self, tags: list[str]) -> None:
        self.tags = list(tags)
        self.env: dict[str, str] = {}

    def exists(self, kind: str, name: str) -> bool:
        return name in self.tags

    def run(self, *args: str, check: bool = True):
        from subprocess import CompletedProcess
        if args[0] == "images":
            return CompletedProcess(args, 0, "\n".join(self.tags), "")
        if args[0] == "tag" and args[2] not in self.tags:
            self.tags.append(args[2])
        if args[0] == "rmi":
            self.tags.remove(args[1])
        return CompletedProcess(args, 0, "", "")


def test_an_image_of_one_suite_never_removes_the_other_suites_image() -> None:
    from migration.lab.image import ensure_image
    config = load_lab_config(REPO)
    digest = recipe_hash(config)
    base = "localhost/furet-lab-base"
    images = _Images([f"{base}:{digest}", f"{base}:trixie-{digest}", f"{base}:0123456789ab",
                      f"{base}:trixie-0123456789ab", f"{base}:latest"])
    said: list[str] = []
    assert ensure_image(config, images, said.append) == f"{base}:{digest}"  # type: ignore[arg-type]
    assert sorted(images.tags) == sorted([f"{base}:{digest}", f"{base}:trixie-{digest}",
                                          f"{base}:trixie-0123456789ab", f"{base}:latest"])
    assert ensure_image(config, images, said.append, "trixie") == f"{base}:trixie-{digest}"  # type: ignore[arg-type]
    assert sorted(images.tags) == sorted([f"{base}:{digest}", f"{base}:trixie-{digest}",
                                          f"{base}:latest"])
    assert f"removed old image {base}:trixie-0123456789ab" in said
