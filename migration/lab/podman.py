"""Run podman with the repository's containers.conf (runc, cgroupfs, ulimits)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from migration.errors import FuretError


class Podman:
    def __init__(self, containers_conf: Path) -> None:
        self.env = dict(os.environ, CONTAINERS_CONF=str(containers_conf))

    def run(self, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float | None = 300) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(
                ["podman", *args], env=self.env, capture_output=True, text=True,
                timeout=timeout, input=input.decode() if input else None,
            )
        except FileNotFoundError as exc:
            raise FuretError("podman is not installed: run `make deps`") from exc
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise FuretError(f"podman {args[0]} {args[1] if len(args) > 1 else ''}: "
                             f"{detail[-1] if detail else 'exit ' + str(result.returncode)}")
        return result

    def exists(self, kind: str, name: str) -> bool:
        """kind is 'container', 'network' or 'image'."""
        return self.run(kind, "exists", name, check=False).returncode == 0

    def inspect(self, kind: str, name: str) -> dict | None:
        result = self.run(kind, "inspect", name, check=False)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)
        return data[0] if data else None
