"""The cutover engine's hosts, over SSH with Fabric (the same settings as Ansible).

Each remote ``furet`` command prints one JSON document as its last line; its other output
(progress) is kept for the error message. Commands run in a pty: when ``fab`` dies (kill
-9), its SSH connections close and the remote commands get SIGHUP and end too, so a
``resume`` never races a step still running from the killed run (a round's flow lock of a
dead process on the same host is taken over at once).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migration.errors import FuretError
from migration.fabric_tasks import furet_command
from migration.inventory import InventoryHost, load_inventory
from migration.remote import connection_for

ETL_GROUP = "etl"


def last_json(output: str) -> Any:
    """The JSON document that ends ``output`` (one line, or pretty-printed over several;
    ``null`` included); lines before it (progress) are ignored."""
    lines = output.replace("\r", "").rstrip().splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith(("{", "[")) or lines[start].strip() == "null":
            try:
                return json.loads("\n".join(lines[start:]))
            except json.JSONDecodeError:
                continue
    raise FuretError("no JSON result in the command's output")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# the remote side's terminal (a pty, see above) is not a person's: no colours, no animation
REMOTE_ENV = {"NO_COLOR": "1", "TERM": "dumb"}


def _last_line(output: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", output.replace("\r", "")).splitlines()
             if line.strip()]
    return lines[-1] if lines else "(no output)"


class FabricPlatform:
    def __init__(self, inventory: str) -> None:
        self.inventory = inventory
        self.hosts = load_inventory(inventory)
        self._conns: dict[str, Any] = {}

    def hosts_of(self, group: str) -> list[str]:
        return [h.name for h in self._group(group)]

    def _group(self, group: str) -> list[InventoryHost]:
        return [h for h in self.hosts if group in h.groups or h.name == group]

    def _run(self, host: InventoryHost, line: str) -> tuple[int, str]:
        conn = self._conns.get(host.name)
        if conn is None:
            conn = self._conns[host.name] = connection_for(host)
        try:
            result = conn.run(line, pty=True, warn=True, hide=True, env=REMOTE_ENV)
        except Exception as exc:  # SSH failures: one line naming the host
            raise FuretError(f"{host.name}: cannot run the command over SSH "
                             f"({type(exc).__name__}: {exc})") from None
        return int(result.exited), str(result.stdout)

    def _furet(self, host: InventoryHost, args: Sequence[str]) -> Any:
        exited, output = self._run(host, furet_command(args, host.remote))
        if exited != 0:
            raise FuretError(f"{host.name}: {_last_line(output)}")
        return last_json(output)

    def etl_host(self) -> InventoryHost:
        """The ETL host that runs the cutover's steps (the group's first)."""
        hosts = self._group(ETL_GROUP)
        if not hosts:
            raise FuretError(f"inventory {self.inventory}: no host in group {ETL_GROUP}")
        return hosts[0]

    def etl(self, args: Sequence[str]) -> Any:
        return self._furet(self.etl_host(), args)

    def furet_on(self, group: str, args: Sequence[str]) -> dict[str, Any]:
        hosts = self._group(group)
        if not hosts:
            raise FuretError(f"inventory {self.inventory}: no host in group {group}")
        return {h.name: self._furet(h, args) for h in hosts}

    def shell_on(self, group: str, line: str) -> None:
        if group == "local":
            done = subprocess.run(line, shell=True, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise FuretError(f"controller: `{line}` exited {done.returncode}: "
                                 f"{_last_line(done.stdout + done.stderr)}")
            return
        hosts = self._group(group)
        if not hosts:
            raise FuretError(f"inventory {self.inventory}: no host in group {group}")
        for host in hosts:
            exited, output = self._run(host, line)
            if exited != 0:
                raise FuretError(f"{host.name}: `{line}` exited {exited}: {_last_line(output)}")

    def fetch_from_etl(self, remote: str, local_dir: str | Path) -> Path:
        """Copy a file of the ETL host (a report) into ``local_dir`` on the controller."""
        host = self.etl_host()
        conn = self._conns.get(host.name)
        if conn is None:
            conn = self._conns[host.name] = connection_for(host)
        folder = Path(local_dir)
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / Path(remote).name
        conn.get(remote, local=str(local))
        return local

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
