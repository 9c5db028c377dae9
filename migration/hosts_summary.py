"""`furet hosts`: what each inventory host is, read over SSH with Fabric.

One short shell probe per host, run in parallel; a host that cannot be reached is
reported with its error instead of failing the whole summary.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from migration.inventory import InventoryHost
from migration.remote import connection_for

# key=value lines, parsed below. chronyc prints the reference and offset of the clock.
_PROBE = r"""
echo "hostname=$(hostname)"
. /etc/os-release; echo "os=$PRETTY_NAME"
echo "tz=$(cat /etc/timezone 2>/dev/null)"
echo "cpus=$(nproc)"
echo "mem_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
echo "chrony=$(systemctl is-active chrony 2>/dev/null)"
echo "ntp_ref=$(chronyc -n tracking 2>/dev/null | awk -F'[()]' '/Reference ID/ {print $2}')"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
"""


@dataclass(frozen=True)
class HostFacts:
    host: InventoryHost
    facts: dict[str, str]
    error: str | None = None


def probe_host(host: InventoryHost) -> HostFacts:
    try:
        with connection_for(host) as conn:
            result = conn.run(_PROBE, hide=True, warn=True)
    except Exception as exc:  # noqa: BLE001  # reported per host, never raised
        return HostFacts(host, {}, f"{type(exc).__name__}: {exc}")
    facts = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return HostFacts(host, facts, None if result.ok else f"probe exit {result.exited}")


def summarise(hosts: list[InventoryHost]) -> list[HostFacts]:
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return list(pool.map(probe_host, hosts))
