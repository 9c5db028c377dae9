"""Cassandra on the lab's real 3-node ring (cassandra1, cassandra2 in rbx; cassandra3 in gra).

1. playbooks/cassandra.yml forms the ring from bare hosts, and a second run changes nothing.
2. A rolling restart of the whole ring under a continuous write load at QUORUM loses no
   acknowledged write: every key acknowledged is readable at QUORUM afterwards (`make soak`
   only: 8 minutes on the lab's 2 cores).
3. playbooks/cassandra_repair.yml repairs the primary ranges node by node.
4. A setting no node can start with stops at the first node: the others refuse their
   restart and keep serving at QUORUM; the next run with the setting fixed brings the
   ring back (`make soak` only).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from migration.inventory import InventoryHost
from tests.helpers import PlaybookRun, bad_setting_then_fixed, run_playbook
from tests.lab.cassandra_client import (
    ContinuousWriter,
    connect,
    create_table,
    missing_keys,
    node_shell,
)
from tests.lab.conftest import ProvisionedLab

NODES = ("cassandra1", "cassandra2", "cassandra3")


# profile_tasks (ansible.cfg) prints the time elapsed since the start of the run under
# each task header: "... (0:00:01.234)       0:01:23.456 ***".
_ELAPSED = r"\n[^\n]*\(\d+:\d\d:\d\d\.\d+\)\s+(\d+):(\d\d):(\d\d\.\d+)"


def _elapsed_at(output: str, task: str) -> float | None:
    """Seconds into the run when the first task whose header matches ``task`` started."""
    m = re.search(r"TASK \[[^\]]*" + task + r"[^\]]*\][^\n]*" + _ELAPSED, output)
    if m is None:
        return None
    h, mnt, sec = m.groups()
    return int(h) * 3600 + int(mnt) * 60 + float(sec)


def _ring_running(host: InventoryHost) -> bool:
    # is-active exits non-zero for a unit that is not active: that is an answer, not an error.
    return node_shell(host, "systemctl is-active cassandra || true") == "active"


@pytest.fixture(scope="module")
def ring(cassandra_healthy: ProvisionedLab) -> dict:
    """The ring, formed by playbooks/cassandra.yml (by site.yml once it imports it)."""
    hosts = {h.name: h for h in cassandra_healthy.config.hosts}
    if _ring_running(hosts["cassandra1"]):
        # site.yml formed it in this session (the first site run's figures are its own);
        # the test below runs the playbook once more, which must change nothing.
        return {"hosts": hosts, "first_run_seconds": None, "ring_seconds": None,
                "formed_here": False}
    started = time.monotonic()
    run = run_playbook("cassandra.yml")
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.output[-6000:]
    first_start = _elapsed_at(run.output, r"Join \| Start cassandra on")
    formed = _elapsed_at(run.output, r"cassandra : Authentication")
    ring_s = formed - first_start if first_start is not None and formed is not None else None
    return {"hosts": hosts, "first_run_seconds": round(seconds, 1),
            "ring_seconds": ring_s, "formed_here": True}


@pytest.fixture(scope="module")
def session(ring: dict) -> Iterator:
    cluster, sess = connect([ring["hosts"][n].address for n in NODES])
    create_table(sess)
    yield sess
    cluster.shutdown()


def _rss_mib(host: InventoryHost) -> float:
    pid = node_shell(host, "systemctl show -p MainPID --value cassandra")
    kib = node_shell(host, f"awk '/^VmRSS:/ {{print $2}}' /proc/{pid}/status")
    return round(int(kib) / 1024, 1)


def _un_count(host: InventoryHost) -> int:
    return len(re.findall(r"(?m)^UN\s", node_shell(host, "nodetool status")))


def test_ring_forms_and_second_run_changes_nothing(ring: dict, figures) -> None:
    hosts = ring["hosts"]
    for name in NODES:
        assert _un_count(hosts[name]) == 3, f"{name} does not see 3 nodes UN"
    again: PlaybookRun = run_playbook("cassandra.yml")
    assert again.returncode == 0, again.output[-6000:]
    changed = {h: c for h, c in again.changed_hosts().items() if h in NODES}
    assert changed == {}, f"second run changed something: {changed}"
    figures(ring_formed_by="playbooks/cassandra.yml" if ring["formed_here"] else "site.yml",
            cassandra_playbook_seconds=ring["first_run_seconds"],
            # first node started -> last node UN in its own and the seed's view
            ring_formation_seconds=(round(ring["ring_seconds"], 1)
                                    if ring["ring_seconds"] is not None else None),
            rss_mib={n: _rss_mib(hosts[n]) for n in NODES})


@pytest.mark.soak
def test_rolling_restart_under_write_load(ring: dict, session, figures) -> None:
    hosts = ring["hosts"]
    writer = ContinuousWriter(session).start()
    time.sleep(3)
    started = time.monotonic()
    run = run_playbook("cassandra_rolling_restart.yml")
    restart_s = time.monotonic() - started
    time.sleep(3)
    writer.stop()
    assert run.returncode == 0, run.output[-6000:]
    restarted = re.findall(r"TASK \[cassandra : Rolling \| Restart cassandra on (\w+)\]",
                           run.output)
    assert len(restarted) == 3, "every node restarts once"
    assert restarted == list(NODES), "one node at a time, in group order"
    assert len(writer.acked) > 100, "the writer made progress"
    missing = missing_keys(session, writer.acked)
    assert not missing, f"{len(missing)} acknowledged writes not readable at QUORUM"
    for name in NODES:
        assert _un_count(hosts[name]) == 3, f"{name} does not see 3 nodes UN after the restart"
    figures(rolling_restart_seconds=round(restart_s, 1), acknowledged=len(writer.acked),
            failed_attempts=writer.failed_attempts,
            longest_pause_seconds=round(writer.longest_pause_s, 2), errors=writer.errors,
            rss_mib_after={n: _rss_mib(hosts[n]) for n in NODES})



@pytest.mark.soak
def test_a_setting_no_node_can_start_with_stops_at_the_first_node(
        ring: dict, session, figures) -> None:
    """cassandra.yml with a setting Cassandra refuses, under a write load at QUORUM: every
    node's cassandra.yaml changes, the first node restarted crashes and is stopped, and the
    others refuse their restart (the ring is not whole) and keep serving; the throttled
    handler alone would have taken them down in turn. cassandra.yml without the setting
    then starts that node and restarts the two others one at a time, losing no
    acknowledged write."""
    hosts = ring["hosts"]

    def pids() -> dict[str, str]:
        return {n: node_shell(hosts[n], "systemctl show -P MainPID cassandra") for n in NODES}

    before = pids()

    def stopped_at_the_first_node(broken: PlaybookRun) -> tuple[str, list[str]]:
        acked_at_failure = len(writer.acked)
        time.sleep(5)
        assert broken.returncode != 0, "a setting no node can start with went through"
        # the handler's stderr is wrapped over lines in the output: read it as one line
        text = " ".join(broken.output.split())
        crashed = sorted(set(re.findall(
            r"(cassandra\d): cassandra crashed after its restart \((.*?)\); stopped", text)))
        refused = sorted(set(re.findall(
            r"(cassandra\d): not restarted: the ring is not whole", text)))
        assert len(crashed) == 1, broken.output[-6000:]
        down, error = crashed[0]
        assert refused == sorted(set(NODES) - {down}), broken.output[-6000:]
        assert "furet_test_no_such_option" in error, error
        assert not _ring_running(hosts[down]), f"{down} was not stopped"
        assert {n: p for n, p in pids().items() if n != down} == {
            n: p for n, p in before.items() if n != down}, "a node after the first restarted"
        assert len(writer.acked) > acked_at_failure, "the ring stopped taking writes"
        return down, refused

    writer = ContinuousWriter(session).start()
    try:
        time.sleep(3)
        (down, refused), fixed, fixed_s = bad_setting_then_fixed(
            "cassandra.yml", '{"cassandra_extra_settings": {"furet_test_no_such_option": 1}}',
            stopped_at_the_first_node)
        time.sleep(3)
    finally:
        writer.stop()
    assert fixed.returncode == 0, fixed.output[-6000:]
    after = pids()
    assert all(after[n] != before[n] for n in refused), "a node kept its former settings"
    for name in NODES:
        assert _un_count(hosts[name]) == 3, f"{name} does not see 3 nodes UN after the fix"
    missing = missing_keys(session, writer.acked)
    assert not missing, f"{len(missing)} acknowledged writes not readable at QUORUM"
    figures(down=down, acknowledged=len(writer.acked), failed_attempts=writer.failed_attempts,
            longest_pause_seconds=round(writer.longest_pause_s, 2),
            fixed_run_seconds=round(fixed_s, 1))

def test_repair_node_by_node(ring: dict, figures) -> None:
    started = time.monotonic()
    run = run_playbook("cassandra_repair.yml")
    repair_s = time.monotonic() - started
    assert run.returncode == 0, run.output[-6000:]
    repaired = re.findall(r"TASK \[cassandra : Repair \| nodetool repair -pr on (\w+)\]",
                          run.output)
    assert len(repaired) == 3, "every node repairs its primary ranges once"
    assert repaired == list(NODES), "one node at a time, in group order"
    figures(repair_seconds=round(repair_s, 1))
