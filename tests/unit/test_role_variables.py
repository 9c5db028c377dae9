"""Every role variable carries its role's prefix (replaces ansible-lint's no-role-prefix,
which wants the directory name: see .ansible-lint), every default is documented in the
role's argument specs, and every ``tasks_from`` names an entry point that Ansible validates.

ansible-core validates ``include_role``/``import_role`` arguments against the entry point
named exactly like the ``tasks_from`` value: ``tasks_from: recover`` validates the entry
point ``recover``, while ``tasks_from: recover.yml`` looks for an entry point
``recover.yml``, finds none and silently validates nothing. Hence the checks below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

PREFIXES = {
    "common": "common_",
    "mariadb_galera": "galera_",
    "haproxy_galera": "haproxy_galera_",
    "app_endpoint": "app_endpoint_",
    "backup": "backup_",
    "cassandra": "cassandra_",
    "etl_runner": "etl_runner_",
    "legacy_mysql": "legacy_mysql_",
    "pki": "pki_",
    "firewall": "firewall_",
    "os_update": "os_update_",
}
# Tags are namespaced by role: the role's tag alone, or "<tag>:<part>".
TAGS = {
    "common": "common",
    "mariadb_galera": "galera",
    "haproxy_galera": "haproxy",
    "cassandra": "cassandra",
    "etl_runner": "etl",
    "app_endpoint": "app_endpoint",
    "backup": "backup",
    "legacy_mysql": "legacy",
    "pki": "pki",
    "firewall": "firewall",
    "os_update": "os_update",
}
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
INCLUDE_ROLE = {"ansible.builtin.include_role", "ansible.builtin.import_role",
                "include_role", "import_role"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def _specs(role: str) -> dict[str, dict]:
    return _load(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]


def _tasks(items: list | None) -> Iterator[dict]:
    """Every task of a task list, descending into blocks."""
    for task in items or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _task_files() -> Iterator[Path]:
    """Every YAML file that holds tasks or plays: playbooks, molecule, role tasks/handlers."""
    yield from sorted((REPO / "playbooks").glob("*.yml"))
    yield from sorted((REPO / "molecule").glob("*/*.yml"))
    for role in ROLES:
        for sub in ("tasks", "handlers"):
            yield from sorted((REPO / "roles" / role / sub).glob("*.yml"))


def _all_tasks(path: Path) -> Iterator[dict]:
    data = yaml.safe_load(path.read_text()) or []
    if not isinstance(data, list):
        return
    for item in data:
        if isinstance(item, dict) and "hosts" in item:  # a play
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from _tasks(item.get(section))
        else:
            yield from _tasks([item])


def _role_includes() -> list[tuple[str, str, str]]:
    """(file, role, tasks_from) of every include_role/import_role with tasks_from."""
    found = []
    for path in _task_files():
        for task in _all_tasks(path):
            for action in INCLUDE_ROLE & set(task):
                args = task[action]
                if isinstance(args, dict) and "tasks_from" in args:
                    found.append((str(path.relative_to(REPO)), args["name"], args["tasks_from"]))
    return found


def _task_names(role: str) -> list[tuple[str, str]]:
    """(file, variable) for every register and set_fact in the role's tasks and handlers."""
    found = []
    for path in sorted((REPO / "roles" / role).glob("*/*.yml")):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        for task in _tasks(yaml.safe_load(path.read_text())):
            if "register" in task:
                found.append((path.name, task["register"]))
            facts = task.get("ansible.builtin.set_fact")
            if isinstance(facts, dict):
                found.extend((path.name, name) for name in facts)
    return found


def test_every_role_has_a_prefix() -> None:
    missing = set(ROLES) - set(PREFIXES)
    assert not missing, f"add the prefix of the new role(s) here: {missing}"
    assert set(TAGS) == set(PREFIXES), "add the tag of the new role(s) to TAGS"


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
    documented = {name for spec in _specs(role).values() for name in spec.get("options", {})}
    assert defaults - documented == set(), f"role {role}: defaults missing from argument_specs"


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_point_has_its_tasks_file_and_known_options(role: str) -> None:
    root = REPO / "roles" / role
    defaults = set(_load(root / "defaults" / "main.yml"))
    for entry, spec in _specs(role).items():
        assert (root / "tasks" / f"{entry}.yml").is_file(), f"{role}: no tasks/{entry}.yml"
        assert spec.get("short_description"), f"{role}: entry point {entry} is not described"
        options = spec.get("options", {})
        # An option is a default of the role or one the inventory must set: a name in the
        # specs and nowhere else is a typo, and Ansible would validate nothing under it.
        unknown = {n for n, o in options.items() if n not in defaults and not o.get("required")}
        assert unknown == set(), f"{role}: entry point {entry} documents unknown {unknown}"


