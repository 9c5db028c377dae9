"""Filters of the os_update role: apt's simulation and needrestart's batch output, read in
Python rather than in regular expressions spread over the tasks.

    {{ lines | apt_simulation }}
        -> [{'name': 'libssl3', 'old': '3.0.17-1~deb12u2', 'version': '3.0.17-1~deb12u3',
             'archive': 'Debian-Security:12/oldstable-security'}, ...]
    {{ lines | needrestart_kernel }}  -> 0 (unknown) 1 (current) 2 (ABI-compatible upgrade) 3
    {{ units | fnmatch_reject(['furet-clustercheck@*.service']) }}  -> the others
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

# "Inst libssl3 [3.0.17-1~deb12u2] (3.0.17-1~deb12u3 Debian-Security:12/oldstable-security [amd64])"
# "Inst newpkg (1.2-3 Debian:12.12/oldstable [all])"  (a new package: no old version)
_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]*)\] )?"
                   r"\((?P<version>\S+) (?P<archive>[^\[)]*?)\s*(?:\[[^\]]*\])?\)")
_KSTA = re.compile(r"^NEEDRESTART-KSTA:\s*(\d)", re.MULTILINE)


def apt_simulation(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The packages `apt-get --simulate upgrade` would install, one dict each; the archives
    a version comes from are comma-separated in apt's output (kept as they are)."""
    found = []
    for line in lines:
        match = _INST.match(str(line))
        if match:
            found.append({"name": match["name"], "old": match["old"] or "",
                          "version": match["version"], "archive": match["archive"].strip()})
    return found


def needrestart_kernel(output: str) -> int:
    """needrestart -b's NEEDRESTART-KSTA (0 when absent: not installed, or in a container)."""
    match = _KSTA.search(str(output or ""))
    return int(match.group(1)) if match else 0


def fnmatch_reject(names: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The names (units, packages) that match none of the shell patterns."""
    kept = list(patterns)
    return [n for n in names if not any(fnmatch.fnmatchcase(str(n), p) for p in kept)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"apt_simulation": apt_simulation, "needrestart_kernel": needrestart_kernel,
                "fnmatch_reject": fnmatch_reject}
