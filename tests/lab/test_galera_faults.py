"""Galera under faults as they happen, on the lab's real 3-node cluster and HAProxy (etl1).

systemd is left as Debian configures it: a mariadbd killed with SIGKILL is restarted by
systemd, and may come back half-way (joining a cluster that is gone, non-Primary).

1. Recovery trials (FURET_RECOVERY_TRIALS, default 3; `make soak` runs 20): the three
   nodes are killed in a random order with random gaps and writes in between, sometimes
   with the operator forcing the last survivor Primary; then playbooks/galera_recover.yml.
   Each trial ends Synced x3 with every acknowledged row on every node, and when the
   recovery bootstraps, from the most advanced node. The seed is printed (FURET_SEED
   replays it).
2. The recovery never guesses the other way: on a healthy cluster it changes nothing;
   with one node out it restarts only that node; after a power loss of the three hosts
   (`make soak` only: FURET_POWER_LOSS=1), Galera's pc.recovery is left to do its job.
3. A rolling restart under a continuous write load through HAProxy loses no acknowledged
   write; and when a node cannot start, the play stops naming it, HAProxy's state is what
   the message says, and the cluster keeps taking writes.
4. A configuration change (galera.yml) restarts the nodes it concerns the same way, and a
   setting no node can start with stops at the first node (`make soak` only).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
import uuid

import pymysql
import pytest

from migration.inventory import InventoryHost
from migration.lab.podman import Podman
from tests.helpers import REPO, PlaybookRun, bad_setting_then_fixed, run_playbook, wait_for
from tests.lab.conftest import HAPROXY_SOCKET, ProvisionedLab
from tests.lab.galera_client import (
    ContinuousWriter,
    connect,
    node_shell,
    node_sql,
    present_keys,
    wsrep_status,
)

GALERA = ("galera1", "galera2", "galera3")
TRIALS = int(os.environ.get("FURET_RECOVERY_TRIALS", "3"))
# The recovery's target on the lab is 2 minutes; a hang would be 15 minutes or more.
RECOVERY_BOUND_S = 180
# Seconds between two crashes: 0 kills before the others notice, 6 lets them evict the
# node, 15 lets systemd restart it and let it rejoin.
GAPS_S = (0, 0, 1, 3, 6, 15)
# A file that makes mariadbd refuse to start (unknown option), for the rolling test.
BROKEN_CNF = "/etc/mysql/mariadb.conf.d/99-furet-test-cannot-start.cnf"


@pytest.fixture(scope="module")
def nodes(galera_healthy: ProvisionedLab) -> dict[str, InventoryHost]:
    """The Galera nodes and etl1 (HAProxy), the cluster healthy, a table to write into."""
    hosts = {h.name: h for h in galera_healthy.config.hosts}
    node_sql(hosts["galera1"], "CREATE TABLE IF NOT EXISTS furet.fault_probe ("
             " id BIGINT AUTO_INCREMENT PRIMARY KEY, k CHAR(32) NOT NULL UNIQUE,"
             " phase VARCHAR(16) NOT NULL)")
    return hosts


def _pid(host: InventoryHost) -> str:
    # pidof exits 1 when no mariadbd runs: that is the answer "", not an error
    return node_shell(host, "pidof mariadbd || true")


def _crash(host: InventoryHost) -> None:
    """kill -9 of mariadbd; systemd is free to start it again (that is the point)."""
    pid = _pid(host)
    if not pid:
        return
    node_shell(host, f"kill -9 {pid}", warn=True)
    # kill -0 fails once the process is gone, which is what we wait for
    wait_for(lambda: node_shell(host, f"kill -0 {pid} 2>/dev/null && echo alive || true")
              == "", f"{host.name} (pid {pid}) to die", 30)


def _write(rng: random.Random, hosts: list[InventoryHost], phase: str, count: int) -> list[str]:
    """Insert up to ``count`` rows on the first node (in random order) that takes them;
    return the keys a server acknowledged (a node out of the Primary component refuses)."""
    acked: list[str] = []
    for host in rng.sample(hosts, len(hosts)):
        try:
            with contextlib.closing(connect(host.address)) as conn, conn.cursor() as cur:
                while len(acked) < count:
                    key = uuid.uuid4().hex
                    cur.execute("INSERT INTO fault_probe (k, phase) VALUES (%s, %s)",
                                (key, phase))
                    acked.append(key)
            return acked
        except pymysql.MySQLError:
            continue
    return acked


def _force_primary_if_alone(host: InventoryHost) -> bool:
    """What an operator does with the last survivor: pc.bootstrap when it is non-Primary."""
    if wsrep_status(host, warn=True).get("WSREP_CLUSTER_STATUS") != "non-Primary":
        return False
    node_sql(host, "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'", warn=True)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: wsrep_status(host, warn=True).get("WSREP_CLUSTER_STATUS") == "Primary",
                 f"{host.name} Primary", 15)
    return True


def _crash_everything(rng: random.Random, hosts: dict[str, InventoryHost], trial: int
                      ) -> tuple[list[str], str]:
    """Kill the three nodes in a random order with random gaps and writes in between."""
    order = rng.sample(GALERA, 3)
    story = []
    acked = _write(rng, [hosts[n] for n in GALERA], f"t{trial}", 20)
    for step, name in enumerate(order):
        _crash(hosts[name])
        gap = rng.choice(GAPS_S)
        story.append(f"kill {name}, {gap} s")
        time.sleep(gap)
        survivors = [hosts[n] for n in order[step + 1:]]
        if step == 1 and rng.random() < 0.5 and _force_primary_if_alone(survivors[0]):
            story.append(f"force {survivors[0].name} Primary")
        if survivors:
            acked += _write(rng, survivors, f"t{trial}s{step}", 15)
    settle = rng.choice((0, 2, 8))
    time.sleep(settle)
    story.append(f"recover after {settle} s")
    return acked, "; ".join(story)


def _recover(context: str) -> tuple[float, dict, dict[str, dict]]:
    """galera_recover.yml, which must succeed: its seconds, its report, the report's rows."""
    started = time.monotonic()
    run = run_playbook("galera_recover.yml")
    seconds = time.monotonic() - started
    assert run.returncode == 0, f"{context}\n{run.output[-6000:]}"
    report = json.loads((REPO / "reports" / "galera_recover.json").read_text())
    return seconds, report, {row["host"]: row for row in report["nodes"]}


