"""Every role variable carries its role's prefix (replaces ansible-lint's no-role-prefix,
which wants the directory name: see .ansible-lint) and every default is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

PREFIXES = {
    "common": "common_",
    "mariadb_galera": "galera_",
    "haproxy_galera": "haproxy_galera_",
    "cassandra": "cassandra_",
    "etl_runner": "etl_runner_",
    "legacy_mysql": "legacy_mysql_",
}
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def _task_names(role: str) -> list[tuple[str, str]]:
    """(file, variable) for every register and set_fact in the role's tasks and handlers."""
    found = []
    for path in sorted((REPO / "roles" / role).glob("*/*.yml")):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        for task in yaml.safe_load(path.read_text()) or []:
            if "register" in task:
                found.append((path.name, task["register"]))
            facts = task.get("ansible.builtin.set_fact")
            if isinstance(facts, dict):
                found.extend((path.name, name) for name in facts)
    return found


def test_every_role_has_a_prefix() -> None:
    missing = set(ROLES) - set(PREFIXES)
    assert not missing, f"add the prefix of the new role(s) here: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_vars_registers_and_facts_are_prefixed(role: str) -> None:
    prefix = PREFIXES[role]
    root = REPO / "roles" / role
    bad = [n for n in _load(root / "defaults" / "main.yml") if not n.startswith(prefix)]
    bad += [n for n in _load(root / "vars" / "main.yml") if not n.startswith("_" + prefix)]
    bad += [f"{f}: {n}" for f, n in _task_names(role)
            if not (n.startswith(prefix) or n.startswith("_" + prefix))]
    assert bad == [], f"role {role}: names without the prefix {prefix!r}: {bad}"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_argument_specs(role: str) -> None:
    root = REPO / "roles" / role
    defaults = set(_load(root / "defaults" / "main.yml"))
    specs = _load(root / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert defaults - set(specs) == set(), f"role {role}: defaults missing from argument_specs"
