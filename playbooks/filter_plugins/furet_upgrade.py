"""Filters for the upgrade playbooks, from furet's one place for upgrade rules
(migration/upgrade.py): a refusal comes back as a reason for the play's assert to print in
one line, never as a template error.

    {{ {'cassandra1': ['5.0.8', 'rbx']} | cassandra_upgrade_plan('5.0.9', ['rbx']) }}
        -> {'refused': '', 'order': ['cassandra1'], 'done': [], ...}
    {{ {'cassandra1': '5.0.8', 'cassandra2': '5.0.9'} | furet_mixed_versions('repair') }}
        -> 'repair is refused while the nodes run different versions (...)'
    {{ '1:10.11.19-0+deb12u1' | furet_upstream_version }} -> '10.11.19'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from migration.errors import FuretError
from migration.upgrade import (
    ist_estimate,
    plan_cassandra_upgrade,
    plan_galera_upgrade,
    refuse_mixed_versions,
    removed_options,
    upstream_version,
)


def cassandra_upgrade_plan(nodes: Mapping[str, Sequence[str]], target: str,
                           dc_order: Sequence[str] = (),
                           allow_prerelease: bool = False) -> dict[str, Any]:
    try:
        plan = plan_cassandra_upgrade({h: (str(v[0]), str(v[1])) for h, v in nodes.items()},
                                      str(target), list(dc_order or ()),
                                      allow_prerelease=bool(allow_prerelease))
    except FuretError as exc:
        return {"refused": str(exc)}
    return {"refused": "", **plan.as_dict()}


def galera_upgrade_plan(nodes: Mapping[str, str], target: str,
                        sst_method: str = "rsync") -> dict[str, Any]:
    try:
        plan = plan_galera_upgrade({h: str(v) for h, v in nodes.items()}, str(target),
                                   str(sst_method))
    except FuretError as exc:
        return {"refused": str(exc)}
    return {"refused": "", **plan.as_dict()}


def galera_removed_options(options: Sequence[str], target: str) -> list[str]:
    """``my_print_defaults --mysqld`` lines -> the options the target removed, one line each
    (a bad target version is the plan's refusal, not this filter's)."""
    try:
        return removed_options([str(o) for o in options], str(target))
    except FuretError:
        return []


def galera_ist_estimate(write_bytes_per_s: float, downtime_s: float, gcache_bytes: int,
                        datadir_bytes: int, sst_bytes_per_s: float) -> dict[str, Any]:
    found = ist_estimate(float(write_bytes_per_s), float(downtime_s), int(gcache_bytes),
                         int(datadir_bytes), float(sst_bytes_per_s))
    return {"ist": found.ist, "message": found.message}


def furet_mixed_versions(versions: Mapping[str, str], what: str) -> str:
    try:
        refuse_mixed_versions({h: str(v) for h, v in versions.items()}, what)
    except FuretError as exc:
        return str(exc)
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cassandra_upgrade_plan": cassandra_upgrade_plan,
                "galera_upgrade_plan": galera_upgrade_plan,
                "galera_removed_options": galera_removed_options,
                "galera_ist_estimate": galera_ist_estimate,
                "furet_mixed_versions": furet_mixed_versions,
                "furet_upstream_version": upstream_version}
