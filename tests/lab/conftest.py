"""The lab for the tests, and the states the lab test modules declare they need.

Everything under tests/lab/ runs against real Debian hosts (podman containers with
systemd and sshd) reached over SSH, exactly as Ansible and Fabric reach OVH servers.

No module depends on another having run before it: each asks, through fixtures, for the
state it needs, and each fixture checks that state in a few seconds and converges it with
the playbooks (idempotent) only when it is not there. Any module runs alone
(`pytest tests/lab/X.py`), on a fresh lab or on one a previous session left behind.

- ``lab``: the hosts are up; a fresh lab for the session (FURET_REUSE_LAB=1 keeps one).
- ``provisioned_lab``: playbooks/site.yml ran once in this session: the converge.
- ``legacy_provisioned``, ``galera_healthy``, ``cassandra_healthy``, ``etl_provisioned``:
  that part of the platform is healthy when the module starts. A module before may have
  broken it (crashed nodes, a recreated host): then only that part is converged again,
  never the whole site.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import yaml

from migration.inventory import InventoryHost
from migration.lab.config import LabConfig, load_lab_config
from tests.helpers import REPO, PlaybookRun, furet, run_playbook
from tests.lab.galera_client import node_shell

GALERA = ("galera1", "galera2", "galera3")
CASSANDRA = ("cassandra1", "cassandra2", "cassandra3")
# HAProxy's admin socket on etl1: the haproxy_galera role's default (the lab keeps it).
HAPROXY_SOCKET = yaml.safe_load((REPO / "roles" / "haproxy_galera" / "defaults" / "main.yml")
                                .read_text())["haproxy_galera_stats_socket"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    lab_dir = str(REPO / "tests" / "lab")
    for item in items:
        if str(item.path).startswith(lab_dir):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabConfig]:
    """Remove any lab left behind, start a new one, and remove it after the session.

    For debugging only: FURET_REUSE_LAB=1 keeps a running lab instead of starting anew,
    FURET_KEEP_LAB=1 leaves it running at the end. CI sets neither.
    """
    if not os.environ.get("FURET_REUSE_LAB"):
        down = furet("lab", "down")
        assert down.returncode == 0, down.stderr
    started = time.monotonic()
    up = furet("lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\n[lab] lab up in {time.monotonic() - started:.1f} s\n{up.stdout}")
    yield load_lab_config(REPO)
    if os.environ.get("FURET_KEEP_LAB"):
        return
    down = furet("lab", "down")
    assert down.returncode == 0, down.stderr


@dataclass(frozen=True)
class ProvisionedLab:
    config: LabConfig
    first_site_run: PlaybookRun

    def host(self, name: str) -> InventoryHost:
        return next(h for h in self.config.hosts if h.name == name)


def _converge(playbook: str, *args: str) -> PlaybookRun:
    started = time.monotonic()
    run = run_playbook(playbook, *args)
    print(f"\n[lab] {playbook} {' '.join(args)}: {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, run.output[-6000:]
    return run


@pytest.fixture(scope="session")
def provisioned_lab(lab: LabConfig) -> ProvisionedLab:
    """The lab after one run of playbooks/site.yml in this session (the smoke test checks
    that run). On a lab a previous session left with a crashed Galera cluster, site.yml
    refuses to guess and names the recovery playbook: recover, then converge again."""
    run = run_playbook("site.yml")
    if run.returncode != 0 and "playbooks/galera_recover.yml" in run.output:
        _converge("galera_recover.yml")
        run = run_playbook("site.yml")
    assert run.returncode == 0, run.output[-6000:]
    return ProvisionedLab(lab, run)


def _ensure(what: str, problems: Callable[[], list[str]], repair: Callable[[list[str]], None]
            ) -> None:
    """Check a part of the platform; when a test before broke it, repair it and check again."""
    found = problems()
    if not found:
        return
    print(f"\n[lab] {what} is not healthy ({'; '.join(found)}): converging it again")
    repair(found)
    still = problems()
    assert not still, f"{what} still not healthy after converging it again: {still}"


def _sh(host: InventoryHost, command: str) -> str:
    return node_shell(host, command, warn=True)


# -- legacy1: the MariaDB stand-in of the legacy master, with furet's user -----------------

def _legacy_problems(lab: ProvisionedLab) -> list[str]:
    out = _sh(lab.host("legacy1"), "systemctl is-active mariadb && mariadb -N -s -e "
                                   "\"SELECT COUNT(*) > 0 FROM mysql.user WHERE User = 'furet'\"")
    return [] if out.split() == ["active", "1"] else [f"legacy1: {out or 'no server'}"]


@pytest.fixture(scope="module")
def legacy_provisioned(provisioned_lab: ProvisionedLab) -> ProvisionedLab:
    """legacy1 serves MySQL with furet's user (test_lab_smoke recreates legacy1 bare)."""
    _ensure("legacy1", lambda: _legacy_problems(provisioned_lab),
            lambda _: _converge("site.yml", "--limit", "legacy1"))
    return provisioned_lab


