"""Fabric connections to inventory hosts, with the same SSH settings as Ansible."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import paramiko
from fabric import Config, Connection

from migration.errors import FuretError
from migration.inventory import InventoryHost, load_inventory

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


def connection_for(host: InventoryHost, connect_timeout: int = 10) -> Connection:
    """A Fabric connection to one inventory host (user, port, key from the inventory)."""
    connect_kwargs = {"key_filename": host.key_file} if host.key_file else {}
    # furet's remote commands never read the operator's terminal: no stdin forwarding,
    # so they behave the same under CI, pytest and a shell.
    config = Config(overrides={"run": {"in_stream": False}})
    conn = Connection(
        host=host.address, user=host.user, port=host.port, config=config,
        connect_timeout=connect_timeout, connect_kwargs=connect_kwargs,
    )
    if host.check_host_key:
        # Fabric accepts any host key (AutoAddPolicy, no known_hosts read): furet checks it
        # as ssh does, against the known_hosts files, and refuses an unknown one.
        for known in (SYSTEM_KNOWN_HOSTS, host.known_hosts or USER_KNOWN_HOSTS):
            path = Path(known).expanduser()
            if path.is_file():
                conn.client.load_system_host_keys(str(path))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return conn


def select_hosts(inventory: str | Path, patterns: Iterable[str] = ()) -> list[InventoryHost]:
    """Hosts of the inventory whose name or group is in ``patterns`` (all when empty)."""
    hosts = load_inventory(inventory)
    wanted = set(patterns)
    if not wanted:
        return hosts
    chosen = [h for h in hosts if h.name in wanted or wanted.intersection(h.groups)]
    known = {h.name for h in hosts} | {g for h in hosts for g in h.groups}
    unknown = sorted(wanted - known)
    if unknown:
        raise FuretError(f"inventory {inventory}: no host or group named {', '.join(unknown)}")
    return chosen
