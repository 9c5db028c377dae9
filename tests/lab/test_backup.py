"""Backups on the lab, as the cutover's preflight needs them: playbooks/backup.yml on backup1
pulls the legacy master's dump, a Galera node's mariadb-backup stream (galera3, never the
writer) and every Cassandra node's snapshot, each with furet's checksums, recorded in the
ledger; playbooks/restore_test.yml restores each on a scratch server and records that it
passed. A corrupted backup file then fails its restore test, and `fab cutover run` refuses
at preflight naming that backup, before anything is frozen; the byte flipped back, the same
backup passes again."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from migration.inventory import InventoryHost
from migration.remote import connection_for
from tests.helpers import BIN, REPO, run_playbook, tool_env
from tests.lab.conftest import ProvisionedLab
from tests.lab.galera_client import node_sql

INVENTORY = "inventories/lab/hosts.yml"
ROOT = "/srv/furet-backups"
QUOTES = 2000
FLOWS = ("runtime", "rt_bo", "cassandra_prod")


def _sh(host: InventoryHost, command: str) -> str:
    with connection_for(host) as conn:
        return str(conn.run(command, hide=True).stdout).strip()


@pytest.fixture(scope="module")
def copied(platform_ready: ProvisionedLab) -> ProvisionedLab:
    """QUOTES legacy quotes, copied by a round of each flow: backups with data in them."""
    etl1 = platform_ready.host("etl1")
    for command in ("legacy unfreeze", "legacy init --drop", f"legacy seed --quotes {QUOTES}",
                    "target init --drop", "cassandra init --truncate",
                    *(f"round --flow {flow}" for flow in FLOWS)):
        _sh(etl1, f"furet --config /etc/furet/furet.yml {command}")
    return platform_ready


def test_backups_are_restore_tested_and_a_corrupted_one_stops_the_cutover(
        copied: ProvisionedLab, figures: Any) -> None:
    backup1, legacy1, galera1 = (copied.host(n) for n in ("backup1", "legacy1", "galera1"))
    started = time.monotonic()
    taken = run_playbook("backup.yml")
    assert taken.returncode == 0, taken.output[-6000:]
    backed_up = time.monotonic()
    tested = run_playbook("restore_test.yml")
    assert tested.returncode == 0, tested.output[-6000:]
    restored = time.monotonic()
    latest = _sh(backup1, f"ls -1 {ROOT} | sort | tail -1")
    recorded = node_sql(galera1, "SELECT kind, restore_result FROM furet.backups WHERE "
                                 f"backup_id = '{latest}' ORDER BY kind")
    assert recorded.split("\n") == ["cassandra\tpassed", "galera\tpassed", "legacy\tpassed"]

    # one flipped byte in the legacy dump
    dump = f"{ROOT}/{latest}/legacy/legacy.sql.zst"
    flip = (f"python3 -c \"import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); "
            f"b[len(b)//2]^=1; open(p,'wb').write(b)\" {dump}")
    _sh(backup1, flip)
    failed = run_playbook("restore_test.yml", "-e", "{\"backup_kinds\": [\"legacy\"]}")
    assert failed.returncode != 0 and "legacy.sql.zst" in failed.output, failed.output[-4000:]
    before = node_sql(legacy1, "SELECT @@global.read_only")
    refused = subprocess.run([str(BIN / "fab"), "cutover", "run", "-i", INVENTORY], cwd=REPO,
                             env=tool_env(), capture_output=True, text=True, timeout=900)
    assert refused.returncode != 0
    assert f"restore test of legacy backup {latest} ({backup1.name}:{ROOT}/{latest}/legacy) " \
        "failed" in refused.stderr, refused.stderr[-3000:]
    assert node_sql(legacy1, "SELECT @@global.read_only") == before

    # the byte flipped back, the same backup passes its restore test again: the failure was
    # that byte (and the cutover test after this one finds the backups it needs)
    _sh(backup1, flip)
    again = run_playbook("restore_test.yml", "-e", "{\"backup_kinds\": [\"legacy\"]}")
    assert again.returncode == 0, again.output[-4000:]
    assert node_sql(galera1, "SELECT restore_result FROM furet.backups WHERE backup_id = "
                             f"'{latest}' AND kind = 'legacy'") == "passed"
    figures(backup_playbook_s=round(backed_up - started, 1),
            restore_test_playbook_s=round(restored - backed_up, 1))