# -- Galera: three nodes Synced in one Primary component, every one UP in HAProxy ----------

_WSREP = ("mariadb -N -s -e \"SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME) "
          "FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN "
          "('WSREP_CLUSTER_SIZE', 'WSREP_CLUSTER_STATUS', 'WSREP_LOCAL_STATE_COMMENT')\"")


def _galera_nodes_problems(lab: ProvisionedLab) -> list[str]:
    seen = {name: _sh(lab.host(name), _WSREP) for name in GALERA}
    return [f"{n}: {s or 'server down'}" for n, s in seen.items() if s != "3,Primary,Synced"]


def _haproxy_problems(lab: ProvisionedLab) -> list[str]:
    # `show stat` CSV: pxname, svname, ..., status (18th field): UP, DOWN, MAINT...
    stat = _sh(lab.host("etl1"), f"echo 'show stat' | socat stdio {HAPROXY_SOCKET}")
    status = {f[1]: f[17] for f in (line.split(",") for line in stat.splitlines())
              if len(f) > 17 and f[1] in GALERA}
    return [f"haproxy on etl1: {n} {status.get(n, 'absent')}" for n in GALERA
            if not status.get(n, "").startswith("UP")]


def _galera_problems(lab: ProvisionedLab) -> list[str]:
    nodes = _galera_nodes_problems(lab)
    # HAProxy's view follows the nodes' health checks: only judge it on a healthy cluster.
    return nodes or _haproxy_problems(lab)


def _repair_galera(lab: ProvisionedLab) -> None:
    if _galera_nodes_problems(lab):
        # Whatever a test left (crashed, stopped or non-Primary nodes): the recovery rejoins
        # the nodes out or bootstraps from the most advanced one; galera.yml converges the rest.
        _converge("galera_recover.yml")
        _converge("galera.yml")
    if any("MAINT" in p for p in _haproxy_problems(lab)):
        # A node left drained by an interrupted rolling restart: a reload starts from the
        # configuration, where every server is enabled.
        _sh(lab.host("etl1"), "systemctl reload haproxy")
    deadline = time.monotonic() + 30
    while _haproxy_problems(lab) and time.monotonic() < deadline:
        time.sleep(2)  # health checks: rise 2 x 1 s


@pytest.fixture(scope="module")
def galera_healthy(provisioned_lab: ProvisionedLab) -> ProvisionedLab:
    """Every Galera node Synced in a Primary component of 3, each UP in HAProxy on etl1."""
    _ensure("the Galera cluster", lambda: _galera_problems(provisioned_lab),
            lambda _: _repair_galera(provisioned_lab))
    return provisioned_lab


# -- Cassandra: three nodes UN in every node's view ----------------------------------------

def _cassandra_problems(lab: ProvisionedLab) -> dict[str, str]:
    """Nodes that are down, or not UN in another node's view (drained, stuck)."""
    views = {name: set(re.findall(r"(?m)^UN\s+(\S+)",
                                  _sh(lab.host(name), "nodetool status 2>/dev/null || true")))
             for name in CASSANDRA}
    found = {}
    for name in CASSANDRA:
        address = lab.host(name).address
        if not views[name]:
            found[name] = "nodetool does not answer"
        elif missing := [v for v in CASSANDRA if views[v] and address not in views[v]]:
            found[name] = f"not UN in the view of {', '.join(missing)}"
    return found


def _repair_cassandra(lab: ProvisionedLab, broken: list[str]) -> None:
    # A node that is down or not UN (drained, stuck): stop it, so that cassandra.yml starts
    # it again the way it forms a ring, one node at a time, waiting for UN.
    for name in broken:
        _sh(lab.host(name), "systemctl stop cassandra")
    _converge("cassandra.yml")


