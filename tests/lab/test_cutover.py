"""The cutover on the lab, as operators run it: `fab cutover` from the controller, the web
app (`furet legacy traffic --through-cutover` on app1) writing through the application
endpoint (HAProxy on app1, role app_endpoint) the whole time.

1. `fab cutover plan` changes nothing (legacy read_only, the endpoint's map in file and
   memory, the ledger's tables);
2. `fab cutover run` killed with SIGKILL right after the freeze, `resume` killed right after
   the switch, `resume` again: done, every step once in the journal;
3. 1,000 writes of the application on Galera, then `fab cutover rollback`: every write the
   endpoint acknowledged is on the legacy master, the reverse verify agreed, the endpoint
   points at the legacy master;
4. a second, uninterrupted `fab cutover run`: the write downtime the application saw (the
   longest gap between two acknowledged writes around the switch) is the figure of the
   issue's goal; every acknowledged write is on Galera afterwards, and the application's
   writes after the switch were taken by Galera nodes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migration.inventory import InventoryHost
from migration.remote import connection_for
from tests.helpers import BIN, REPO, tool_env
from tests.helpers import fab as run_fab
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import node_sql

INVENTORY = "inventories/lab/hosts.yml"
QUOTES = 20_000
RATE = 40                       # web-app transactions per second
ACKED = "/var/lib/furet/acked.jsonl"
TRAFFIC_PID = "/var/lib/furet/traffic.pid"
TRAFFIC_OUT = "/var/lib/furet/traffic.json"
GALERA_WRITES = 1000            # the application's writes on Galera before the rollback
FURET = "furet --config /etc/furet/furet.yml"  # as etl_runner installed it (etl1, app1)


def fab(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    return run_fab(*args, "-i", INVENTORY, timeout=timeout)


def fab_background(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN / "fab"), *args, "-i", INVENTORY], cwd=REPO,
                                env=tool_env(), stdout=out, stderr=subprocess.STDOUT)


def sh(host: InventoryHost, command: str, warn: bool = False) -> str:
    with connection_for(host) as conn:
        result = conn.run(command, hide=True, warn=warn)
    return str(result.stdout).strip()


def journal(galera1: InventoryHost, kind: str = "cutover") -> list[tuple[str, str, int]]:
    """(step, status, attempts) of the latest run of ``kind``, in the runbook's order."""
    out = node_sql(galera1, "SELECT s.step_id, s.status, s.attempts FROM furet.cutover_steps s "
                            "WHERE s.run_id = (SELECT MAX(run_id) FROM furet.cutover_runs "
                            f"WHERE kind = '{kind}') ORDER BY s.seq", warn=True)
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return [(r[0], r[1], int(r[2])) for r in rows]


def ledger_checksums(galera1: InventoryHost) -> str:
    """CHECKSUM TABLE of every table of the ledger: equal only when their rows are."""
    tables = node_sql(galera1, "SELECT GROUP_CONCAT(CONCAT('furet.', table_name)) FROM "
                               "information_schema.tables WHERE table_schema = 'furet'")
    return node_sql(galera1, f"CHECKSUM TABLE {tables}")


def wait_for(what: str, ok: Callable[[], bool], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f}s")
        time.sleep(0.5)


def kill_when(proc: subprocess.Popen[bytes], what: str, ok: Callable[[], bool]) -> None:
    """SIGKILL the fab process as soon as ``ok()`` (polled), as an operator's kill -9."""
    wait_for(what, lambda: ok() or proc.poll() is not None)
    assert proc.poll() is None, f"fab ended before {what}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def acked(app1: InventoryHost) -> list[dict[str, Any]]:
    out = sh(app1, f"cat {ACKED}", warn=True)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _local_copy(app1: InventoryHost, tmp_path: Path) -> Path:
    local = tmp_path / "acked.jsonl"
    with connection_for(app1) as conn:
        conn.get(ACKED, local=str(local))
    return local


