"""Filters that give furet's playbooks the same remote command lines as ``fab``, from the
command contract (migration/contract.py) and the etl_runner role's paths
(migration.inventory.RemotePaths), so a playbook never spells a furet flag by hand.

    {{ {'flow': 'runtime', 'json': true} | furet_argv('verify') }}
        -> ['verify', '--flow', 'runtime', '--json']   (validated like click would)
    {{ {'etl_runner_config_dir': '/srv/furet'} | furet_remote }}
        -> {'bin': 'furet', 'config': '/srv/furet/furet.yml', 'reports': '/var/lib/furet/reports'}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from migration.contract import argv
from migration.errors import FuretError
from migration.inventory import RemotePaths


def furet_argv(values: Mapping[str, Any], command: str) -> list[str]:
    try:
        return argv(command, dict(values))
    except FuretError as exc:
        raise AnsibleFilterError(f"furet {command}: {exc}") from None


def furet_remote(variables: Mapping[str, Any]) -> dict[str, str]:
    return dataclasses.asdict(RemotePaths.from_vars(dict(variables)))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"furet_argv": furet_argv, "furet_remote": furet_remote}