@pytest.fixture(scope="module")
def cassandra_healthy(provisioned_lab: ProvisionedLab) -> ProvisionedLab:
    """Every Cassandra node UN in every node's view."""
    broken: dict[str, str] = {}

    def problems() -> list[str]:
        broken.clear()
        broken.update(_cassandra_problems(provisioned_lab))
        return [f"{n}: {p}" for n, p in broken.items()]

    _ensure("the Cassandra ring", problems,
            lambda _: _repair_cassandra(provisioned_lab, list(broken)))
    return provisioned_lab


# -- etl1: furet installed with its configuration ------------------------------------------

def _etl_problems(lab: ProvisionedLab) -> list[str]:
    out = _sh(lab.host("etl1"), "test -r /etc/furet/furet.yml && furet --version")
    return [] if out.startswith("furet, version ") else [f"etl1: {out or 'no furet'}"]


@pytest.fixture(scope="module")
def etl_provisioned(provisioned_lab: ProvisionedLab) -> ProvisionedLab:
    """furet and /etc/furet/furet.yml on etl1 (role etl_runner)."""
    _ensure("furet on etl1", lambda: _etl_problems(provisioned_lab),
            lambda _: _converge("site.yml", "--limit", "etl1"))
    return provisioned_lab


# -- app1: the application endpoint and the lab's web app ----------------------------------

def _app_problems(lab: ProvisionedLab) -> list[str]:
    out = _sh(lab.host("app1"), "systemctl is-active haproxy && test -r /etc/furet/furet.yml "
                                "&& furet endpoint status --json >/dev/null && echo ready")
    return [] if out.endswith("ready") else [f"app1: {out or 'no endpoint'}"]


@pytest.fixture(scope="module")
def app_provisioned(provisioned_lab: ProvisionedLab) -> ProvisionedLab:
    """HAProxy (role app_endpoint) and furet with the web app's account on app1."""
    _ensure("the application endpoint on app1", lambda: _app_problems(provisioned_lab),
            lambda _: _converge("site.yml", "--limit", "app1"))
    return provisioned_lab


@pytest.fixture(scope="module")
def platform_ready(legacy_provisioned: ProvisionedLab, galera_healthy: ProvisionedLab,
                   cassandra_healthy: ProvisionedLab, etl_provisioned: ProvisionedLab,
                   app_provisioned: ProvisionedLab) -> ProvisionedLab:
    """Everything a migration needs: legacy1, Galera behind HAProxy, Cassandra, furet, the
    application endpoint."""
    return etl_provisioned


# -- backup1: backups the cutover's preflight accepts -----------------------------------------

def _backup_problems(lab: ProvisionedLab) -> list[str]:
    """The kinds without a backup taken in the last hour whose restore test passed."""
    out = node_shell(lab.host("galera1"), "mariadb -N -s -e \"SELECT kind FROM furet.backups "
                     "WHERE restore_result = 'passed' AND created_at > UTC_TIMESTAMP() - "
                     "INTERVAL 1 HOUR\"", warn=True)
    return [f"no passing {k} backup" for k in ("legacy", "galera", "cassandra")
            if k not in out.split()]


@pytest.fixture(scope="module")
def backups_ready(platform_ready: ProvisionedLab) -> ProvisionedLab:
    """A recent backup of each kind, restore-tested (playbooks/backup.yml, restore_test.yml)."""
    def take(_: list[str]) -> None:
        # a Cassandra backup needs the flows' tables: a fresh lab (this test first) has none
        node_shell(platform_ready.host("etl1"), "furet --config /etc/furet/furet.yml "
                                                "cassandra init")
        _converge("backup.yml")
        _converge("restore_test.yml")

    _ensure("backups the cutover accepts", lambda: _backup_problems(platform_ready), take)
    return platform_ready


@pytest.fixture(scope="module")
def seed(request: pytest.FixtureRequest) -> int:
    """The seed of a module's random fault points, printed so that FURET_SEED replays it."""
    value = int(os.environ.get("FURET_SEED") or random.SystemRandom().randrange(10**6))
    what = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", " ")
    print(f"\n[{what}] seed {value} (FURET_SEED={value} replays it)")
    return value