def _assert_synced_with_every_row(galera: list[InventoryHost], acked: list[str],
                                  context: str) -> None:
    for host in galera:
        state = wsrep_status(host, warn=True)
        assert (state["WSREP_CLUSTER_SIZE"], state["WSREP_LOCAL_STATE_COMMENT"]) == (
            "3", "Synced"), f"{context}: {host.name} {state}"
        missing = set(acked) - present_keys(host, acked)
        assert not missing, f"{context}: {host.name} lost {len(missing)} acknowledged rows"


def test_recovery_trials_with_systemd_restarting_crashed_nodes(
        nodes: dict[str, InventoryHost], seed: int, figures) -> None:
    galera = [nodes[n] for n in GALERA]
    rng = random.Random(seed)
    acked: list[str] = []
    trials = []
    for trial in range(TRIALS):
        written, story = _crash_everything(rng, nodes, trial)
        acked += written
        context = f"seed {seed}, trial {trial}: {story}"
        seconds, report, rows = _recover(context)
        if report["mode"] == "bootstrap":
            most = max(row["seqno"] for row in rows.values())
            assert rows[report["bootstrap"]]["seqno"] == most, f"{context}: {report}"
        _assert_synced_with_every_row(galera, acked, context)
        assert seconds < RECOVERY_BOUND_S, f"{context}: recovery took {seconds:.0f} s"
        trials.append({"story": story, "mode": report["mode"], "seconds": round(seconds, 1),
                       "found": {h: r["found"] for h, r in sorted(rows.items())}})
        found = "; ".join(f"{h} {r['found']}" for h, r in rows.items())
        print(f"\n[galera faults] trial {trial}: {story} -> {report['mode']} "
              f"in {seconds:.0f} s ({found})")
    figures(seed=seed, trials=trials, acknowledged=len(acked),
            max_recovery_seconds=max(t["seconds"] for t in trials))


