"""What the bench's installs and client tools share. Standard library only: bench.chart
imports it in its own venv too."""

from __future__ import annotations

import subprocess
from typing import Any


def run_or_exit(argv: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``argv`` run with its output captured; a failure ends the bench with one message
    naming ``what`` and the end of the tool's output."""
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"bench: {what} failed ({result.returncode}): "
                         f"{(result.stdout + result.stderr)[-1500:]}")
    return result
