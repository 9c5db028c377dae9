"""A role's template as the role's template task renders it for a host of the lab inventory,
by Ansible's own templating: the inventory's group and host vars, the role's defaults below
them and its vars above, ``extra`` as ``-e`` gives it (above everything, and a string when
given as one: ``-e galera_tls=false`` is the string "false"). No host is contacted."""

from __future__ import annotations

from typing import Any

from tests.helpers import REPO


def trusted(value: Any) -> Any:
    """Values from files, as Ansible trusts them for templating."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def render(role: str, template: str, host: str, facts: dict[str, dict[str, Any]] | None = None,
           **extra: Any) -> str:
    """roles/<role>/templates/<template> for ``host``; ``facts``: per host, what the role's
    earlier tasks or the facts would have given (gathered facts or set_fact)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    root = REPO / "roles" / role
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(REPO / "inventories/lab/hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    for name, values in (facts or {}).items():
        manager.set_host_facts(name, values)
    variables = {
        **trusted(loader.load_from_file(str(root / "defaults" / "main.yml"))),
        **manager.get_vars(host=inventory.get_host(host)),
        **trusted(loader.load_from_file(str(root / "vars" / "main.yml"))),
        **extra,
        "ansible_managed": "Ansible managed",
        "hostvars": HostVars(inventory=inventory, variable_manager=manager, loader=loader),
    }
    text = (root / "templates" / template).read_text()
    rendered = Templar(loader=loader, variables=variables).template(trusted(text))
    assert "{{" not in rendered
    return str(rendered)