def test_recovery_changes_nothing_on_a_healthy_cluster_and_rejoins_only_a_node_out(
        nodes: dict[str, InventoryHost], seed: int, figures) -> None:
    galera = [nodes[n] for n in GALERA]
    pids = {h.name: _pid(h) for h in galera}
    run = run_playbook("galera_recover.yml")
    assert run.returncode == 0, run.output[-6000:]
    report = json.loads((REPO / "reports" / "galera_recover.json").read_text())
    assert report["mode"] == "nothing", report
    assert "nothing to do" in run.output
    assert {h.name: _pid(h) for h in galera} == pids, "a healthy node was restarted"

    out = random.Random(seed).choice(GALERA)
    node_shell(nodes[out], "systemctl stop mariadb")
    started = time.monotonic()
    run = run_playbook("galera_recover.yml")
    rejoin_s = time.monotonic() - started
    assert run.returncode == 0, run.output[-6000:]
    report = json.loads((REPO / "reports" / "galera_recover.json").read_text())
    assert report["mode"] == "rejoin", report
    actions = {row["host"]: row["action"] for row in report["nodes"]}
    assert actions[out].startswith("rejoined") and {
        actions[n] for n in GALERA if n != out} == {"none"}, actions
    assert {h.name: _pid(h) for h in galera if h.name != out} == {
        n: p for n, p in pids.items() if n != out}, "a node of the Primary component restarted"
    assert all(wsrep_status(h)["WSREP_LOCAL_STATE_COMMENT"] == "Synced" for h in galera)
    figures(rejoin_seconds=round(rejoin_s, 1), node_out=out)


GRASTATE = "/var/lib/mysql/grastate.dat"


def _sst_running(host: InventoryHost) -> bool:
    # [w] keeps pgrep from finding the shell that runs it; pgrep exits 1 when no transfer
    # script runs: that is the answer "no"
    return node_shell(host, "pgrep -f '[w]srep_sst_' >/dev/null && echo yes || true") == "yes"


def test_a_node_killed_in_its_state_transfer_takes_one_again_after_the_recovery(
        nodes: dict[str, InventoryHost], seed: int, figures) -> None:
    """What a CI trial met: systemd restarted a node into a state transfer (SST), the
    node died in it, then the cluster went down. Its grastate.dat carries the zero UUID
    (or is not written yet): the recovery must not take it for another cluster, nor fail
    on it; it bootstraps from the others, and the node takes a transfer again."""
    rng = random.Random(seed + 2)
    galera = [nodes[n] for n in GALERA]
    joiner = nodes[rng.choice(GALERA)]
    acked = _write(rng, galera, "sst", 20)
    # A full transfer is what a node without its state file asks for (a lost disk does it).
    node_shell(joiner, f"systemctl stop mariadb && rm -f {GRASTATE}"
                       " && systemctl start --no-block mariadb")
    wait_for(lambda: _sst_running(joiner), f"{joiner.name}'s state transfer to start", 60)
    delay = round(rng.uniform(0, 1), 2)
    time.sleep(delay)
    assert _pid(joiner), f"seed {seed}: {joiner.name}'s mariadbd gone {delay} s into its SST"
    _crash(joiner)
    # cat fails when the file is not written yet (a transfer under way): the answer ""
    grastate = node_shell(joiner, f"cat {GRASTATE} 2>/dev/null || true")
    assert not grastate or "00000000-0000-0000-0000-000000000000" in grastate, (
        f"seed {seed}: the kill after {delay} s came after {joiner.name}'s transfer ended:"
        f" {grastate!r}")
    others = [h for h in galera if h is not joiner]
    acked += _write(rng, others, "sst-after", 10)
    for host in rng.sample(others, 2):
        _crash(host)
    context = f"seed {seed}: {joiner.name} killed {delay} s into its transfer"
    seconds, report, rows = _recover(context)
    assert report["mode"] == "bootstrap" and report["bootstrap"] != joiner.name, (
        f"{context}: {report}")
    assert rows[joiner.name]["source"] == "no cluster state", f"{context}: {report}"
    _assert_synced_with_every_row(galera, acked, context)
    figures(seed=seed, joiner=joiner.name, killed_after_seconds=delay,
            recovery_seconds=round(seconds, 1))


