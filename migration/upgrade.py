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

MariaDB Galera (``playbooks/galera_upgrade.yml``):

- forward only: a node newer than the target refuses the upgrade (InnoDB's redo log and
  the system tables a newer server wrote cannot be read by an older one);
- one major at a time: MariaDB replicates between mixed versions only across *adjacent*
  major releases (MARIADB_SERIES: 10.11 -> 11.4 -> 11.8), so a rolling upgrade that skips
  one is refused with the path to take instead;
- across a major, the state transfers use rsync while versions are mixed (mariabackup
  cannot prepare an older major's backup: MDEV-27437), and the rendered configuration
  must hold no option the target removed (MARIADB_REMOVED_OPTIONS: some stop the server
  from starting);
- a node rejoins by IST only when the gcache holds the writes of its downtime:
  ``ist_estimate`` says which, and how long an SST would take instead.
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


def upstream_version(package_version: str) -> str:
    """The upstream part of a Debian package version, as MariaDB numbers it (what the pin,
    the downgrade guard and the rollback compare): ``1:10.11.19-0+deb12u1`` -> ``10.11.19``;
    ``''`` (not installed) stays ``''``."""
    text = str(package_version).strip()
    return re.sub(r"[-+~].*$", "", text.split(":", 1)[-1]) if text else ""


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


# MariaDB's long-term releases in order. Galera supports a cluster of mixed versions only
# between adjacent ones ("Galera guarantees mixed-version replication only between adjacent
# major releases", MariaDB's Galera upgrade pages); a short-term release in between (11.0 to
# 11.3, 11.5 to 11.7) counts as its LTS predecessor's neighbour.
MARIADB_SERIES = ((10, 3), (10, 4), (10, 5), (10, 6), (10, 11), (11, 4), (11, 8), (12, 3))

# my.cnf options a series no longer has: name -> (the first series without it, fatal).
# Fatal: the server refuses to start ("unknown variable"); else it warns and ignores it.
# Checked by passing each to Debian 13's mariadbd 11.8.9 (the first series named is the
# one MariaDB's upgrade notes give, else the one checked).
MARIADB_REMOVED_OPTIONS: dict[str, tuple[tuple[int, int], bool]] = {
    "old_alter_table": ((11, 4), True),
    "debug_no_thread_alarm": ((11, 4), True),
    "innodb_change_buffer_max_size": ((11, 4), True),
    "innodb_change_buffering": ((11, 4), False),
    "innodb_defragment": ((11, 4), False),
    "innodb_defragment_fill_factor": ((11, 4), False),
    "innodb_defragment_fill_factor_n_recs": ((11, 4), False),
    "innodb_defragment_frequency": ((11, 4), False),
    "innodb_defragment_n_pages": ((11, 4), False),
    "innodb_defragment_stats_accuracy": ((11, 4), False),
    "max_tmp_tables": ((11, 8), True),
    "date_format": ((11, 8), False),
    "datetime_format": ((11, 8), False),
    "time_format": ((11, 8), False),
    "wsrep_causal_reads": ((11, 8), False),
    "wsrep_load_data_splitting": ((11, 8), False),
}


def _series(version: Version) -> int:
    """The index in MARIADB_SERIES of the LTS series a version belongs to (a short-term
    release belongs to the LTS before it)."""
    index = -1
    for i, series in enumerate(MARIADB_SERIES):
        if (version.major, version.minor) >= series:
            index = i
    if index < 0:
        raise FuretError(f"MariaDB {version} is older than {_name(MARIADB_SERIES[0])}, "
                         "which furet does not upgrade from")
    return index


def _name(series: tuple[int, int]) -> str:
    return f"{series[0]}.{series[1]}"


@dataclass(frozen=True)
class GaleraUpgrade:
    target: str
    order: tuple[str, ...]       # the nodes still to upgrade, one at a time
    done: tuple[str, ...]        # already at the target (a resumed upgrade skips them)
    major_change: bool           # the series changes: rsync SST while mixed, system tables
    path: str                    # one line: "10.11.18 -> 10.11.19, a minor upgrade"

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "order": list(self.order), "done": list(self.done),
                "major_change": self.major_change, "path": self.path}


