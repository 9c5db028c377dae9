"""`furet legacy traffic-check --on cassandra` against the suite's loopback servers and
Cassandra node: the web app writes the legacy master, the cassandra_prod flow's rounds (the
last one final, the legacy frozen) copy it, and every acknowledged quote write is found in
both query tables; a row removed from one of them, and a write newer than Cassandra's, are
reported missing, naming the table and the write."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from migration.backup.scratch_cassandra import CassandraNode
from migration.cassandra_session import cassandra_session
from migration.engine.round import RoundOptions, run_round
from migration.legacy.acked_cassandra import check_acked_cassandra
from migration.legacy.freeze import freeze, unfreeze
from migration.legacy.seed import seed
from migration.legacy.traffic import read_acked, run_traffic

from .conftest import APP_USER, PASSWORD, Server, fresh_prod_keyspace, make_config

pytestmark = pytest.mark.integration


def test_every_acknowledged_quote_write_is_in_cassandra_and_a_missing_one_is_named(
        fresh: dict[str, Server], cassandra_instance: CassandraNode, tmp_path: Path) -> None:
    legacy = fresh["legacy"].settings()
    config = dataclasses.replace(make_config(fresh),
                                 cassandra=fresh_prod_keyspace(cassandra_instance.address))
    seed(legacy, 500)
    assert run_round(config, RoundOptions("cassandra_prod")).status == "done"
    acked = tmp_path / "acked.jsonl"
    stop = threading.Event()
    app = fresh["legacy"].settings(APP_USER, PASSWORD)
    traffic = threading.Thread(target=lambda: run_traffic(
        app, rate=80, duration=4, seed=3, late_share=0.1, stop=stop, through_cutover=False,
        acked=acked))
    traffic.start()
    traffic.join(60)
    try:
        freeze(legacy, timeout_s=30)
        assert run_round(config, RoundOptions("cassandra_prod", final=True)).status == "done"
    finally:
        unfreeze(legacy)
    quotes = [w for w in read_acked(acked) if w.table == "quote"]
    assert len(quotes) > 20

    checked = check_acked_cassandra(config, legacy, acked)
    # each quote write is looked for in both query tables of the flow
    assert checked.missing == [] and checked.checked == 2 * len(quotes), checked

    # the check can fail: one row gone from quotes_by_day, and a write newer than what
    # Cassandra holds (still before the final round's watermark: it is checked)
    latest: dict[int | str, int] = {}
    for w in quotes:
        latest[w.value] = max(latest.get(w.value, 0), w.ts)
    gone, other = quotes[0], next(w for w in quotes if w.value != quotes[0].value)
    cluster, session = cassandra_session(config.cassandra)
    try:
        row = session.execute("SELECT day, created_ts FROM prod.quotes_by_day WHERE "
                              "quote_id = %s ALLOW FILTERING", (gone.value,)).one()
        session.execute("DELETE FROM prod.quotes_by_day WHERE day = %s AND created_ts = %s "
                        "AND quote_id = %s", (row.day, row.created_ts, gone.value))
    finally:
        cluster.shutdown()
    newer = dataclasses.replace(other, ts=latest[other.value] + 1)
    with acked.open("a", encoding="utf-8") as log:
        log.write(json.dumps(dataclasses.asdict(newer)) + "\n")
    missing = check_acked_cassandra(config, legacy, acked).missing
    by_customer = [m for m in missing if m.startswith("prod.quotes_by_customer: ")]
    by_day = [m for m in missing if m.startswith("prod.quotes_by_day: ")]
    assert len(by_customer) + len(by_day) == len(missing), missing
    newer_line = f"quote id={newer.value} version {newer.ts} (acknowledged by "
    assert len(by_customer) == 1 and newer_line in by_customer[0], missing
    assert by_customer[0].endswith(f": version {latest[other.value]}"), missing
    gone_lines = [m for m in by_day if f"quote id={gone.value} " in m]
    assert len(gone_lines) == sum(1 for w in quotes if w.value == gone.value), missing
    assert all(m.endswith(": no row") for m in gone_lines), missing
    assert len(by_day) == len(gone_lines) + 1 and any(newer_line in m for m in by_day), missing