@pytest.mark.skipif(os.environ.get("FURET_POWER_LOSS") != "1",
                    reason="a power loss restarts the three Galera containers (a few minutes): "
                           "`make soak` runs it (FURET_POWER_LOSS=1)")
def test_after_a_power_loss_the_recovery_leaves_pc_recovery_alone(
        galera_healthy: ProvisionedLab, nodes: dict[str, InventoryHost], seed: int,
        figures) -> None:
    galera = [nodes[n] for n in GALERA]
    acked = _write(random.Random(seed), galera, "power", 50)
    config = galera_healthy.config
    podman = Podman(config.containers_conf)
    names = [config.container_name(h) for h in galera]
    # SIGKILL to each container's systemd: no shutdown, like pulling the plug on all three.
    podman.run("kill", "--signal", "KILL", *names)
    podman.run("start", *names)
    started = time.monotonic()
    wait_for(lambda: all(_answers(h) for h in galera), "SSH on the restarted hosts", 120)
    run = run_playbook("galera_recover.yml")
    assert run.returncode == 0, run.output[-6000:]
    report = json.loads((REPO / "reports" / "galera_recover.json").read_text())
    assert report["mode"] == "nothing", f"seed {seed}: {report}"
    for host in galera:
        assert wsrep_status(host, warn=True)["WSREP_LOCAL_STATE_COMMENT"] == "Synced"
        assert present_keys(host, acked) == set(acked), f"{host.name} lost acknowledged rows"
    figures(back_after_seconds=round(time.monotonic() - started, 1),
            found={row["host"]: row["found"] for row in report["nodes"]})


def _answers(host: InventoryHost) -> bool:
    try:
        return node_shell(host, "echo up", warn=True) == "up"
    except Exception:  # noqa: BLE001  # the host is still booting: any connection error
        return False


def _haproxy_status(etl: InventoryHost, server: str) -> str:
    stat = node_shell(etl, f"echo 'show stat' | socat stdio {HAPROXY_SOCKET}")
    return next(f[17] for f in (line.split(",") for line in stat.splitlines())
                if len(f) > 17 and f[1] == server)


def test_rolling_restart_under_write_load(nodes: dict[str, InventoryHost], figures) -> None:
    etl = nodes["etl1"]
    writer = ContinuousWriter(etl.address).start()
    time.sleep(3)
    started = time.monotonic()
    run = run_playbook("galera_rolling_restart.yml")
    restart_s = time.monotonic() - started
    time.sleep(3)
    writer.stop()
    assert run.returncode == 0, run.output[-6000:]
    restarted = re.findall(
        r"TASK \[mariadb_galera : Rolling \| Restart mariadb and wait until Synced on (\w+)\]",
        run.output)
    assert restarted == ["galera1", "galera2", "galera3"], "one node at a time, in group order"
    healthy_before = re.findall(r"TASK \[mariadb_galera : Rolling \| The cluster is healthy "
                                r"before (\w+)\]", run.output)
    assert healthy_before == ["galera1", "galera2", "galera3"], "task names name their node"
    assert len(writer.acked) > 100, "the writer made progress"
    for host in (nodes["galera1"], nodes["galera3"]):
        missing = set(writer.acked) - present_keys(host, writer.acked)
        assert not missing, f"{host.name}: {len(missing)} acknowledged inserts missing"
    figures(rolling_restart_seconds=round(restart_s, 1), acknowledged=len(writer.acked),
            failed_attempts=writer.failed_attempts,
            longest_pause_seconds=round(writer.longest_pause_s, 2), errors=writer.errors)


