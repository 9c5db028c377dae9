"""The production preflight refuses weak or plain-text secrets, naming each variable, visibly.

playbooks/preflight.yml runs for real (ansible-playbook) against copies of the example
production inventory, whose hosts are documentation addresses: it decides on the
controller alone. A failure names the variable, never its value, and is not hidden by
no_log. The lab inventory (furet_lab: true) is exempt.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helpers import BIN, REPO, PlaybookRun, run_playbook, tool_env

PRODUCTION = REPO / "inventories/production"
LAB = REPO / "inventories/lab"
EXAMPLE = yaml.safe_load((PRODUCTION / "group_vars/all/vault.yml.example").read_text())
# The role variables of the example inventory that take their value from vault.yml.
MAPPED = {
    "galera_sst_password": "vault_galera_sst_password",
    "galera_monitor_password": "vault_galera_monitor_password",
    "galera_users[furet].password": "vault_galera_furet_password",
    "galera_users[webapp].password": "vault_galera_app_password",
    "cassandra_superuser_password": "vault_cassandra_superuser_password",
    "cassandra_roles[furet].password": "vault_cassandra_furet_password",
    "legacy_mysql_users[furet].password": "vault_legacy_furet_password",
    "etl_runner_legacy_password": "vault_legacy_furet_password",
    "etl_runner_target_password": "vault_galera_furet_password",
    "etl_runner_cassandra_password": "vault_cassandra_furet_password",
}
HIDDEN = ("output has been hidden", "censored")


def _secret() -> str:
    # Never "-...": ansible-vault encrypt_string would take it for an option.
    return "s" + secrets.token_urlsafe(18)


def _random_values() -> dict[str, str]:
    return {name: _secret() for name in EXAMPLE}


def _vault(tmp_path: Path, *args: str) -> None:
    subprocess.run([str(BIN / "ansible-vault"), *args, "--vault-password-file",
                    str(tmp_path / "vault-pass")], cwd=tmp_path, env=tool_env(), check=True,
                   capture_output=True, text=True)


def _production(tmp_path: Path, values: dict[str, str], *, encrypt: bool = True) -> Path:
    """A copy of the example production inventory with this vault.yml; returns hosts.yml."""
    root = tmp_path / "production"
    shutil.copytree(PRODUCTION, root)
    (tmp_path / "vault-pass").write_text(secrets.token_urlsafe(24) + "\n")
    vault = root / "group_vars/all/vault.yml"
    vault.write_text(yaml.safe_dump(values, default_flow_style=False))
    if encrypt:
        _vault(tmp_path, "encrypt", str(vault))
    return root / "hosts.yml"


def _preflight(tmp_path: Path, inventory: Path) -> PlaybookRun:
    if not (tmp_path / "vault-pass").exists():
        (tmp_path / "vault-pass").write_text("unused\n")
    return run_playbook("preflight.yml", "--vault-password-file", str(tmp_path / "vault-pass"),
                        inventory=inventory)


def _flat(output: str) -> str:
    return " ".join(output.split())


def _named(output: str, name: str) -> list[str]:
    """The refusals of the secret `name`, once each (whitespace collapsed: the callback wraps)."""
    found = re.findall(rf"secret '{re.escape(name)}' [^;]*", _flat(output))
    return list(dict.fromkeys(found))  # each is in the error line and in the result


def _assert_visible_and_clean(run: PlaybookRun, values: list[str]) -> None:
    for hidden in HIDDEN:
        assert hidden not in run.output, run.output[-3000:]
    leaked = [v for v in values if v and v in run.output]
    assert leaked == [], "a secret value is in the preflight's output"
    assert "UNREACHABLE" not in run.output


def test_example_values_are_refused_naming_every_variable(tmp_path: Path) -> None:
    run = _preflight(tmp_path, _production(tmp_path, EXAMPLE))
    assert run.returncode != 0, run.output[-3000:]
    for name in [*EXAMPLE, *MAPPED]:
        found = _named(run.output, name)
        assert found, f"{name} is not named:\n{run.output[-4000:]}"
        assert all("the example value of vault.yml.example" in f for f in found), found
    assert "secret 'galera_sst_password' (group galera)" in _flat(run.output)
    assert "secret 'vault_galera_sst_password' (every host)" in _flat(run.output)
    _assert_visible_and_clean(run, ["change-me"])


def test_lab_values_known_defaults_and_empty_are_refused(tmp_path: Path) -> None:
    values = _random_values()
    values |= {"vault_galera_sst_password": "lab-sst-not-secret",
               "vault_cassandra_superuser_password": "qwerty",
               "vault_cassandra_furet_password": "Cassandra",
               "vault_galera_monitor_password": ""}
    clean = [v for k, v in values.items() if k != "vault_cassandra_furet_password"]
    run = _preflight(tmp_path, _production(tmp_path, values))
    assert run.returncode != 0, run.output[-3000:]
    expected = {
        "galera_sst_password": "a lab value (*-not-secret)",
        "vault_galera_sst_password": "a lab value (*-not-secret)",
        "cassandra_superuser_password": "a known default",
        "vault_cassandra_superuser_password": "a known default",
        "cassandra_roles[furet].password": "a known default",
        "vault_cassandra_furet_password": "a known default",
        "galera_monitor_password": "empty",
        "vault_galera_monitor_password": "empty",
    }
    for name, why in expected.items():
        found = _named(run.output, name)
        assert found and all(f.endswith(f"is {why}") for f in found), (name, found)
    # The good values are not refused.
    for name in ("vault_galera_furet_password", "galera_users[furet].password",
                 "etl_runner_legacy_password"):
        assert _named(run.output, name) == [], name
    _assert_visible_and_clean(run, clean)


def test_random_values_in_an_encrypted_vault_pass(tmp_path: Path) -> None:
    values = _random_values()
    run = _preflight(tmp_path, _production(tmp_path, values))
    assert run.returncode == 0, run.output[-3000:]
    assert "secret '" not in run.output
    _assert_visible_and_clean(run, list(values.values()))


def test_values_encrypted_one_by_one_pass(tmp_path: Path) -> None:
    """A plain vault.yml whose every value is an inline !vault (ansible-vault encrypt_string)."""
    values = _random_values()
    inventory = _production(tmp_path, {}, encrypt=False)
    vault = inventory.parent / "group_vars/all/vault.yml"
    for name, value in values.items():
        _vault(tmp_path, "encrypt_string", "--name", name, "--output",
               str(tmp_path / "one.yml"), value)
        vault.write_text(vault.read_text().replace("{}\n", "") + (tmp_path / "one.yml").read_text())
    run = _preflight(tmp_path, inventory)
    assert run.returncode == 0, run.output[-3000:]
    _assert_visible_and_clean(run, list(values.values()))


def test_plain_text_vault_is_refused_naming_file_and_variables(tmp_path: Path) -> None:
    values = _random_values()
    run = _preflight(tmp_path, _production(tmp_path, values, encrypt=False))
    assert run.returncode != 0, run.output[-3000:]
    for name in EXAMPLE:
        found = _named(run.output, name)
        assert found == [f"secret '{name}' is in plain text in group_vars/all/vault.yml"], (
            name, found, run.output[-3000:])
    _assert_visible_and_clean(run, list(values.values()))


def test_plain_text_role_variables_are_refused(tmp_path: Path) -> None:
    """A secret written in a group's vars file instead of a reference to the vault."""
    values = _random_values()
    inventory = _production(tmp_path, values)
    galera = inventory.parent / "group_vars/galera.yml"
    literal, app = _secret(), _secret()
    galera.write_text(galera.read_text()
                      .replace('"{{ vault_galera_sst_password }}"', literal)
                      .replace('"{{ vault_galera_app_password }}"', app))
    run = _preflight(tmp_path, inventory)
    assert run.returncode != 0, run.output[-3000:]
    for name in ("galera_sst_password", "galera_users[webapp].password"):
        assert _named(run.output, name) == [
            f"secret '{name}' is in plain text in group_vars/galera.yml"], run.output[-3000:]
    assert _named(run.output, "galera_monitor_password") == []
    _assert_visible_and_clean(run, [literal, app, *values.values()])


