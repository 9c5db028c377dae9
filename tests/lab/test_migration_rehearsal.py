"""The migration on the lab, as `make demo` runs it: `fab rehearsal` on etl1 seeds legacy1
(role legacy_mysql), runs rounds 1..3 of every flow under web-app traffic through HAProxy
into the Galera cluster and into the Cassandra ring, freezes legacy1 and runs the final
rounds. Then every legacy row is compared with what a *different* Galera node (galera3,
not the writer) and the Cassandra ring hold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.config import DbSettings
from migration.db import connection, query
from migration.lab.config import GALERA_SERVICE_NAME, lab_ca_file
from migration.remote import select_hosts
from tests.helpers import REPO, run_playbook
from tests.helpers import fab as run_fab
from tests.integration.compare import diff_runtime
from tests.lab import cassandra_client, galera_client
from tests.lab.conftest import ProvisionedLab

INVENTORY = "inventories/lab/hosts.yml"
GROUP_VARS = REPO / "inventories" / "lab" / "group_vars"
QUOTES = 3000


def fab(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return run_fab(*args, "-i", INVENTORY, timeout=timeout)


def _lab_var(group: str, name: str) -> Any:
    return yaml.safe_load(Path(GROUP_VARS / f"{group}.yml").read_text())[name]


def legacy1() -> DbSettings:
    return DbSettings("legacy", "10.213.0.11", 3306, "furet",
                      _lab_var("etl", "etl_runner_legacy_password"), ssl_ca=str(lab_ca_file()))


def galera3() -> DbSettings:
    """Not the writer behind HAProxy: what it holds came through Galera replication."""
    return DbSettings("target", "10.213.0.23", 3306, "furet",
                      _lab_var("etl", "etl_runner_target_password"), ssl_ca=str(lab_ca_file()),
                      ssl_server_name=GALERA_SERVICE_NAME)


@pytest.fixture(scope="module")
def rehearsal(platform_ready: ProvisionedLab) -> subprocess.CompletedProcess[str]:
    """legacy1, Galera behind HAProxy, Cassandra and furet on etl1 healthy, then the
    rehearsal (it drops and re-creates the schemas it uses: a lab used before is fine)."""
    result = fab("rehearsal", "--quotes", str(QUOTES), "--rate", "20")
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return result


def test_rehearsal_runs_every_step_and_leaves_the_legacy_frozen(
        rehearsal: subprocess.CompletedProcess[str], figures: Any) -> None:
    err = rehearsal.stderr
    for flow in ("runtime", "cassandra_prod", "rt_bo"):
        for n in (1, 2, 3):
            assert f"fab rehearsal: round {n} of {flow}: ok" in err
        assert f"fab rehearsal: final round of {flow}: ok" in err
    assert "[traffic] furet legacy 10.213.0.11:3306: " in rehearsal.stdout + err
    assert "stopped by read_only" in rehearsal.stdout + err
    assert "not-secret" not in rehearsal.stdout + err
    with connection(legacy1()) as conn:
        assert query(conn, "SELECT @@read_only")[0][0] == 1
    total = err.splitlines()[-1]
    figures(rehearsal=total)


def test_every_legacy_row_is_on_another_galera_node_with_its_latest_version(
        rehearsal: subprocess.CompletedProcess[str], figures: Any) -> None:
    diffs = diff_runtime(legacy1(), galera3())
    for table, diff in diffs.items():
        assert diff.missing == set() and diff.stale == set(), (table, diff)
        assert diff.extra == set(), (table, diff.extra)
        assert diff.target_rows == diff.source_rows - len(diff.quarantined), table
    assert sum(len(d.quarantined) for d in diffs.values()) > 0  # the seed's legacy dirt
    # The back-office flow read the target runtime and wrote lf_bo with ts, keyed by uid.
    with connection(galera3()) as conn:
        for rt, bo, column in (("quote", "bo_quote", "status"), ("offer", "bo_offer", "insurer")):
            counts = query(conn, f"SELECT (SELECT COUNT(*) FROM lf_runtime.{rt}), "
                                 f"(SELECT COUNT(*) FROM lf_bo.{bo})")[0]
            assert counts[0] == counts[1], (rt, counts)
            wrong = query(conn, f"SELECT COUNT(*) FROM lf_runtime.{rt} r LEFT JOIN lf_bo.{bo} b "
                                f"ON b.uid = r.uid WHERE b.uid IS NULL OR b.source_id <> r.id "
                                f"OR b.ts <> r.updated_ts OR b.{column} <> r.{column}")[0][0]
            assert wrong == 0, (rt, wrong)
    figures(**{f"galera {t}": f"{d.source_rows} legacy rows, {len(d.quarantined)} "
                              "quarantined, 0 missing/stale/extra" for t, d in diffs.items()})
    # The cluster is whole after the rounds: three nodes, all Synced.
    for host in select_hosts(REPO / INVENTORY, ["galera"]):
        state = galera_client.node_sql(host, "SHOW STATUS WHERE Variable_name IN "
                                             "('wsrep_cluster_size','wsrep_local_state_comment')")
        assert "wsrep_cluster_size\t3" in state and "Synced" in state, (host.name, state)


def test_every_legacy_quote_is_in_both_cassandra_tables(
        rehearsal: subprocess.CompletedProcess[str], figures: Any) -> None:
    with connection(legacy1()) as conn:
        legacy = {int(r[0]): (int(r[1]), r[2], r[3]) for r in query(
            conn, "SELECT id, updated_ts, status, premium_cents FROM lf_runtime.quote")}
    addresses = [h.address for h in select_hosts(REPO / INVENTORY, ["cassandra"])]
    cluster, session = cassandra_client.connect(addresses)
    try:
        for table in ("quotes_by_customer", "quotes_by_day"):
            rows = session.execute(f"SELECT quote_id, updated_ts, status, premium_cents "
                                   f"FROM prod.{table}", timeout=120)
            held = {int(r.quote_id): (int(r.updated_ts), r.status, r.premium_cents)
                    for r in rows}
            assert set(held) == set(legacy), (table, len(held), len(legacy))
            stale = [k for k, v in legacy.items() if held[k] != v]
            assert stale == [], (table, stale[:10])
    finally:
        cluster.shutdown()
    figures(cassandra=f"{len(legacy)} legacy quotes in both tables, latest versions")


def test_status_json_shows_four_finished_rounds_per_flow(
        rehearsal: subprocess.CompletedProcess[str]) -> None:
    result = fab("status", "--json")
    assert result.returncode == 0, result.stderr
    rounds = json.loads(result.stdout)["rounds"]
    for flow in ("runtime", "cassandra_prod", "rt_bo"):
        mine = sorted((r for r in rounds if r["flow"] == flow), key=lambda r: r["round_no"])
        assert [r["round_no"] for r in mine] == [1, 2, 3, 4]
        assert all(r["status"] == "done" for r in mine)
        assert [bool(r["final"]) for r in mine] == [False, False, False, True]


def test_fab_verify_agrees_on_every_flow_and_fetches_its_reports(
        rehearsal: subprocess.CompletedProcess[str], figures: Any) -> None:
    seen = {}
    for flow in ("runtime", "cassandra_prod", "rt_bo"):
        result = fab("verify", "--flow", flow)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        assert "fab verify: etl1 ok" in result.stderr
        fetched = [line.split("fab verify: report ", 1)[1] for line in result.stderr.splitlines()
                   if line.startswith("fab verify: report ")]
        assert sorted(Path(f).suffix for f in fetched) == [".html", ".json"], fetched
        report = json.loads(Path(REPO / fetched[0] if fetched[0].endswith(".json")
                                 else REPO / fetched[1]).read_text())
        assert report["agrees"] is True and report["flow"] == flow
        seen[flow] = sum(t["source_rows"] for t in report["tables"])
    figures(verify_rows_compared=seen)


def test_verify_gate_fails_on_corrupted_rows_and_repair_fixes_them(
        rehearsal: subprocess.CompletedProcess[str]) -> None:
    galera1 = select_hosts(REPO / INVENTORY, ["galera1"])[0]
    # A clean quote and offer (not quarantined): one changed in place, one deleted.
    quote_id, offer_id = (int(v) for v in galera_client.node_sql(
        galera1, "SELECT (SELECT MIN(id) FROM lf_runtime.quote WHERE status <> 'expired'), "
                 "(SELECT MAX(id) FROM lf_runtime.offer)").split())
    galera_client.node_sql(galera1, f"UPDATE lf_runtime.quote SET status = 'expired' "
                                    f"WHERE id = {quote_id}; "
                                    f"DELETE FROM lf_runtime.offer WHERE id = {offer_id}")
    gate = run_playbook("verify_gate.yml", "-e", "verify_gate_flow=runtime")
    assert gate.returncode != 0, gate.output[-4000:]
    assert "source and target DIFFER" in gate.output
    assert "quote -> quote: 0 missing, 0 extra, 1 different" in " ".join(gate.output.split())
    assert "offer -> offer: 1 missing, 0 extra, 0 different" in " ".join(gate.output.split())
    repaired = fab("verify", "--flow", "runtime", "--repair")
    assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-4000:]
    assert galera_client.node_sql(galera1, f"SELECT COUNT(*) FROM lf_runtime.offer "
                                           f"WHERE id = {offer_id}") == "1"
    gate = run_playbook("verify_gate.yml", "-e", "verify_gate_flow=runtime")
    assert gate.returncode == 0, gate.output[-4000:]
    assert "source and target agree" in gate.output


def test_unfreeze_gives_the_legacy_back_and_a_stopped_legacy_is_named(
        rehearsal: subprocess.CompletedProcess[str]) -> None:
    result = fab("unfreeze")
    assert result.returncode == 0, result.stderr
    with connection(legacy1()) as conn:
        assert query(conn, "SELECT @@read_only")[0][0] == 0
    host = select_hosts(REPO / INVENTORY, ["legacy1"])[0]
    galera_client.node_shell(host, "systemctl stop mariadb")
    try:
        frozen = fab("freeze", "--timeout", "5")
    finally:
        galera_client.node_shell(host, "systemctl start mariadb")
    assert frozen.returncode == 2, frozen.stdout + frozen.stderr
    assert ("fab freeze: etl1 FAILED (exit 2: furet: error: legacy 10.213.0.11:3306: "
            "cannot connect") in frozen.stderr
    assert "not-secret" not in frozen.stdout + frozen.stderr
