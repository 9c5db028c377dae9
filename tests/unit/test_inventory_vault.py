"""An inventory whose secrets are ansible-vault encrypted (production's
group_vars/all/vault.yml, as the README says to do) reads with the vault password Ansible
would use, and without it, or with a wrong one, fails in one line naming the file.

The commands are run on a copy of inventories/production with a pattern that names no host,
so the inventory is read in full and no host is contacted."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration import inventory
from migration.errors import FuretError
from migration.inventory import load_inventory, use_vault_password_file
from tests.helpers import BIN, REPO

PASSWORD = "unit-test-vault-password"
# the example inventory as it is in the repository (no vault.yml there: nothing to decrypt)
PRODUCTION_HOSTS = [h.name for h in load_inventory(REPO / "inventories/production/hosts.yml")]


@pytest.fixture
def vaulted(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(hosts.yml, right password file, wrong password file) of an encrypted copy."""
    copy = tmp_path / "production"
    shutil.copytree(REPO / "inventories" / "production", copy)
    vault = copy / "group_vars" / "all" / "vault.yml"
    vault.write_text((vault.parent / "vault.yml.example").read_text()
                     .replace("change-me", "s3cret-value"))
    right, wrong = tmp_path / "pass", tmp_path / "wrong"
    right.write_text(PASSWORD + "\n")
    wrong.write_text("not-the-password\n")
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(right),
                    str(vault)], check=True, capture_output=True)
    assert vault.read_bytes().startswith(b"$ANSIBLE_VAULT")
    saved = list(inventory._VAULT_PASSWORD_FILES)
    inventory._VAULT_PASSWORD_FILES.clear()
    yield copy / "hosts.yml", right, wrong
    inventory._VAULT_PASSWORD_FILES[:] = saved


def _run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_VAULT")}
    env.update({"FURET_HOME": str(REPO), **(env_extra or {})})
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_load_inventory_with_the_password_file(vaulted: tuple[Path, Path, Path]) -> None:
    hosts, right, _ = vaulted
    use_vault_password_file(str(right))
    assert [h.name for h in load_inventory(hosts)] == PRODUCTION_HOSTS


def test_without_a_password_one_line_names_the_encrypted_file(
        vaulted: tuple[Path, Path, Path]) -> None:
    hosts, _, _ = vaulted
    with pytest.raises(FuretError) as caught:
        load_inventory(hosts)
    assert str(caught.value) == (
        f"inventory {hosts}: {hosts.parent}/group_vars/all/vault.yml is vault-encrypted and "
        "no vault password was given: set ANSIBLE_VAULT_PASSWORD_FILE, or pass "
        "--vault-password-file FILE (or run in a terminal to be asked)")


def test_in_a_terminal_the_password_is_asked(vaulted: tuple[Path, Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hosts, _, _ = vaulted
    asked: list[str] = []
    monkeypatch.setattr(inventory, "_interactive", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": asked.append(prompt) or PASSWORD)
    assert [h.name for h in load_inventory(hosts)] == PRODUCTION_HOSTS
    assert asked == ["Vault password: "]


def test_furet_hosts_and_fab_status_read_it_with_the_password(
        vaulted: tuple[Path, Path, Path]) -> None:
    hosts, right, wrong = vaulted
    for args in ([str(BIN / "furet"), "hosts", "-i", str(hosts)],
                 [str(BIN / "fab"), "status", "-i", str(hosts), "--on"]):
        name = "furet" if args[0].endswith("furet") else "fab status"
        # without: one line, no traceback, no password
        missing = _run([*args, "no-such-host"])
        assert missing.returncode == 2
        assert missing.stderr.strip().splitlines() == [
            f"{name}: error: inventory {hosts}: {hosts.parent}/group_vars/all/vault.yml is "
            "vault-encrypted and no vault password was given: set ANSIBLE_VAULT_PASSWORD_FILE, "
            "or pass --vault-password-file FILE (or run in a terminal to be asked)"], \
            missing.stderr
        # a wrong one
        bad = _run([*args, "no-such-host", "--vault-password-file", str(wrong)])
        assert bad.returncode == 2 and bad.stderr.strip().endswith(
            f"the vault password given does not decrypt {hosts.parent}/group_vars/all/"
            "vault.yml"), bad.stderr
        # the right one, by option and by Ansible's own variable: the inventory is read (the
        # error is the pattern's, which names no host: nothing is contacted)
        for extra, env in ((["--vault-password-file", str(right)], None),
                           ([], {"ANSIBLE_VAULT_PASSWORD_FILE": str(right)})):
            read = _run([*args, "no-such-host", *extra], env)
            assert read.returncode == 2, read.stderr
            assert read.stderr.strip().endswith("no host or group named no-such-host"), \
                read.stderr
            assert "s3cret-value" not in read.stdout + read.stderr
