"""Read an Ansible inventory the way ansible-playbook does, for Fabric and the lab.

Fabric tasks must reach the hosts with the same SSH settings as the playbooks, so this
module asks Ansible itself to load the inventory (group_vars, host_vars, templating)
instead of re-parsing YAML by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from migration.errors import FuretError


@dataclass(frozen=True)
class InventoryHost:
    """One host as Ansible would connect to it."""

    name: str
    address: str
    user: str
    port: int
    key_file: str | None
    groups: tuple[str, ...]
    variables: dict = field(default_factory=dict, compare=False, hash=False)


_SSH_VARS = ("ansible_host", "ansible_user", "ansible_port", "ansible_ssh_private_key_file")
# Host variables furet itself reads (kept on InventoryHost.variables).
FURET_VARS = ("dc", "rack", "furet_rehearsal_allowed")


def load_inventory(source: str | Path) -> list[InventoryHost]:
    """Every host of ``source`` with its templated connection settings, in inventory order."""
    # Imported here: loading Ansible takes ~0.5 s and most commands never need it.
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    source = Path(source)
    if not source.exists():
        raise FuretError(f"inventory {source} does not exist")
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(source)])
    variable_manager = VariableManager(loader=loader, inventory=manager)
    hosts = []
    for host in manager.get_hosts():
        hostvars = variable_manager.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=hostvars)
        conn = {name: templar.template(hostvars[name]) for name in _SSH_VARS if name in hostvars}
        key_file = conn.get("ansible_ssh_private_key_file")
        hosts.append(
            InventoryHost(
                name=host.name,
                address=str(conn.get("ansible_host", host.name)),
                user=str(conn.get("ansible_user", "root")),
                port=int(conn.get("ansible_port", 22)),
                key_file=str(Path(key_file).resolve()) if key_file else None,
                groups=tuple(sorted(g.name for g in host.get_groups() if g.name != "all")),
                variables={k: hostvars[k] for k in FURET_VARS if k in hostvars},
            )
        )
    return hosts