def plan_galera_upgrade(nodes: Mapping[str, str], target: str,
                        sst_method: str = "rsync") -> GaleraUpgrade:
    """``nodes``: host -> the version it runs (``@@version``), in inventory order;
    ``sst_method``: galera_sst_method. The hosts to upgrade in order, or FuretError naming
    what is refused and why."""
    if not nodes:
        raise FuretError("galera upgrade: no node in the group")
    if not str(target).strip():
        raise FuretError("galera_target_version is empty: give the version to go to "
                         "(-e galera_target_version=10.11.19), or set galera_version")
    wanted = Version.parse(target)
    running = {host: Version.parse(version) for host, version in nodes.items()}
    wanted_series = _series(wanted)
    for host, version in running.items():
        if version > wanted:
            raise FuretError(f"{host} runs MariaDB {version}, newer than the target {wanted}: "
                             "downgrades are refused (an older server cannot read the redo "
                             "log and system tables a newer one wrote); the way back is the "
                             "backup taken before the upgrade")
        if _series(version) < wanted_series - 1:
            between = _name(MARIADB_SERIES[_series(version) + 1])
            steps = " -> ".join([f"{version.major}.{version.minor}"] + [
                _name(s) for s in MARIADB_SERIES[_series(version) + 1:wanted_series + 1]])
            raise FuretError(
                f"{host} runs MariaDB {version}: {wanted} skips {between}, and Galera "
                "replicates between mixed versions only across adjacent major releases "
                f"({steps}); upgrade every node to {between} first, or build a new "
                f"{_name(MARIADB_SERIES[wanted_series])} cluster and move to it with furet's "
                "rounds and the cutover runbook")
    order = tuple(host for host, version in running.items() if version != wanted)
    done = tuple(host for host, version in running.items() if version == wanted)
    major_change = any(_series(v) < wanted_series for v in running.values())
    if major_change and sst_method != "rsync":
        raise FuretError(f"galera_sst_method {sst_method}: a major upgrade needs rsync while "
                         "the versions are mixed (mariadb-backup cannot prepare an older "
                         "major's backup: MDEV-27437); run it with -e galera_sst_method=rsync")
    oldest = min(running.values())
    kind = "a major upgrade" if major_change else "a minor upgrade"
    path = (f"{oldest} -> {wanted}, {kind}" if order
            else f"every node runs {wanted} already")
    return GaleraUpgrade(str(wanted), order, done, major_change, path)


def removed_options(options: Sequence[str], target: str) -> list[str]:
    """The options (as ``my_print_defaults --mysqld`` prints them: ``--name=value``) that the
    target no longer has, each one line with what the server will do. ``loose-`` options are
    ignored by the server when unknown, and left out."""
    wanted_series = _series(Version.parse(target))
    found = []
    for option in options:
        name = option.strip().lstrip("-").split("=", 1)[0].strip().replace("-", "_")
        if not name or name.startswith("loose_"):
            continue
        removed = MARIADB_REMOVED_OPTIONS.get(name)
        if removed is None or _series_index(removed[0]) > wanted_series:
            continue
        effect = ("the server refuses to start with it" if removed[1]
                  else "the server ignores it with a warning")
        found.append(f"{name} (removed in {_name(removed[0])}: {effect})")
    return found


def _series_index(series: tuple[int, int]) -> int:
    return MARIADB_SERIES.index(series)


@dataclass(frozen=True)
class IstEstimate:
    ist: bool
    message: str


def ist_estimate(write_bytes_per_s: float, downtime_s: float, gcache_bytes: int,
                 datadir_bytes: int, sst_bytes_per_s: float) -> IstEstimate:
    """Whether a node down for ``downtime_s`` rejoins by IST: the gcache must hold the
    write-sets written meanwhile (with a margin of 2, since the rate varies); else the
    node takes a full state transfer (SST), whose length is estimated from the datadir."""
    needed = write_bytes_per_s * downtime_s * 2
    held_s = gcache_bytes / write_bytes_per_s if write_bytes_per_s > 0 else float("inf")
    rate = f"{write_bytes_per_s / 1e6:.2f} MB/s"
    if needed <= gcache_bytes:
        held = "more than a day" if held_s > 86400 else f"{held_s:.0f} s"
        return IstEstimate(True, f"the gcache ({gcache_bytes / 2**20:.0f} MiB) holds {held} of "
                                 f"writes at the measured {rate}: a node down for up to "
                                 f"{downtime_s:.0f} s rejoins by IST")
    sst_s = datadir_bytes / sst_bytes_per_s if sst_bytes_per_s > 0 else float("inf")
    return IstEstimate(False, f"the gcache ({gcache_bytes / 2**20:.0f} MiB) holds only "
                              f"{held_s:.0f} s of writes at the measured {rate}, less than "
                              f"twice a node's expected downtime ({downtime_s:.0f} s): each "
                              f"node will take an SST of {datadir_bytes / 2**30:.2f} GiB, about "
                              f"{sst_s:.0f} s at {sst_bytes_per_s / 1e6:.0f} MB/s; raise "
                              f"galera_gcache_size to {_mib(needed)} to rejoin by IST")


def _mib(size: float) -> str:
    return f"{int(size / 2**20) + 1}M"
