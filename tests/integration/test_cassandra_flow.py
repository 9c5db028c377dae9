"""Flow legacy -> Cassandra `prod` query tables, under traffic, with a frozen final round.

Every legacy quote is in quotes_by_customer and quotes_by_day with its latest version and
nothing else; a write of an older version (replayed batch, late writer) cannot win.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from migration.cassandra_session import cassandra_session
from migration.db import connection, query
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.round import RoundOptions, run_round
from migration.engine.versions import codec_for
from migration.flows.mapping import load_flow
from migration.legacy.freeze import freeze
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, run_traffic

from .compare import quarantined_keys
from .conftest import APP_USER, PASSWORD, fresh_prod_keyspace, make_config

pytestmark = pytest.mark.integration
COLUMNS = ("uid", "product", "status", "premium_cents", "updated_ts")


def test_rounds_into_cassandra_under_traffic(fresh: dict, cassandra_node: str) -> None:
    settings = fresh_prod_keyspace(cassandra_node)
    legacy = fresh["legacy"].settings()
    seed(legacy, 2000)
    config = dataclasses.replace(make_config(fresh, overlap_ms=5000, safety_lag_ms=300),
                                 cassandra=settings)
    reports: list[TrafficReport] = []
    traffic = threading.Thread(target=lambda: reports.append(run_traffic(
        fresh["legacy"].settings(APP_USER, PASSWORD), rate=50, duration=120, seed=11,
        late_share=0.2)))
    traffic.start()
    try:
        for _ in range(2):
            assert run_round(config, RoundOptions("cassandra_prod")).status == "done"
            time.sleep(1.0)
        freeze(legacy, timeout_s=30)
        traffic.join(30)
        final = run_round(config, RoundOptions("cassandra_prod", final=True))
    finally:
        if traffic.is_alive():
            freeze(legacy)
            traffic.join(30)
    assert final.status == "done" and reports[0].stopped_by == "read_only"

    with connection(legacy) as conn:
        source = {r[0]: r for r in query(conn, "SELECT id, customer_id, created_ts, uid, product,"
                                               " status, premium_cents, updated_ts FROM "
                                               "lf_runtime.quote")}
    bad = {int(k) for k in quarantined_keys(fresh["target"].settings(), "cassandra_prod",
                                            "quote")}
    assert not bad  # no dirt in the columns this flow copies
    cluster, session = cassandra_session(settings, "prod")
    try:
        for table in ("quotes_by_customer", "quotes_by_day"):
            rows = list(session.execute(f"SELECT quote_id, customer_id, created_ts, "
                                        f"{', '.join(COLUMNS)} FROM {table}"))
            assert len(rows) == len(source), f"{table}: {len(rows)} rows, {len(source)} quotes"
            got = {r.quote_id: (r.quote_id, r.customer_id, r.created_ts,
                                *(getattr(r, c) for c in COLUMNS)) for r in rows}
            assert len(got) == len(rows), f"{table}: duplicated quotes"
            stale = [k for k, row in source.items() if got.get(k) != tuple(row)]
            assert not stale, f"{table}: stale or missing quotes {stale[:10]}"

        # an older version written late (a replayed batch) does not win
        qid = max(source)
        old = list(source[qid])
        old[5], old[7] = "draft", source[qid][7] - 1000
        flow = load_flow("cassandra_prod").table("quote")
        by_name = dict(zip(("id", "customer_id", "created_ts", "uid", "product", "status",
                            "premium_cents", "updated_ts"), old, strict=True))
        row = tuple(by_name[c] for c in flow.source_columns)
        epoch_ms = codec_for("prod quote", "updated_ts", "bigint", None)
        outcome = CassandraWriter(session, "prod", flow, epoch_ms).write(None, [row])
        assert outcome.written == 1
        now = session.execute("SELECT status, updated_ts FROM quotes_by_customer WHERE "
                              "customer_id = %s AND created_ts = %s AND quote_id = %s",
                              (source[qid][1], source[qid][2], qid)).one()
        assert (now.status, now.updated_ts) == (source[qid][5], source[qid][7])
    finally:
        cluster.shutdown()