def test_missing_vault_is_named(tmp_path: Path) -> None:
    """No vault.yml: the role variables name vault_* variables nothing defines."""
    inventory = _production(tmp_path, {}, encrypt=False)
    (inventory.parent / "group_vars/all/vault.yml").unlink()
    run = _preflight(tmp_path, inventory)
    assert run.returncode != 0, run.output[-3000:]
    for name in MAPPED:
        found = _named(run.output, name)
        assert found and all("is undefined (it names a variable no vars file sets" in f
                             for f in found), (name, found)


def test_lab_inventory_is_exempt(tmp_path: Path) -> None:
    run = _preflight(tmp_path, LAB / "hosts.yml")
    assert run.returncode == 0, run.output[-3000:]


def test_lab_inventory_without_the_lab_mark_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    shutil.copytree(LAB, root)
    all_vars = root / "group_vars/all.yml"
    assert "\nfuret_lab: true\n" in all_vars.read_text()
    all_vars.write_text(all_vars.read_text().replace("\nfuret_lab: true\n", "\n"))
    run = _preflight(tmp_path, root / "hosts.yml")
    assert run.returncode != 0, run.output[-3000:]
    assert sorted(_named(run.output, "galera_sst_password")) == [
        "secret 'galera_sst_password' (group galera) is a lab value (*-not-secret)",
        "secret 'galera_sst_password' is in plain text in group_vars/galera.yml",
        # the new cluster's settings are the first one's (a link to galera.yml)
        "secret 'galera_sst_password' is in plain text in group_vars/galera_next/00-galera.yml"]
    assert "secret 'etl_runner_cassandra_password' (host app1) is empty" in _flat(run.output)
    _assert_visible_and_clean(run, ["lab-sst-not-secret", "lab-furet-not-secret"])