def test_every_tasks_from_names_an_entry_point_with_its_own_specs() -> None:
    includes = _role_includes()
    assert {(r, t) for _, r, t in includes} >= {
        ("mariadb_galera", "recover_preflight"), ("mariadb_galera", "recover"),
        ("mariadb_galera", "rolling_restart"), ("haproxy_galera", "drain"),
        ("haproxy_galera", "undrain"), ("cassandra", "rolling_restart"),
        ("cassandra", "repair"), ("common", "preflight"), ("etl_runner", "binary"),
        ("backup", "take"), ("backup", "restore_test"), ("mariadb_galera", "backup_source"),
        ("cassandra", "backup_source"), ("cassandra", "dist"), ("common", "backup_account"),
        ("firewall", "preflight"), ("firewall", "render"),
    }
    for where, role, tasks_from in includes:
        assert not re.search(r"\.ya?ml$", tasks_from), (
            f"{where}: tasks_from {tasks_from} would validate no entry point: drop the extension")
        assert tasks_from in _specs(role), (
            f"{where}: {role} has no entry point {tasks_from} in meta/argument_specs.yml")


def test_operation_playbooks_are_thin() -> None:
    """Playbooks choose hosts and order; what happens on a host is a role's entry point."""
    for path in sorted((REPO / "playbooks").glob("*.yml")):
        if path.name == "verify_gate.yml":  # furet's gate: one command, no role
            continue
        for play in yaml.safe_load(path.read_text()):
            for task in _all_tasks_of_play(play):
                action = next(k for k in task if "." in k or k in INCLUDE_ROLE)
                assert action in INCLUDE_ROLE, f"{path.name}: {task.get('name')} is {action}"



def test_rolling_plays_stop_at_the_first_failing_node() -> None:
    """A play with `serial` stops the whole run when one node fails (STYLE: rolling plays):
    else the next node would be taken down beside a broken one."""
    for path in sorted((REPO / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text()):
            if "serial" in play:
                assert (play.get("max_fail_percentage"), play.get("any_errors_fatal")) == \
                    (0, True), f"{path.name}: {play['name']}"


def test_certificates_gathers_the_facts_the_nodes_addresses_default_to() -> None:
    """galera_node_address and cassandra_listen_address default to the default IPv4 fact
    (production sets neither): certificates.yml's node plays gather the network facts."""
    for role, variable in (("mariadb_galera", "galera_node_address"),
                           ("cassandra", "cassandra_listen_address")):
        assert "ansible_facts['default_ipv4']" in str(
            _load(REPO / "roles" / role / "defaults" / "main.yml")[variable])
    plays = {p["hosts"]: p for p in yaml.safe_load(
        (REPO / "playbooks/certificates.yml").read_text()) if "hosts" in p}
    for group in ("galera", "cassandra"):
        assert plays[group].get("gather_facts") is True, group
        assert {"all", "network"} & set(plays[group].get("gather_subset", ["all"])), group

def _all_tasks_of_play(play: dict) -> Iterator[dict]:
    for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
        yield from _tasks(play.get(section))


@pytest.mark.parametrize("role", ROLES)
def test_tags_are_namespaced_by_role_and_reach_the_included_tasks(role: str) -> None:
    tag = TAGS[role]
    pattern = re.compile(rf"^(always|{tag}|{tag}:[a-z_]+)$")
    root = REPO / "roles" / role / "tasks"
    for path in sorted(root.glob("*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            tags = task.get("tags", [])
            bad = [t for t in tags if not pattern.match(t)]
            assert bad == [], f"{role}/{path.name}: tags {bad} are not '{tag}' or '{tag}:<part>'"
            include = task.get("ansible.builtin.include_tasks")
            if tags and include is not None:
                # Tags on include_tasks select the include only; `apply` hands them down.
                assert isinstance(include, dict) and include.get("apply", {}).get("tags") == tags, (
                    f"{role}/{path.name}: {task['name']}: include_tasks needs apply: tags: {tags}")
    main = yaml.safe_load((root / "main.yml").read_text())
    assert all(f"{tag}" in t.get("tags", []) for t in main), f"{role}: untagged part in main.yml"


def test_controller_side_tasks_never_go_through_sudo() -> None:
    """A task run on the controller (delegate_to localhost) sets the variable
    ansible_become: false. The `become: false` keyword is not enough: an inventory's
    ansible_become: true (production's group_vars) is a variable and beats the keyword, so
    the operator's CA would be made through sudo (root-owned) or sudo would drop
    SSH_CONNECTION."""
    bad = []
    for role in ROLES:
        for sub in ("tasks", "handlers"):
            for path in sorted((REPO / "roles" / role / sub).glob("*.yml")):
                for task in _tasks(yaml.safe_load(path.read_text())):
                    where = f"{role}/{sub}/{path.name}: {task.get('name')}"
                    if task.get("become") is False:
                        bad.append(f"{where}: `become: false` (use vars: ansible_become: false)")
                    if (task.get("delegate_to") == "localhost"
                            and (task.get("vars") or {}).get("ansible_become") is not False):
                        bad.append(f"{where}: delegated to localhost without ansible_become false")
    assert bad == [], "\n".join(bad)
