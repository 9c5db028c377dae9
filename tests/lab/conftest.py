"""The lab for the tests: a fresh lab for the session, removed at the end.

Everything under tests/lab/ runs against real Debian hosts (podman containers with
systemd and sshd) reached over SSH, exactly as Ansible and Fabric reach OVH servers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from migration.lab.config import LabConfig, load_lab_config
from tests.helpers import REPO, furet


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(str(REPO / "tests" / "lab")):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabConfig]:
    """Remove any lab left behind, start a new one, and remove it after the session."""
    down = furet("lab", "down")
    assert down.returncode == 0, down.stderr
    started = time.monotonic()
    up = furet("lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\n[lab] fresh lab up in {time.monotonic() - started:.1f} s\n{up.stdout}")
    yield load_lab_config(REPO)
    down = furet("lab", "down")
    assert down.returncode == 0, down.stderr
