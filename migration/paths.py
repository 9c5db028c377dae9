"""Where furet's files live, relative to the repository (or an installed copy)."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The furet checkout: FURET_HOME if set, else the parent of this package."""
    env = os.environ.get("FURET_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Untracked build products: the lab key, the Cassandra distribution."""
    return repo_root() / ".cache"


# Reports hold personal data (rows that differ, acknowledged writes): owner and group only.
REPORT_MODE = 0o640


def write_report_file(path: Path, text: str) -> None:
    """Write a report file with mode REPORT_MODE, whatever the umask and over an older
    file's mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, REPORT_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, REPORT_MODE)

