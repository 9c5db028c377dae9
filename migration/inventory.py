"""Read an Ansible inventory the way ansible-playbook does, for Fabric and the lab.

Fabric tasks must reach the hosts with the same SSH settings as the playbooks, so this
module asks Ansible itself to load the inventory (group_vars, host_vars, templating)
instead of re-parsing YAML by hand.

An inventory with vault-encrypted files (production's group_vars/all/vault.yml) is read
with the vault password Ansible itself would use: ``ANSIBLE_VAULT_PASSWORD_FILE`` or
ansible.cfg's ``vault_password_file`` (also ``ANSIBLE_VAULT_IDENTITY_LIST``), the
``--vault-password-file`` of ``furet hosts`` and the fab tasks
(:func:`use_vault_password_file`), else a prompt when furet runs in a terminal. Without
one, or with a wrong one, the error is one line naming the inventory and the encrypted file.
"""

from __future__ import annotations

import functools
import sys
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
    # SSH host keys checked as Ansible's ssh would (see host_key_settings): the key must be
    # in known_hosts (the user's and /etc/ssh/ssh_known_hosts, or the inventory's
    # UserKnownHostsFile); never added on the fly. Off only where the inventory turns it
    # off (the lab: StrictHostKeyChecking=no, its hosts are recreated with new keys).
    check_host_key: bool = True
    known_hosts: str | None = None

    @property
    def remote(self) -> RemotePaths:
        """Where furet is on this host (see :class:`RemotePaths`)."""
        return RemotePaths.from_vars(self.variables)


_SSH_VARS = ("ansible_host", "ansible_user", "ansible_port", "ansible_ssh_private_key_file",
             "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_host_key_checking")
# Host variables furet itself reads (kept on InventoryHost.variables).
FURET_VARS = ("dc", "rack", "furet_rehearsal_allowed", "lab_suite")
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


# --vault-password-file values of this process (furet hosts, the fab tasks)
_VAULT_PASSWORD_FILES: list[str] = []
VAULT_HINT = ("set ANSIBLE_VAULT_PASSWORD_FILE, or pass --vault-password-file FILE (or run "
              "in a terminal to be asked)")


def use_vault_password_file(path: str | None) -> None:
    """Read vault-encrypted inventories of this process with the password in ``path``."""
    if not path:
        return
    file = Path(path)
    if not file.is_file():
        raise FuretError(f"vault password file {path} does not exist")
    if str(file) not in _VAULT_PASSWORD_FILES:
        _VAULT_PASSWORD_FILES.append(str(file))


def encrypted_files(source: Path) -> list[Path]:
    """The vault-encrypted files under the inventory's directory (group_vars, host_vars)."""
    root = source if source.is_dir() else source.parent
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".json"):
            try:
                with path.open("rb") as head:
                    if head.read(14) == b"$ANSIBLE_VAULT":
                        found.append(path)
            except OSError:
                continue
    return found


def _vault_secrets(loader: Any, ask: bool) -> list[Any]:
    from ansible import constants as C  # noqa: N812  # Ansible's own name for its settings
    from ansible.cli import CLI

    return list(CLI.setup_vault_secrets(
        loader, vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST),
        vault_password_files=list(_VAULT_PASSWORD_FILES), ask_vault_pass=ask,
        auto_prompt=False, initialize_context=False))


def _vault_problem(source: Path, message: str) -> str | None:
    """One line for a vault error of Ansible's (None: not a vault error)."""
    files = encrypted_files(source)
    named = ", ".join(str(f) for f in files[:3]) or "a file"
    if "vault password must be specified" in message or "no vault secrets found" in message:
        return f"inventory {source}: {named} is vault-encrypted and no vault password was " \
               f"given: {VAULT_HINT}"
    if "Decryption failed" in message:
        return f"inventory {source}: the vault password given does not decrypt {named}"
    return None


def _read_vars(source: Path, ask: bool) -> tuple[Any, list[tuple[Any, dict]]]:
    """Ansible's loader and each host with its variables; vault errors as one line."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    loader.set_vault_secrets(_vault_secrets(loader, ask))
    try:
        manager = InventoryManager(loader=loader, sources=[str(source)])
        variable_manager = VariableManager(loader=loader, inventory=manager)
        return loader, [(host, variable_manager.get_vars(host=host, include_hostvars=False))
                        for host in manager.get_hosts()]
    except AnsibleError as exc:
        problem = _vault_problem(source, str(exc.message))
        if problem is None:
            raise FuretError(f"inventory {source}: {str(exc.message).splitlines()[0]}") \
                from None
        if not ask and "no vault password was given" in problem and _interactive():
            return _read_vars(source, ask=True)
        raise FuretError(problem) from None


def _interactive() -> bool:
    return sys.stdin.isatty()


def load_inventory(source: str | Path) -> list[InventoryHost]:
    """Every host of ``source`` with its templated connection settings, in inventory order."""
    # Imported here: loading Ansible takes ~0.5 s and most commands never need it.
    from ansible.template import Templar

    source = Path(source)
    if not source.exists():
        raise FuretError(f"inventory {source} does not exist")
    loader, read = _read_vars(source, ask=False)
    hosts = []
    for host, hostvars in read:
        templar = Templar(loader=loader, variables=hostvars)
        conn = {name: templar.template(hostvars[name]) for name in _SSH_VARS if name in hostvars}
        key_file = conn.get("ansible_ssh_private_key_file")
        check_host_key, known_hosts = host_key_settings(conn)
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
                check_host_key=check_host_key,
                known_hosts=known_hosts,
            )
        )
    return hosts


def host_key_settings(conn: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(check the host key?, known_hosts file) from a host's SSH variables, the way
    Ansible's ssh connection reads them: ``-o StrictHostKeyChecking=no`` in
    ``ansible_ssh_common_args``/``_extra_args``, ``ansible_host_key_checking`` or
    ansible.cfg's ``host_key_checking`` turn checking off; ``-o UserKnownHostsFile=F``
    names the file (``/dev/null``: none)."""
    from ansible import constants as C  # noqa: N812  # Ansible's own name for its settings

    words = " ".join(str(conn.get(k) or "") for k in ("ansible_ssh_common_args",
                                                        "ansible_ssh_extra_args")).split()
    options: dict[str, str] = {}
    for i, word in enumerate(words):
        text = word[2:] if word.startswith("-o") and len(word) > 2 else (
            words[i + 1] if word == "-o" and i + 1 < len(words) else "")
        name, _, value = text.partition("=")
        if name and value:
            options[name.lower()] = value
    check = bool(C.HOST_KEY_CHECKING)
    if "ansible_host_key_checking" in conn:
        check = str(conn["ansible_host_key_checking"]).lower() in ("1", "true", "yes", "on")
    if options.get("stricthostkeychecking", "").lower() == "no":
        check = False
    known = options.get("userknownhostsfile")
    return check, (None if known in (None, "/dev/null") else str(Path(known).expanduser()))