def longest_gap_ms(writes: list[dict[str, Any]], after_ms: int) -> int:
    """The longest time between two consecutive acknowledged writes (the app's clock)
    from ``after_ms`` on."""
    stamps = sorted({w["ts"] for w in writes if w["ts"] >= after_ms})
    return max((b - a for a, b in zip(stamps, stamps[1:], strict=False)), default=0)


@pytest.fixture(scope="module")
def hosts(backups_ready: ProvisionedLab) -> dict[str, InventoryHost]:
    names = ("etl1", "app1", "legacy1", "galera1")
    return {n: backups_ready.host(n) for n in names}


@pytest.fixture(scope="module")
def seeded(hosts: dict[str, InventoryHost]) -> dict[str, InventoryHost]:
    """A fresh legacy of 20,000 quotes, empty targets and ledger, the endpoint on legacy."""
    etl1, app1 = hosts["etl1"], hosts["app1"]
    for command in ("legacy unfreeze", "legacy init --drop",
                    f"legacy seed --quotes {QUOTES} --seed 42", "target init --drop",
                    "cassandra init --truncate"):
        sh(etl1, f"{FURET} {command}")
    sh(app1, "furet endpoint switch --to legacy")
    return hosts


def test_cutover_plan_kill_resume_rollback_and_downtime(
        seeded: dict[str, InventoryHost], tmp_path: Path, figures: Any) -> None:
    etl1, app1, legacy1, galera1 = (seeded[n] for n in ("etl1", "app1", "legacy1", "galera1"))
    sh(app1, f"mkdir -p /var/lib/furet; rm -f {ACKED} {TRAFFIC_OUT}; "
             f"nohup {FURET} legacy traffic --through-cutover "
             f"--rate {RATE} --duration 3600 --seed 7 --acked {ACKED} --json > {TRAFFIC_OUT} "
             f"2>&1 < /dev/null & echo $! > {TRAFFIC_PID}")
    try:
        wait_for("acknowledged writes through the endpoint", lambda: len(acked(app1)) > 50, 60)

        # 1. plan: nothing changes
        def state() -> tuple[str, ...]:
            return (node_sql(legacy1, "SELECT @@global.read_only"),
                    sh(app1, "cat /etc/haproxy/furet/app_endpoint.map"),
                    sh(app1, "echo 'show map /etc/haproxy/furet/app_endpoint.map' | "
                             "socat stdio /run/haproxy/admin.sock | cut -d' ' -f2-"),
                    ledger_checksums(galera1))
        before = state()
        planned = fab("cutover", "plan")
        assert planned.returncode == 0, (planned.stdout + planned.stderr)[-4000:]
        assert state() == before
        assert "nothing changed" in planned.stderr

        # 2. run, killed after the freeze; resume, killed after the switch; resume
        log = tmp_path / "fab.log"
        def steps_of() -> set[tuple[str, str]]:
            return {(step, status) for step, status, _ in journal(galera1)}

        proc = fab_background("cutover", "run", log=log)
        kill_when(proc, "freeze journaled ok", lambda: ("freeze", "ok") in steps_of())
        assert node_sql(legacy1, "SELECT @@global.read_only") == "1"
        proc = fab_background("cutover", "resume", log=log)
        kill_when(proc, "switch journaled ok", lambda: ("switch", "ok") in steps_of())
        resumed = fab("cutover", "resume")
        assert resumed.returncode == 0, (log.read_text() + resumed.stderr)[-6000:]
        first = journal(galera1)
        assert [r[0] for r in first] == ["preflight", "catch-up", "freeze", "final-rounds",
                                         "verify-gate", "switch", "reverse-rounds"]
        assert all(r[1] == "ok" for r in first), first
        assert sh(app1, "cat /etc/haproxy/furet/app_endpoint.map") == "active app_galera"

        # 3. the application writes on Galera; then the rollback
        switched_ms = int(node_sql(galera1, "SELECT CAST(UNIX_TIMESTAMP(finished_at) * 1000 "
                                            "AS SIGNED) FROM furet.cutover_steps WHERE "
                                            "step_id = 'switch' ORDER BY run_id DESC LIMIT 1"))
        wait_for(f"{GALERA_WRITES} writes on Galera",
                 lambda: sum(1 for w in acked(app1) if w["server"].startswith("galera")
                             and w["ts"] > switched_ms) >= GALERA_WRITES, 300)
        rolled = fab("cutover", "rollback")
        assert rolled.returncode == 0, (rolled.stdout + rolled.stderr)[-6000:]
        assert sh(app1, "cat /etc/haproxy/furet/app_endpoint.map") == "active app_legacy"
        assert node_sql(legacy1, "SELECT @@global.read_only") == "0"
        back = journal(galera1, "rollback")
        assert [r[1] for r in back] == ["ok"] * 5, back
        wait_for("writes on the legacy again", lambda: any(
            w["server"] == "legacy1" and w["ts"] > switched_ms for w in acked(app1)), 120)
        check = sh(app1, f"{FURET} legacy traffic-check --acked {ACKED}", warn=True)
        assert "all" in check and "acknowledged writes are there" in check, check

        # 4. a clean cutover: the downtime the application saw
        started_ms = int(time.time() * 1000)
        clean = fab("cutover", "run")
        assert clean.returncode == 0, (clean.stdout + clean.stderr)[-6000:]
        # its report, written on etl1 and copied here: one page naming every step
        report_path = Path(json.loads(clean.stdout.strip().splitlines()[-1])["report"])
        page = (REPO / report_path).read_text()
        assert all(step in page for step in ("preflight", "freeze", "verify-gate", "switch"))
        time.sleep(5)
    finally:
        sh(app1, f"kill -TERM $(cat {TRAFFIC_PID})", warn=True)
    wait_for("the web app to stop", lambda: sh(
        app1, f"kill -0 $(cat {TRAFFIC_PID}) 2>/dev/null && echo up || echo down") == "down", 60)
    writes = acked(app1)
    gap_ms = longest_gap_ms(writes, started_ms)
    on_galera = [w for w in writes if w["ts"] > started_ms and w["server"].startswith("galera")]
    assert on_galera, "no write of the application reached Galera after the second switch"
    # every write the endpoint ever acknowledged, on the legacy or on Galera, is on Galera
    # (checked from etl1 with furet's account, which also reads the quarantine: a write to a
    # row the rounds quarantined is counted apart, with the row's reason in the ledger)
    with connection_for(etl1) as conn:
        conn.put(str(_local_copy(app1, tmp_path)), "/tmp/furet-acked.jsonl")
    copied = sh(etl1, f"{FURET} legacy traffic-check --acked /tmp/furet-acked.jsonl "
                      "--on target", warn=True)
    assert "acknowledged writes are there" in copied and "missing" not in copied, copied
    # and every quote write up to the final round of cassandra_prod is in both of its
    # Cassandra query tables (also those Galera acknowledged before the rollback: the
    # reverse rounds brought them to the legacy master, the second cutover to Cassandra)
    in_cassandra = sh(etl1, f"{FURET} legacy traffic-check --acked /tmp/furet-acked.jsonl "
                            "--on cassandra", warn=True)
    assert "acknowledged writes are there" in in_cassandra and "missing" not in in_cassandra, \
        in_cassandra
    report = json.loads(sh(app1, f"cat {TRAFFIC_OUT}"))
    frozen_s = float(node_sql(galera1, "SELECT TIMESTAMPDIFF(MICROSECOND, f.started_at, "
                                       "s.finished_at) / 1e6 FROM furet.cutover_steps f JOIN "
                                       "furet.cutover_steps s USING (run_id) WHERE "
                                       "f.step_id = 'freeze' AND s.step_id = 'switch' "
                                       "ORDER BY run_id DESC LIMIT 1"))
    figures(quotes=QUOTES, acknowledged=report["committed"], failed_attempts=report["errors"],
            app_write_downtime_s=round(gap_ms / 1000, 1), freeze_to_switch_s=round(frozen_s, 1),
            writes_on_galera=len(on_galera),
            cassandra_writes_checked=int(re.findall(r"(\d+)\s+acknowledged", in_cassandra)[0]))
    assert gap_ms < 30_000, f"the application could not write for {gap_ms / 1000:.1f}s"
