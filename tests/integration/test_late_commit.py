"""The late-commit scenario of DESIGN.md: the old ID ETL and a naive ts round lose rows.

One timeline on the legacy server, three copies of the quote table on the target, one per
strategy (flows written to tmp with their own target database), so all three see exactly
the same commits between their rounds:

- A and B share one millisecond; C is stamped t2;
- L is stamped t1 < t2 and gets an id < C's from another "node" (auto_increment_increment 3,
  offsets 1, 2, 3 as Galera hands them out), but commits only after round 1 copied C;
- D (from a third node) is stamped t2 too: same millisecond as C, committed after round 1;
- B is updated after round 1.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pymysql
import pytest
import yaml

from migration.db import connect, server_now_ms
from migration.engine.round import RoundOptions, run_round
from migration.flows.mapping import FLOWS_DIR
from migration.legacy.freeze import freeze
from migration.target.schema import SQL_DIR as TARGET_SQL

from .compare import RUNTIME_COLUMNS, diff_table
from .conftest import make_config

pytestmark = pytest.mark.integration
STRATEGIES = ("ts", "naive", "id")


def _flow_file(tmp_path: Path, strategy: str) -> str:
    data = yaml.safe_load((FLOWS_DIR / "runtime.yml").read_text())
    data["name"] = f"late_{strategy}"
    data["target"]["database"] = f"late_{strategy}"
    data["tables"] = [t for t in data["tables"] if t["source"] == "quote"]
    path = tmp_path / f"late_{strategy}.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _node(settings: object, offset: int) -> pymysql.connections.Connection:
    conn = connect(settings, "lf_runtime", autocommit=False, sql_mode="")  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute("SET SESSION auto_increment_increment = 3")
        cur.execute("SET SESSION auto_increment_offset = %s", (offset,))
    return conn


def _insert(conn: pymysql.connections.Connection, uid: str, ts: int, commit: bool = True) -> int:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO quote (uid, customer_id, product, status, premium_cents, "
                    "start_date, created_ts, updated_ts) VALUES (%s, 1, 'car', 'priced', 50000, "
                    "'2026-01-01', %s, %s)", (uid, ts, ts))
        row_id = int(cur.lastrowid)
    if commit:
        conn.commit()
    return row_id


def test_id_and_naive_strategies_lose_rows_ts_rounds_do_not(fresh: dict,
                                                            tmp_path: Path) -> None:
    target = fresh["target"].root()
    sql = (TARGET_SQL / "lf_runtime.sql").read_text()
    with contextlib.closing(target), target.cursor() as cur:
        for strategy in STRATEGIES:
            for statement in sql.replace("lf_runtime", f"late_{strategy}").split(";"):
                if statement.strip():
                    cur.execute(statement)
    flows = {s: _flow_file(tmp_path, s) for s in STRATEGIES}
    config = make_config(fresh, overlap_ms=30_000, safety_lag_ms=5_000)

    def all_rounds(final: bool = False) -> None:
        for strategy, flow in flows.items():
            run_round(config, RoundOptions(flow, strategy=strategy, final=final))

    legacy = fresh["legacy"].settings()
    n1, n2, n3 = (_node(legacy, offset) for offset in (1, 2, 3))
    try:
        t0 = server_now_ms(n1)
        t1, t2 = t0 - 15_000, t0 - 10_000
        ids = {"A": _insert(n1, "A", t0 - 20_000), "B": _insert(n1, "B", t0 - 20_000)}
        ids["L"] = _insert(n2, "L", t1, commit=False)       # long transaction, stamped t1
        ids["C"] = _insert(n1, "C", t2)
        # IDs from the three "nodes", not in commit order: L < C but L commits last
        assert ids["A"] < ids["B"] < ids["L"] < ids["C"]
        assert (ids["A"] % 3, ids["B"] % 3, ids["L"] % 3, ids["C"] % 3) == (1, 1, 2, 1)
        all_rounds()                                         # round 1: A, B, C
        ids["D"] = _insert(n3, "D", t2)                      # same millisecond as C
        assert ids["D"] % 3 == 0 and ids["D"] > ids["C"]
        n2.commit()                                          # L commits after C was copied
        with n1.cursor() as cur:
            cur.execute("UPDATE quote SET status = 'chosen', updated_ts = %s WHERE id = %s",
                        (t0 - 8_000, ids["B"]))
        n1.commit()
        all_rounds()                                         # round 2
        freeze(legacy)
        all_rounds(final=True)                               # round 3, writes frozen
    finally:
        for conn in (n1, n2, n3):
            conn.close()

    lost = {}
    for strategy in STRATEGIES:
        diff = diff_table(legacy, "lf_runtime", fresh["target"].settings(), f"late_{strategy}",
                          "quote", RUNTIME_COLUMNS["quote"], flow=f"late_{strategy}")
        assert diff.source_rows == 5 and not diff.quarantined and not diff.extra
        lost[strategy] = (sorted(diff.missing), sorted(diff.stale))
    assert lost["ts"] == ([], [])
    # naive: max(ts) = t2 after round 1; D (= t2) and L (t1 < t2) never satisfy ts > t2
    assert lost["naive"] == ([ids["L"], ids["D"]], [])
    # old ETL: max(id) = 7 after round 1; L (id 5) is never read, B's update (id 4) neither
    assert lost["id"] == ([ids["L"]], [ids["B"]])


def test_old_etl_on_rt_bo_fills_minute_ref_times(fresh: dict) -> None:
    """`--strategy id` on the RT -> BO flow reproduces the old ETL: source IDs, minute
    REF_TIME rows; the ts strategy leaves ref_time_id empty and fills `ts`."""
    from migration.legacy.seed import seed

    seed(fresh["legacy"].settings(), 300)
    config = make_config(fresh)
    run_round(config, RoundOptions("runtime"))
    summary = run_round(config, RoundOptions("rt_bo", strategy="id"))
    assert summary.kind == "id" and summary.status == "done"
    target = fresh["target"].root()
    with contextlib.closing(target), target.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(ref_time_id), MAX(source_id) FROM lf_bo.bo_quote")
        count, with_ref, top = cur.fetchone()
        cur.execute("SELECT COUNT(*), MAX(id) FROM lf_runtime.quote")
        quotes, max_id = cur.fetchone()
        assert (count, with_ref, top) == (quotes, quotes, max_id)
        cur.execute("SET time_zone = '+00:00'")  # furet's minutes are UTC
        cur.execute("SELECT COUNT(*) FROM lf_bo.bo_quote b JOIN lf_bo.bo_ref_time r ON "
                    "r.id = b.ref_time_id JOIN lf_runtime.quote q ON q.uid = b.uid WHERE "
                    "r.minute = MINUTE(FROM_UNIXTIME(q.updated_ts DIV 1000)) AND "
                    "r.hour = HOUR(FROM_UNIXTIME(q.updated_ts DIV 1000))")
        assert cur.fetchone()[0] == count
        cur.execute("SELECT window_lo FROM furet.round_tables WHERE flow = 'rt_bo'")
        assert {r[0] for r in cur.fetchall()} == {None}
    again = run_round(config, RoundOptions("rt_bo", strategy="id"))
    assert again.rows_read == 0  # watermark = max(source_id): nothing above it