def test_rolling_restart_stops_naming_a_node_that_cannot_start(
        nodes: dict[str, InventoryHost], seed: int, figures) -> None:
    etl = nodes["etl1"]
    broken = random.Random(seed + 1).choice(GALERA)
    node_shell(nodes[broken],
               f"printf '[mysqld]\\nfuret-test-no-such-option = 1\\n' > {BROKEN_CNF}")
    try:
        writer = ContinuousWriter(etl.address).start()
        run = run_playbook("galera_rolling_restart.yml")
        acked_at_failure = len(writer.acked)
        time.sleep(5)
        writer.stop()
        assert run.returncode != 0, "the play went on past a node that cannot start"
        message = re.search(rf"{broken} is not back in service: (.*)", run.output)
        assert message, run.output[-4000:]
        text = message.group(1)
        assert "failed to start" in text and "furet-test-no-such-option" in text, text
        # stopped, not restarted by systemd in a loop (each attempt would take an SST)
        assert "stopped so that systemd does not restart it" in text, text
        restarts = node_shell(nodes[broken], "systemctl show -P NRestarts mariadb")
        time.sleep(8)  # longer than the unit's RestartSec
        # is-active exits 3 for a stopped unit: the state is the answer, not an error
        assert node_shell(nodes[broken], "systemctl is-active mariadb || true") in (
            "inactive", "failed")
        assert node_shell(nodes[broken], "systemctl show -P NRestarts mariadb") == restarts
        said = re.search(r"HAProxy etl1: (\S+)", text)
        assert said, text
        assert _haproxy_status(etl, broken) == said.group(1) == "DOWN", text
        later = GALERA[GALERA.index(broken) + 1:]
        assert not any(f"Synced on {n}]" in run.output for n in later), "a later node restarted"
        assert len(writer.acked) > acked_at_failure, "the cluster stopped taking writes"
        figures(broken=broken, haproxy=said.group(1), acknowledged=len(writer.acked),
                failed_attempts=writer.failed_attempts)
    finally:
        node_shell(nodes[broken], f"rm -f {BROKEN_CNF} && systemctl start mariadb", warn=True)
    wait_for(lambda: wsrep_status(nodes[broken], warn=True).get("WSREP_LOCAL_STATE_COMMENT")
             == "Synced",
             f"{broken} Synced again", 120)
    wait_for(lambda: _haproxy_status(etl, broken).startswith("UP"), f"{broken} UP in HAProxy")


@pytest.mark.soak
def test_an_rsync_state_transfer_under_tls_goes_through_stunnel(
        nodes: dict[str, InventoryHost], seed: int, figures) -> None:
    """galera_sst_method rsync (what a rolling major upgrade through MariaDB's own packages
    uses) with the lab's TLS: wsrep_sst_rsync tunnels the transfer through stunnel, which the
    role installs for it (without it the script exits 2 and no node can join). A node
    without its state file takes a full transfer by rsync, encrypted, then is Synced with
    every acknowledged row; the cluster goes back to mariabackup afterwards."""
    rng = random.Random(seed + 4)
    galera = [nodes[n] for n in GALERA]
    joiner = nodes[rng.choice(GALERA)]
    to_rsync = run_playbook("galera.yml", "-e", "galera_sst_method=rsync")
    try:
        assert to_rsync.returncode == 0, to_rsync.output[-6000:]
        assert node_sql(joiner, "SELECT @@wsrep_sst_method") == "rsync"
        acked = _write(rng, galera, "rsync", 20)
        since = node_shell(joiner, "date '+%Y-%m-%d %H:%M:%S'")
        started = time.monotonic()
        # a node without its state file asks for a full transfer (SST), here by rsync
        node_shell(joiner, f"systemctl stop mariadb && rm -f {GRASTATE} "
                           "&& systemctl start mariadb")
        seconds = time.monotonic() - started
        log = node_shell(joiner, f"journalctl -u mariadb --since '{since}' --no-pager")
        assert "Using stunnel for SSL encryption" in log, log[-4000:]
        # the chain against furet's CA (stunnel's verifyPeer would want each node's own
        # certificate in the CA file)
        assert "ssl-mode='VERIFY_CA'" in log, log[-4000:]
        assert re.search(r"(?i)state transfer.*rsync|wsrep_sst_rsync", log), log[-4000:]
        context = f"seed {seed}: {joiner.name} after an rsync SST"
        _assert_synced_with_every_row(galera, acked, context)
        figures(seed=seed, joiner=joiner.name, sst_seconds=round(seconds, 1))
    finally:
        back = run_playbook("galera.yml")
    assert back.returncode == 0, back.output[-6000:]
    assert node_sql(joiner, "SELECT @@wsrep_sst_method") == "mariabackup"



