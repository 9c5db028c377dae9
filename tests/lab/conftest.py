"""The lab for the tests: a fresh lab for the session, removed at the end.

Everything under tests/lab/ runs against real Debian hosts (podman containers with
systemd and sshd) reached over SSH, exactly as Ansible and Fabric reach OVH servers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from migration.lab.config import LabConfig, load_lab_config
from tests.helpers import REPO, PlaybookRun, furet, run_playbook

# Lab tests share one lab and run in this order: the smoke test provisions it, the fault
# tests break and recover it, the molecule scenarios use their own containers.
_MODULE_ORDER = [
    # The rehearsal first: test_lab_smoke then kills legacy1 to show that `lab up`
    # recreates it (bare), and no later module needs a provisioned legacy1.
    "test_migration_rehearsal", "test_lab_smoke", "test_galera_faults", "test_cassandra_faults",
    "test_etl_runner", "test_molecule_scenarios",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    lab_dir = str(REPO / "tests" / "lab")

    def key(item: pytest.Item) -> int:
        if not str(item.path).startswith(lab_dir):
            return -1
        stem = item.path.stem
        return _MODULE_ORDER.index(stem) if stem in _MODULE_ORDER else len(_MODULE_ORDER)

    for item in items:
        if str(item.path).startswith(lab_dir):
            item.add_marker(pytest.mark.lab)
    items.sort(key=key)  # stable: keeps the order inside each module


@pytest.fixture(scope="session")
def lab() -> Iterator[LabConfig]:
    """Remove any lab left behind, start a new one, and remove it after the session.

    For debugging only: FURET_REUSE_LAB=1 keeps a running lab instead of starting anew,
    FURET_KEEP_LAB=1 leaves it running at the end. CI sets neither.
    """
    if not os.environ.get("FURET_REUSE_LAB"):
        down = furet("lab", "down")
        assert down.returncode == 0, down.stderr
    started = time.monotonic()
    up = furet("lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\n[lab] fresh lab up in {time.monotonic() - started:.1f} s\n{up.stdout}")
    yield load_lab_config(REPO)
    if os.environ.get("FURET_KEEP_LAB"):
        return
    down = furet("lab", "down")
    assert down.returncode == 0, down.stderr


@dataclass(frozen=True)
class ProvisionedLab:
    config: LabConfig
    first_site_run: PlaybookRun


@pytest.fixture(scope="session")
def provisioned_lab(lab: LabConfig) -> ProvisionedLab:
    """The lab after one run of playbooks/site.yml (the smoke test checks that run)."""
    run = run_playbook("site.yml")
    assert run.returncode == 0, run.output[-6000:]
    return ProvisionedLab(lab, run)
