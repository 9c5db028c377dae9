"""Every data file of the `migration` package goes into the wheel the ETL hosts install
(etl_runner builds it from pyproject.toml): a file left out works from the repository and
fails on the hosts (as the cutover's runbook.yml once did)."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.helpers import REPO


def test_every_data_file_of_the_package_is_in_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["migration"]
    root = REPO / "migration"
    data = [p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "no data file found: the test looks in the wrong place"
    left_out = [f for f in data if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert left_out == [], f"add to [tool.setuptools.package-data] in pyproject.toml: {left_out}"