@pytest.mark.soak
def test_a_configuration_no_node_can_start_with_stops_at_the_first_node(
        nodes: dict[str, InventoryHost], figures) -> None:
    """galera.yml with a setting mariadbd refuses, under a write load through HAProxy:
    every node's file changes, the first node restarted does not come back, and the play
    stops naming it; the others are not restarted and keep taking writes. galera.yml
    without the setting then brings that node back (it joins) and restarts the two others
    one at a time, losing no acknowledged write. (A handler with throttle 1 went on with
    the next node after one failed and took the three down.)"""
    etl = nodes["etl1"]
    galera = [nodes[n] for n in GALERA]
    pids = {n: _pid(nodes[n]) for n in GALERA}
    later = GALERA[1:]

    def stopped_at_the_first_node(broken: PlaybookRun) -> str:
        acked_at_failure = len(writer.acked)
        time.sleep(5)
        assert broken.returncode != 0, "a configuration no node can start with went through"
        message = re.search(r"(galera\d) is not back in service: (.*)", broken.output)
        assert message, broken.output[-6000:]
        first, text = message.groups()
        assert first == GALERA[0], "the restarts go in group order"
        assert "furet-test-no-such-option" in text, text
        assert "stopped so that systemd does not restart it" in text, text
        # is-active exits 3 for a stopped unit: the state is the answer, not an error
        assert node_shell(nodes[first], "systemctl is-active mariadb || true") in (
            "inactive", "failed")
        assert {n: _pid(nodes[n]) for n in later} == {n: pids[n] for n in later}, (
            "a node after the first was restarted")
        assert len(writer.acked) > acked_at_failure, "the cluster stopped taking writes"
        return first

    writer = ContinuousWriter(etl.address).start()
    try:
        time.sleep(3)
        first, fixed, fixed_s = bad_setting_then_fixed(
            "galera.yml", '{"galera_extra_settings": {"furet-test-no-such-option": 1}}',
            stopped_at_the_first_node)
        time.sleep(3)
    finally:
        writer.stop()
    assert fixed.returncode == 0, fixed.output[-6000:]
    restarted = re.findall(
        r"TASK \[mariadb_galera : Rolling \| Restart mariadb and wait until Synced on (\w+)\]",
        fixed.output)
    assert restarted == list(later), "the two others, one at a time; the first one joined"
    assert all(_pid(nodes[n]) != pids[n] for n in later), "a marked node kept its process"
    _assert_synced_with_every_row(galera, writer.acked, "after the fixed configuration")
    wait_for(lambda: _haproxy_status(etl, first).startswith("UP"), f"{first} UP in HAProxy")
    figures(down=first, acknowledged=len(writer.acked), failed_attempts=writer.failed_attempts,
            longest_pause_seconds=round(writer.longest_pause_s, 2),
            fixed_run_seconds=round(fixed_s, 1))
