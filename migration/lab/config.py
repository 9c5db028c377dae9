"""What the lab is: settings from lab/lab.yml, hosts from the lab inventory."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml

from migration.errors import FuretError
from migration.inventory import InventoryHost, load_inventory
from migration.paths import cache_dir, repo_root


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


def load_lab_config(root: Path | None = None) -> LabConfig:
    """Load lab/lab.yml and inventories/lab/hosts.yml, and check they agree."""
    root = root or repo_root()
    settings_file = root / "lab" / "lab.yml"
    try:
        settings = yaml.safe_load(settings_file.read_text())
    except OSError as exc:
        raise FuretError(f"cannot read {settings_file}: {exc.strerror}") from exc
    hosts = tuple(load_inventory(root / "inventories" / "lab" / "hosts.yml"))
    subnet = ipaddress.ip_network(settings["subnet"])
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
    )


# TLS in the lab (role pki's defaults for inventories/lab): furet's CA on the controller,
# and the name every Galera node's certificate carries for clients behind HAProxy.
GALERA_SERVICE_NAME = "galera.furet.internal"


def lab_ca_file() -> Path:
    """The lab CA's certificate (pki_dir = ~/.furet/pki/lab, made by site.yml)."""
    return Path.home() / ".furet" / "pki" / "lab" / "ca.crt"
