"""Read an Ansible inventory the way ansible-playbook does, for Fabric and the lab.

Fabric tasks must reach the hosts with the same SSH settings as the playbooks, so this
module asks Ansible itself to load the inventory (group_vars, host_vars, templating)
instead of re-parsing YAML by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migration.errors import FuretError

ROLE_DEFAULTS = Path(__file__).resolve().parents[1] / "roles/etl_runner/defaults/main.yml"


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

    @property
    def remote(self) -> RemotePaths:
        """Where furet is on this host (see :class:`RemotePaths`)."""
        return RemotePaths.from_vars(self.variables)


_SSH_VARS = ("ansible_host", "ansible_user", "ansible_port", "ansible_ssh_private_key_file")
# Host variables furet itself reads (kept on InventoryHost.variables).
FURET_VARS = ("dc", "rack", "furet_rehearsal_allowed")
# The etl_runner role's variables that say where furet lives on an ETL host (templated:
# only these, so an inventory whose other variables need a vault still loads).
REMOTE_VARS = ("etl_runner_config_dir", "etl_runner_bin_link", "etl_runner_reports_dir")
# Not a variable of the etl_runner role (yet): where `furet verify` writes on the ETL host.
DEFAULT_REPORTS_DIR = "/var/lib/furet/reports"


@dataclass(frozen=True)
class RemotePaths:
    """Where furet is on an ETL host, as the etl_runner role installed it: its settings
    file (``etl_runner_config_dir``/furet.yml), the command, and the reports directory.

    The command is ``furet`` (the role links it into /usr/local/bin, on PATH) unless the
    inventory sets ``etl_runner_bin_link``."""

    config: str
    bin: str = "furet"
    reports: str = DEFAULT_REPORTS_DIR

    @classmethod
    def from_vars(cls, variables: Mapping[str, Any]) -> RemotePaths:
        """From a host's variables (inventory host/group vars), else the role defaults."""
        config_dir = variables.get("etl_runner_config_dir") or role_defaults()[
            "etl_runner_config_dir"]
        return cls(config=f"{str(config_dir).rstrip('/')}/furet.yml",
                   bin=str(variables.get("etl_runner_bin_link") or "furet"),
                   reports=str(variables.get("etl_runner_reports_dir") or DEFAULT_REPORTS_DIR))


@functools.cache
def role_defaults() -> dict[str, Any]:
    """roles/etl_runner/defaults/main.yml (the controller runs from the repository)."""
    import yaml

    try:
        return dict(yaml.safe_load(ROLE_DEFAULTS.read_text()))
    except OSError as exc:
        raise FuretError(f"cannot read the etl_runner role defaults {ROLE_DEFAULTS}: "
                         f"{exc.strerror}") from None


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
                variables={**{k: hostvars[k] for k in FURET_VARS if k in hostvars},
                           **{k: templar.template(hostvars[k]) for k in REMOTE_VARS
                              if k in hostvars}},
            )
        )
    return hosts
