"""cassandra.yaml as the cassandra role renders it for a host of the lab inventory, by
Ansible's own templating: the inventory's group and host vars, the role's defaults below
them and its vars above, as the role's template task would (no host is contacted)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helpers import REPO
from tests.role_template import trusted as _trusted

ROLE = REPO / "roles" / "cassandra"


def render(host: str, **extra: Any) -> dict[str, Any]:
    """cassandra.yaml of a lab host; ``extra`` as ``-e`` would give it (above everything)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(REPO / "inventories/lab/hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    for node in inventory.get_hosts("cassandra"):   # what tasks/state.yml publishes
        address = manager.get_vars(host=node)["ansible_host"]
        manager.set_host_facts(node.name, {"cassandra_node": {"listen_address": address,
                                                              "rpc_address": address}})
    variables = {
        **_trusted(loader.load_from_file(str(ROLE / "defaults" / "main.yml"))),
        **manager.get_vars(host=inventory.get_host(host)),
        **_trusted(loader.load_from_file(str(ROLE / "vars" / "main.yml"))),
        **extra,
        "ansible_managed": "Ansible managed",
        "hostvars": HostVars(inventory=inventory, variable_manager=manager, loader=loader),
    }
    text = (ROLE / "templates" / "etc" / "cassandra" / "cassandra.yaml.j2").read_text()
    rendered = Templar(loader=loader, variables=variables).template(_trusted(text))
    assert "{{" not in rendered
    return yaml.safe_load(rendered)
