"""What the lab is: settings from lab/lab.yml, hosts from the lab inventory.

The lab's hosts are those of inventories/lab/hosts.yml (site.yml's default inventory). An
extra inventory file next to it (inventories/lab/<name>.yml, e.g. next.yml: the hosts of a
new cluster) adds its hosts when asked for (`furet lab up --with next`); playbooks then take
it as a second inventory (-i inventories/lab/hosts.yml -i inventories/lab/next.yml)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from migration.errors import FuretError
from migration.inventory import InventoryHost, load_inventory
from migration.paths import cache_dir, repo_root

# The Debian suite of a lab host unless its host variable lab_suite says another.
DEFAULT_SUITE = "bookworm"
SUITES = ("bookworm", "trixie")
BASE_INVENTORY = "hosts.yml"


@dataclass(frozen=True)
class LabConfig:
    network: str
    subnet: str
    gateway: str
    container_prefix: str
    image: str
    ssh_wait_seconds: int
    hosts: tuple[InventoryHost, ...]
    root: Path
    extras: tuple[str, ...] = ()

    @property
    def containers_conf(self) -> Path:
        return self.root / "lab" / "containers.conf"

    @property
    def image_recipe_dir(self) -> Path:
        return self.root / "lab" / "image"

    @property
    def state_dir(self) -> Path:
        return cache_dir() / "lab"

    def container_name(self, host: InventoryHost) -> str:
        return f"{self.container_prefix}{host.name}"

    def inventory_files(self) -> list[Path]:
        """The inventory files of these hosts, for ansible-playbook's -i (base first)."""
        directory = self.root / "inventories" / "lab"
        return [directory / BASE_INVENTORY, *(directory / f"{e}.yml" for e in self.extras)]

    @staticmethod
    def suite(host: InventoryHost) -> str:
        return str(host.variables.get("lab_suite") or DEFAULT_SUITE)


def available_extras(root: Path | None = None) -> list[str]:
    """The extra inventory files of the lab (inventories/lab/*.yml but hosts.yml)."""
    directory = (root or repo_root()) / "inventories" / "lab"
    return sorted(p.stem for p in directory.glob("*.yml") if p.name != BASE_INVENTORY)


def load_lab_config(root: Path | None = None, extras: Iterable[str] = ()) -> LabConfig:
    """Load lab/lab.yml and inventories/lab/hosts.yml (plus each extra's <name>.yml), and
    check they agree: every address in the lab subnet, no name or address twice."""
    root = root or repo_root()
    settings_file = root / "lab" / "lab.yml"
    try:
        settings = yaml.safe_load(settings_file.read_text())
    except OSError as exc:
        raise FuretError(f"cannot read {settings_file}: {exc.strerror}") from exc
    extras = tuple(dict.fromkeys(extras))
    known = available_extras(root)
    for extra in extras:
        if extra not in known:
            raise FuretError(f"lab: no inventories/lab/{extra}.yml (the lab's extra "
                             f"inventories: {', '.join(known) or 'none'})")
    directory = root / "inventories" / "lab"
    hosts = tuple(host for name in (BASE_INVENTORY, *(f"{e}.yml" for e in extras))
                  for host in load_inventory(directory / name))
    subnet = ipaddress.ip_network(settings["subnet"])
    seen: dict[str, str] = {}
    for host in hosts:
        for key in (host.name, host.address):
            if key in seen:
                raise FuretError(f"lab inventory: {host.name}: {key} is also {seen[key]}'s")
            seen[key] = host.name
        if LabConfig.suite(host) not in SUITES:
            raise FuretError(f"lab inventory: {host.name}: lab_suite "
                             f"{LabConfig.suite(host)!r} is not one of {', '.join(SUITES)}")
    for host in hosts:
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError as exc:
            raise FuretError(
                f"lab inventory: {host.name}: ansible_host {host.address!r} is not an IP address"
            ) from exc
        if address not in subnet:
            raise FuretError(
                f"lab inventory: {host.name}: ansible_host {address} is outside the lab "
                f"subnet {subnet} (lab/lab.yml)"
            )
    return LabConfig(
        network=settings["network"],
        subnet=str(subnet),
        gateway=settings["gateway"],
        container_prefix=settings["container_prefix"],
        image=settings["image"],
        ssh_wait_seconds=int(settings.get("ssh_wait_seconds", 60)),
        hosts=hosts,
        root=root,
        extras=extras,
    )


# TLS in the lab (role pki's defaults for inventories/lab): furet's CA on the controller,
# and the name every Galera node's certificate carries for clients behind HAProxy.
GALERA_SERVICE_NAME = "galera.furet.internal"


def lab_ca_file() -> Path:
    """The lab CA's certificate (pki_dir = ~/.furet/pki/lab, made by site.yml)."""
    return Path.home() / ".furet" / "pki" / "lab" / "ca.crt"
