"""Shared test helpers: run furet's playbooks and read their recap."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)"
    r"\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]

    def changed_hosts(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}


def tool_env() -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        CONTAINERS_CONF=str(REPO / "lab" / "containers.conf"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}:{os.environ['PATH']}",
    )


def run_playbook(playbook: str, *args: str, inventory: str | Path | None = None,
                 timeout: int = 1800) -> PlaybookRun:
    cmd = [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / playbook), *args]
    if inventory is not None:
        cmd[1:1] = ["-i", str(inventory)]
    result = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True,
                            timeout=timeout)
    output = result.stdout + result.stderr
    recap = {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in _RECAP.finditer(output)
    }
    return PlaybookRun(result.returncode, output, recap)


def bad_setting_then_fixed(playbook: str, setting: str, check: Callable[[PlaybookRun], T]
                           ) -> tuple[T, PlaybookRun, float]:
    """``playbook -e SETTING`` (a setting no node can start with), its run handed to
    ``check`` (the test's assertions on the failure), then ``playbook`` without it: what
    ``check`` returned, the fixed run and its seconds. When ``check`` fails, the playbook
    still runs without the setting, so that the next tests find the cluster as before; the
    failed check is the test's result, so that run's own outcome is not asserted."""
    broken = run_playbook(playbook, "-e", setting)
    try:
        checked = check(broken)
    except Exception:  # a failed check (not Ctrl-C): put the setting back, then fail
        run_playbook(playbook)
        raise
    started = time.monotonic()
    fixed = run_playbook(playbook)
    return checked, fixed, time.monotonic() - started


def furet(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "furet"), *args], cwd=REPO, env=tool_env(),
                          capture_output=True, text=True, timeout=timeout)


def fab(*args: str, timeout: int = 900, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``fab ARGS`` from the repo (the lab inventory unless ``-i``); ``check``: a failure is
    the test's, with the end of the output."""
    done = subprocess.run([str(BIN / "fab"), *args], cwd=REPO, env=tool_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert not check or done.returncode == 0, \
        f"fab {' '.join(args)}: {(done.stdout + done.stderr)[-6000:]}"
    return done


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` each second until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def load_file_module(name: str, path: str) -> ModuleType:
    """A Python file of the repository that is not a package module (an Ansible filter
    plugin, a role's module), loaded by its path relative to the repository."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
