"""The mariadb_galera role's handler "Reload galera TLS" (FLUSH SSL after new certificate
files), run on this machine with stand-ins for systemctl and the mariadb client on PATH: a
failed FLUSH SSL on a running server fails the handler with one line naming the host; a
stopped server has nothing to reload (it reads the files when it starts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

ROLE = REPO / "roles" / "mariadb_galera"
FLUSH_ERROR = "ERROR 2026 (HY000): SSL connection error: cannot load certificate"


def _run(tmp_path: Path, *, active: bool, flush_ok: bool):  # type: ignore[no-untyped-def]
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
    (tmp_path / "library").symlink_to(ROLE / "library")   # the handlers file's own module
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"galera1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = tmp_path / "handler.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Handler", "hosts": "galera1", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "environment": {"PATH": f"{bin_dir}:/usr/bin:/bin"},
        "tasks": [{"name": "New files", "ansible.builtin.debug": {"msg": "new"},
                   "changed_when": True, "notify": "Reload galera TLS"}],
        "handlers": [{"ansible.builtin.import_tasks": str(ROLE / "handlers" / "main.yml")}],
    }]))
    run = run_playbook(str(playbook), inventory=inventory)
    return run, calls.read_text() if calls.exists() else ""


def test_a_running_server_reloads_its_certificates(tmp_path: Path) -> None:
    run, calls = _run(tmp_path, active=True, flush_ok=True)
    assert run.returncode == 0, run.output[-3000:]
    assert "mariadb --protocol=socket -e FLUSH SSL" in calls


def test_a_failed_reload_on_a_running_server_fails_in_one_line(tmp_path: Path) -> None:
    run, _ = _run(tmp_path, active=True, flush_ok=False)
    assert run.returncode != 0
    assert (f"host galera1: FLUSH SSL failed on the running mariadb ({FLUSH_ERROR}): it still "
            "serves its previous certificates" in " ".join(run.output.split())), run.output[-3000:]


@pytest.mark.parametrize("flush_ok", [True, False])
def test_a_stopped_server_has_nothing_to_reload(tmp_path: Path, flush_ok: bool) -> None:
    run, calls = _run(tmp_path, active=False, flush_ok=flush_ok)
    assert run.returncode == 0, run.output[-3000:]
    assert "mariadb" not in calls.replace("systemctl is-active --quiet mariadb", "")
    assert run.recap["galera1"]["changed"] == 1          # the notifying task only
