"""Dirty legacy rows land in quarantine with their reasons; clean rows are unaffected.
Mapping errors and refused connections stop a round before any row moves, in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from migration.db import connection, query
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.flows.mapping import FLOWS_DIR
from migration.legacy.freeze import freeze
from migration.legacy.seed import seed
from tests.helpers import BIN, REPO

from .compare import diff_runtime
from .conftest import PASSWORD, furet_env, make_config

pytestmark = pytest.mark.integration


def _furet(servers: dict, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "furet"), *args], cwd=REPO, capture_output=True, text=True,
                          env=env or furet_env(servers), timeout=300)


def test_dirty_rows_go_to_quarantine_with_their_reason(fresh: dict) -> None:
    legacy, target = fresh["legacy"].settings(), fresh["target"].settings()
    report = seed(legacy, 2000, dirt_per_thousand=15)
    with connection(legacy, "lf_runtime") as conn:
        zero_birth = {r[0] for r in query(conn, "SELECT id FROM customer WHERE birth_date = "
                                                "'0000-00-00'")}
        latin1 = set()
        for cid, city in query(conn, "SELECT id, city FROM customer"):
            try:
                city.decode("utf-8")
            except UnicodeDecodeError:
                latin1.add(cid)
        zero_start = {r[0] for r in query(conn, "SELECT id FROM quote WHERE start_date = "
                                                "'0000-00-00'")}
        null_price = {r[0] for r in query(conn, "SELECT id FROM offer WHERE price_cents IS NULL")}
    assert zero_birth and latin1 and zero_start and null_price
    assert len(zero_birth) + len(zero_start) == report.dirty["zero_date"]

    run = _furet(fresh, "round", "--flow", "runtime", "--no-progress", "--json",
                 "--max-quarantined", "5")
    assert run.returncode == 2                       # asked: more than 5 is an error
    assert run.stderr.count("\n") == 1 and "more than --max-quarantined 5" in run.stderr
    summary = json.loads(run.stdout)
    expected = len(zero_birth) + len(latin1) + len(zero_start) + len(null_price)
    assert summary["status"] == "done" and summary["rows_quarantined"] == expected

    with connection(target) as conn:
        rows = query(conn, "SELECT source_table, row_key, reason, original FROM furet.quarantine "
                           "WHERE flow = 'runtime'")
    reasons: dict[tuple[str, str], set[int]] = {}
    for table, key, reason, _ in rows:
        reasons.setdefault((table, reason.split(":")[0]), set()).add(int(key))
    assert reasons == {("customer", "bad date"): zero_birth,
                       ("customer", "bad encoding"): latin1,
                       ("quote", "bad date"): zero_start,
                       ("offer", "NULL not allowed"): null_price}
    originals = {(t, int(k)): json.loads(o) for t, k, _, o in rows}
    some_latin1 = min(latin1)
    assert "hex" in originals[("customer", some_latin1)]["city"]
    assert originals[("offer", min(null_price))]["price_cents"] is None
    assert originals[("quote", min(zero_start))]["start_date"] == "0000-00-00"

    for table, diff in diff_runtime(legacy, target).items():  # the clean rows are all there
        assert not diff.missing and not diff.stale and not diff.extra, table

    # nothing new in the window: 0 quarantined, so no QuarantineLimitExceeded
    freeze(legacy)  # --final refuses a legacy that is not frozen
    again = run_round(make_config(fresh), RoundOptions("runtime", final=True,
                                                       max_quarantined=0))
    assert again.status == "done" and again.rows_quarantined == 0
    status = json.loads(_furet(fresh, "status", "--json").stdout)
    assert [r["round_no"] for r in status["rounds"]] == [1, 2]
    assert {q["reason"].split(":")[0] for q in status["quarantine"]} == {
        "bad date", "bad encoding", "NULL not allowed"}


def test_mapping_error_is_reported_before_any_row_moves(fresh: dict, tmp_path: Path) -> None:
    seed(fresh["legacy"].settings(), 50)
    data = yaml.safe_load((FLOWS_DIR / "runtime.yml").read_text())
    data["tables"][1]["targets"][0]["columns"]["premium_cents"] = "premium"
    flow = tmp_path / "broken.yml"
    flow.write_text(yaml.safe_dump(data))
    with pytest.raises(FuretError) as err:
        run_round(make_config(fresh), RoundOptions(str(flow)))
    assert str(err.value) == ("flow runtime: legacy 127.0.0.11:3306 database lf_runtime table "
                              "quote: unknown column 'premium' in the mapping")
    data["tables"][1]["targets"][0]["columns"]["premium_cents"] = "premium_cents"
    data["tables"][1]["targets"][0]["columns"]["premium_eur"] = "premium_cents"
    flow.write_text(yaml.safe_dump(data))
    with pytest.raises(FuretError, match="target 127.0.0.12:3306 database lf_runtime table "
                                         "quote: unknown column 'premium_eur'"):
        run_round(make_config(fresh), RoundOptions(str(flow)))
    with connection(fresh["target"].settings()) as conn:
        assert query(conn, "SELECT COUNT(*) FROM lf_runtime.quote")[0][0] == 0
        assert query(conn, "SELECT COUNT(*) FROM information_schema.tables "
                           "WHERE table_schema = 'furet'")[0][0] == 0


def test_refused_connection_is_one_line_without_password(fresh: dict) -> None:
    env = furet_env(fresh)
    env["FURET_LEGACY_PASSWORD"] = "wrong-" + PASSWORD
    run = _furet(fresh, "round", "--flow", "runtime", "--no-progress", env=env)
    assert run.returncode == 2
    # (the server may refuse a plain-text client the same way: the hint names the setting)
    assert run.stderr.strip() == ("furet: error: legacy 127.0.0.11:3306: access denied for "
                                  "user 'furet' (if the server requires TLS: set "
                                  "legacy.ssl_ca)")
    assert PASSWORD not in run.stdout + run.stderr
    env = furet_env(fresh)
    env["FURET_TARGET_PORT"] = "3399"
    run = _furet(fresh, "status", env=env)
    assert run.returncode == 2
    assert run.stderr.strip() == ("furet: error: target 127.0.0.12:3399: cannot connect "
                                  "(server down or wrong host/port)")
