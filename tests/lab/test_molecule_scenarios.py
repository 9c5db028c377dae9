"""Every molecule scenario runs in full: create, converge, idempotence, verify, destroy.

`make molecule` (and `make soak`) runs them, not `make test`: 16 minutes on the build
machine, for what the lab tests already prove on the whole platform (site.yml converges,
then a second run changes nothing; each role's operations on real hosts).

Each scenario lives in molecule/<name>/ with its own podman network, and uses the lab
base image (localhost/furet-lab-base:latest), built here if needed.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.helpers import BIN, REPO, furet, tool_env

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


@pytest.fixture(scope="module")
def lab_image() -> None:
    built = furet("lab", "image", timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(lab_image: None, scenario: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO,
        env=dict(tool_env(), ANSIBLE_FORCE_COLOR="0", NO_COLOR="1"),
        capture_output=True, text=True, timeout=1800,
    )
    output = result.stdout + result.stderr
    print(f"\n[molecule] {scenario}: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, output[-6000:]
    assert "idempotence" in output
