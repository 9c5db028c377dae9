"""Which version upgrades furet runs and which it refuses, in one place: the rules behind
``playbooks/cassandra_upgrade.yml`` and the mixed-version refusals (filter plugin
``playbooks/filter_plugins/furet_upgrade.py``). Each refusal is one line with its reason.

Cassandra:

- forward only: a node newer than the target refuses the upgrade (a node cannot read the
  SSTables and system tables a newer version wrote; the way back is the upgrade snapshot);
- one major at a time: every node must run the target's major or the one before it
  (Cassandra supports 4.0/4.1 -> 5.0, never 3.x -> 5.0);
- a pre-release target (alpha, beta, rc) only when asked for;
- the nodes go one at a time, DC by DC in the order given (every DC of the ring, once);
- across a major, the SSTables are rewritten afterwards (``nodetool upgradesstables``) and
  ``storage_compatibility_mode`` is staged when the target is 5.0 coming from 4.x:
  CASSANDRA_4 while versions are mixed, then UPGRADING, then NONE, a rolling restart each.
- repair (and furet's verify --repair through it) is refused while versions are mixed:
  streaming between versions is not supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from migration.errors import FuretError

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?:-(alpha|beta|rc)(\d*))?", re.IGNORECASE)
_PRE_ORDER = {"alpha": 0, "beta": 1, "rc": 2}


@dataclass(frozen=True, order=True)
class Version:
    """A release number as Cassandra's ``nodetool version`` or MariaDB's ``@@version``
    print it; a pre-release sorts before its release (5.0.0-rc1 < 5.0.0)."""

    major: int
    minor: int
    patch: int
    stage: tuple[int, int] = (3, 0)   # (alpha 0 | beta 1 | rc 2 | release 3, its number)
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.search(str(text))
        if match is None:
            raise FuretError(f"{text!r} is not a version number (like 5.0.9)")
        major, minor, patch, pre, number = match.groups()
        stage = (_PRE_ORDER[pre.lower()], int(number or 0)) if pre else (3, 0)
        return cls(int(major), int(minor), int(patch or 0), stage, match.group(0))

    @property
    def prerelease(self) -> bool:
        return self.stage[0] < 3

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


# storage_compatibility_mode steps when a ring comes to 5.0 from 4.x (Cassandra 5.0's
# NEWS.txt): each is one rolling restart, after every node runs 5.0
STORAGE_COMPATIBILITY_FROM_4 = ("CASSANDRA_4", "UPGRADING", "NONE")


@dataclass(frozen=True)
class CassandraUpgrade:
    target: str
    order: tuple[str, ...]          # the nodes still to upgrade, one at a time, in this order
    done: tuple[str, ...]           # already at the target (a resumed upgrade skips them)
    major_change: bool              # some node is on the major before: upgradesstables after
    storage_compatibility: tuple[str, ...]   # modes to stage (empty: nothing to stage)

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "order": list(self.order), "done": list(self.done),
                "major_change": self.major_change,
                "storage_compatibility": list(self.storage_compatibility)}


def plan_cassandra_upgrade(nodes: Mapping[str, tuple[str, str]], target: str,
                           dc_order: Sequence[str] = (), *,
                           allow_prerelease: bool = False) -> CassandraUpgrade:
    """``nodes``: host -> (the version it runs, its DC), in inventory order. The hosts to
    upgrade in order, or FuretError naming what is refused and why."""
    if not nodes:
        raise FuretError("cassandra upgrade: no node in the group")
    wanted = Version.parse(target)
    if wanted.prerelease and not allow_prerelease:
        raise FuretError(f"cassandra_target_version {wanted} is a pre-release: refused "
                         "unless cassandra_upgrade_allow_prerelease is true")
    running = {host: Version.parse(version) for host, (version, _) in nodes.items()}
    for host, version in running.items():
        if version > wanted:
            raise FuretError(f"{host} runs Cassandra {version}, newer than the target {wanted}: "
                             "downgrades are refused (a node cannot read what a newer version "
                             "wrote); the way back is the upgrade's snapshot")
        if version.major < wanted.major - 1:
            raise FuretError(f"{host} runs Cassandra {version}: {wanted} skips major "
                             f"{wanted.major - 1}; upgrade every node to the newest "
                             f"{wanted.major - 1}.x first")
    dcs = list(dict.fromkeys(dc for _, dc in nodes.values()))
    order = list(dc_order) or dcs
    unknown = [dc for dc in order if dc not in dcs]
    if unknown or sorted(order) != sorted(dcs):
        raise FuretError(f"cassandra_upgrade_dc_order {list(dc_order)}: must name each DC of "
                         f"the ring once ({', '.join(dcs)})")
    todo = tuple(host for dc in order for host, (_, node_dc) in nodes.items()
                 if node_dc == dc and running[host] != wanted)
    done = tuple(host for host in nodes if running[host] == wanted)
    major_change = any(v.major < wanted.major for v in running.values())
    staged = STORAGE_COMPATIBILITY_FROM_4 if major_change and wanted.major == 5 else ()
    return CassandraUpgrade(str(wanted), todo, done, major_change, staged)


def refuse_mixed_versions(versions: Mapping[str, str], what: str) -> None:
    """``what`` (e.g. "repair") is refused while the nodes run different versions."""
    parsed = {host: Version.parse(v) for host, v in versions.items()}
    if len(set(parsed.values())) > 1:
        listed = ", ".join(f"{host} {v}" for host, v in parsed.items())
        raise FuretError(f"{what} is refused while the nodes run different versions ({listed}): "
                         "finish the upgrade first (streaming between versions is not "
                         "supported)")
