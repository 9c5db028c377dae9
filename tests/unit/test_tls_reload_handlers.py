"""The TLS reload handlers of the MariaDB roles, "Reload galera TLS" (mariadb_galera) and
"Reload legacy mysql TLS" (legacy_mysql): FLUSH SSL after new certificate files, run on
this machine with stand-ins for systemctl and the mariadb client on PATH: a
failed FLUSH SSL on a running server fails the handler with one line naming the host; a
stopped server has nothing to reload (it reads the files when it starts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

ROLES = {"mariadb_galera": ("galera1", "Reload galera TLS"),
         "legacy_mysql": ("legacy1", "Reload legacy mysql TLS")}
FLUSH_ERROR = "ERROR 2026 (HY000): SSL connection error: cannot load certificate"


@pytest.fixture(params=sorted(ROLES))
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(tmp_path: Path, role: str, *, active: bool,  # type: ignore[no-untyped-def]
         flush_ok: bool):
    host, handler = ROLES[role]
    role_dir = REPO / "roles" / role
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(
        f"#!/bin/sh\necho \"systemctl $*\" >> {calls}\n"
        f"[ \"$1 $2\" = 'is-active --quiet' ] && exit {0 if active else 3}\nexit 1\n")
    (bin_dir / "mariadb").write_text(
        f"#!/bin/sh\necho \"mariadb $*\" >> {calls}\n"
        + ("exit 0\n" if flush_ok else f"echo '{FLUSH_ERROR}' >&2\nexit 1\n"))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    if (role_dir / "library").is_dir():
        (tmp_path / "library").symlink_to(role_dir / "library")   # the role's own modules
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {host: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = tmp_path / "handler.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Handler", "hosts": host, "gather_facts": False,
        "vars_files": [str(role_dir / "defaults" / "main.yml"),
                       str(role_dir / "vars" / "main.yml")],
        "environment": {"PATH": f"{bin_dir}:/usr/bin:/bin"},
        "tasks": [{"name": "New files", "ansible.builtin.debug": {"msg": "new"},
                   "changed_when": True, "notify": handler}],
        "handlers": [{"ansible.builtin.import_tasks": str(role_dir / "handlers" / "main.yml")}],
    }]))
    run = run_playbook(str(playbook), inventory=inventory)
    return run, calls.read_text() if calls.exists() else ""


def test_a_running_server_reloads_its_certificates(tmp_path: Path, role: str) -> None:
    run, calls = _run(tmp_path, role, active=True, flush_ok=True)
    assert run.returncode == 0, run.output[-3000:]
    assert "mariadb --protocol=socket -e FLUSH SSL" in calls


def test_a_failed_reload_on_a_running_server_fails_in_one_line(tmp_path: Path, role: str) -> None:
    run, _ = _run(tmp_path, role, active=True, flush_ok=False)
    assert run.returncode != 0
    said = " ".join(run.output.split())
    assert (f"host {ROLES[role][0]}: FLUSH SSL failed on the running mariadb ({FLUSH_ERROR}): "
            "it still serves its previous certificates" in said), said[-3000:]


@pytest.mark.parametrize("flush_ok", [True, False])
def test_a_stopped_server_has_nothing_to_reload(tmp_path: Path, role: str, flush_ok: bool) -> None:
    run, calls = _run(tmp_path, role, active=False, flush_ok=flush_ok)
    assert run.returncode == 0, run.output[-3000:]
    assert "mariadb" not in calls.replace("systemctl is-active --quiet mariadb", "")
    assert run.recap[ROLES[role][0]]["changed"] == 1      # the notifying task only
