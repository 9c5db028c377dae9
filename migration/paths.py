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
