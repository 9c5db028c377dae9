"""Round 1 into Cassandra by streamed SSTables (``cassandra.bulk_load: SSTABLE``), on the
loopback node of conftest.py and the real helper (``make sstable-helper``).

- round 1 streams SSTables and leaves exactly the CQL path's rows (every quote in both
  query tables, its latest version, the write time its version); the next round, an
  incremental one, writes by CQL;
- a row the SSTable writer refuses is quarantined with the ring's own reason and is left
  in no query table (the other table's streamed copy is taken back);
- rounds.max_rows_per_second paces it as it paces the CQL path;
- the helper killed at a random moment (seeded, the seed printed) fails the round in one
  line naming it; the round resumed loads everything.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.cassandra_session import cassandra_session
from migration.config import CassandraSettings, FuretConfig
from migration.db import connection, query
from migration.engine.round import RoundOptions, run_round
from migration.engine.sstable_helper import SstableHelper, default_launcher
from migration.errors import FuretError
from migration.legacy.seed import seed

from .conftest import fresh_prod_keyspace, make_config

pytestmark = pytest.mark.integration
FLOW = "cassandra_prod"
SOURCE = ("SELECT id, customer_id, created_ts, uid, product, status, premium_cents, "
          "updated_ts FROM lf_runtime.quote")
COLUMNS = "quote_id, customer_id, created_ts, uid, product, status, premium_cents, updated_ts"


def _config(fresh: dict, cassandra_node: str, quotes: int) -> tuple[FuretConfig,
                                                                      CassandraSettings]:
    settings = fresh_prod_keyspace(cassandra_node)
    seed(fresh["legacy"].settings(), quotes)
    streamed = dataclasses.replace(settings, bulk_load="SSTABLE", internode_tls=False,
                                   sstable_helper=default_launcher())
    config = dataclasses.replace(make_config(fresh, workers=2, chunk_rows=1000,
                                             safety_lag_ms=300),
                                 cassandra=streamed)
    return config, settings


def _source(fresh: dict) -> dict[int, tuple[Any, ...]]:
    with connection(fresh["legacy"].settings()) as conn:
        return {int(r[0]): tuple(r) for r in query(conn, SOURCE)}


def _assert_equal(settings: CassandraSettings, source: dict[int, tuple[Any, ...]]) -> None:
    cluster, session = cassandra_session(settings, "prod")
    try:
        for table in ("quotes_by_customer", "quotes_by_day"):
            rows = list(session.execute(f"SELECT {COLUMNS}, WRITETIME(status) AS written "
                                        f"FROM {table}"))
            got = {r.quote_id: tuple(r)[:8] for r in rows}
            assert len(got) == len(rows) == len(source), \
                f"{table}: {len(rows)} rows, {len(got)} quotes, {len(source)} at the source"
            stale = [k for k, row in source.items() if got.get(k) != row]
            assert not stale, f"{table}: stale or missing quotes {stale[:10]}"
            stamps = [r.quote_id for r in rows if r.written != r.updated_ts * 1000]
            assert not stamps, f"{table}: write time is not the version: {stamps[:10]}"
    finally:
        cluster.shutdown()


def test_round_one_streams_sstables_and_the_next_round_writes_by_cql(
        fresh: dict, cassandra_node: str) -> None:
    config, settings = _config(fresh, cassandra_node, 4000)
    first = run_round(config, RoundOptions(FLOW))
    assert (first.status, first.writes) == ("done", {"quote": "SSTables streamed"})
    assert sum(t.rows_written for t in first.tables) == 4000
    _assert_equal(settings, _source(fresh))

    with connection(fresh["legacy"].settings()) as conn:
        query(conn, "UPDATE lf_runtime.quote SET status = 'expired', updated_ts = "
                    "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) WHERE id % 50 = 0")
        conn.commit()
    time.sleep(1.0)   # past the safety lag
    second = run_round(config, RoundOptions(FLOW))
    assert second.status == "done" and second.writes == {}
    _assert_equal(settings, _source(fresh))


def test_max_rows_per_second_paces_the_sstable_path_too(fresh: dict,
                                                       cassandra_node: str) -> None:
    """rounds.max_rows_per_second paces a worker's reads whatever the write path: 1,500
    quotes at 1,000 rows/s for one worker cannot take less than 1.5 s (chunks of 1,000)."""
    config, settings = _config(fresh, cassandra_node, 1500)
    paced = dataclasses.replace(config, rounds=dataclasses.replace(
        config.rounds, workers=1, max_rows_per_second=1000))
    started = time.monotonic()
    summary = run_round(paced, RoundOptions(FLOW))
    elapsed = time.monotonic() - started
    assert summary.writes == {"quote": "SSTables streamed"}
    assert elapsed >= 1.5, f"{elapsed:.2f} s: not paced"
    _assert_equal(settings, _source(fresh))


# quote -> two query tables: by_premium's partition key is premium_cents, NULL for every
# draft quote (the ring refuses a null key); by_quote takes every quote
REFUSING_FLOW = {
    "name": "sst_refusals",
    "source": {"server": "legacy", "database": "lf_runtime"},
    "target": {"kind": "cassandra", "keyspace": "prod"},
    "tables": [{"source": "quote", "key": "id", "version": "updated_ts", "targets": [
        {"table": "sst_by_premium", "columns": {
            "premium_cents": "premium_cents", "quote_id": "id", "updated_ts": "updated_ts"}},
        {"table": "sst_by_quote", "columns": {"quote_id": "id", "updated_ts": "updated_ts"}}]}],
}


def test_a_row_the_sstable_writer_refuses_is_quarantined_and_left_nowhere(
        fresh: dict, cassandra_node: str, tmp_path: Path) -> None:
    config, settings = _config(fresh, cassandra_node, 1500)
    flow = tmp_path / "sst_refusals.yml"
    flow.write_text(yaml.safe_dump(REFUSING_FLOW))
    cluster, session = cassandra_session(settings, "prod")
    try:
        session.execute("CREATE TABLE sst_by_premium (premium_cents int, quote_id bigint, "
                        "updated_ts bigint, PRIMARY KEY ((premium_cents), quote_id))")
        session.execute("CREATE TABLE sst_by_quote (quote_id bigint PRIMARY KEY, "
                        "updated_ts bigint)")
        cluster.refresh_schema_metadata()
        summary = run_round(config, RoundOptions(str(flow)))
        with connection(fresh["legacy"].settings()) as conn:
            drafts = {int(r[0]) for r in query(conn, "SELECT id FROM lf_runtime.quote WHERE "
                                                     "premium_cents IS NULL")}
            priced = {int(r[0]) for r in query(conn, "SELECT id FROM lf_runtime.quote WHERE "
                                                     "premium_cents IS NOT NULL")}
        assert drafts and priced
        assert summary.writes == {"quote": "SSTables streamed"}
        assert summary.rows_quarantined == len(drafts)
        assert sum(t.rows_written for t in summary.tables) == len(priced)
        with connection(fresh["target"].settings()) as conn:
            reasons = {str(k): str(r) for k, r in query(
                conn, "SELECT row_key, reason FROM furet.quarantine WHERE flow = "
                      "'sst_refusals' AND source_table = 'quote'")}
        assert set(reasons) == {str(k) for k in drafts}
        assert all(r.startswith("rejected: sst_by_premium: ") for r in reasons.values()), \
            next(iter(reasons.values()))
        for table in ("sst_by_premium", "sst_by_quote"):
            got = {r.quote_id for r in session.execute(f"SELECT quote_id FROM {table}")}
            assert got == priced, f"{table}: {len(got - priced)} drafts left in it"
    finally:
        cluster.shutdown()


def _helpers() -> list[int]:
    """Process ids of running SSTable helpers started by this process (its children)."""
    me = str(os.getpid())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if fields[1] == me and b"furet.SstableHelper" in argv:
            found.append(int(entry.name))
    return found


def test_a_helper_killed_at_a_random_moment_fails_the_round_and_the_resume_loads_all(
        fresh: dict, cassandra_node: str) -> None:
    config, settings = _config(fresh, cassandra_node, 6000)
    rng_seed = int(os.environ.get("FURET_FAULT_SEED", random.randrange(1 << 30)))
    print(f"fault seed {rng_seed}")
    delay = random.Random(rng_seed).uniform(0.5, 6.0)
    killed: list[float] = []

    def kill_one() -> None:
        started = time.monotonic()
        while time.monotonic() - started < 120:
            helpers = _helpers()
            if helpers and time.monotonic() - started >= delay:
                os.kill(helpers[0], signal.SIGKILL)
                killed.append(time.monotonic() - started)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        first = run_round(config, RoundOptions(FLOW))
    except FuretError as exc:
        line = str(exc)
        assert "\n" not in line and "sstable helper stopped" in line, line
        first = None
    finally:
        killer.join()
    print(f"helper killed after {killed[0]:.2f} s" if killed else "round ended first")
    if first is None:
        resumed = run_round(config, RoundOptions(FLOW))
        assert resumed.status == "done"
    else:   # the kill came after the last load (or the round ended first): whole anyway
        assert first.status == "done"
    _assert_equal(settings, _source(fresh))
    assert not _helpers()


def test_a_helper_out_of_heap_stops_in_one_line_instead_of_hanging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper whose heap cannot hold its tables' buffers exits (jvm.options:
    ExitOnOutOfMemoryError, the JVM's message on stderr) and the writer says so in one
    line: before, a writer's disk thread died of it and the helper waited for ever."""
    java = tmp_path / "java-small-heap"
    # after jvm.options (the first argument, @argfile): a later -Xmx wins
    java.write_text('#!/bin/sh\nfirst="$1"; shift\nexec java "$first" -Xms24m -Xmx24m "$@"\n')
    java.chmod(0o755)
    monkeypatch.setenv("JAVA", str(java))
    tables = 40
    with SstableHelper(default_launcher(), str(tmp_path)) as helper, \
            pytest.raises(FuretError) as stopped:
        # a helper that hangs is killed: its exit code then fails the assertion below
        watchdog = threading.Timer(120, helper.proc.kill)
        watchdog.start()
        for t in range(tables):
            helper.table("ks", f"t{t}", f"CREATE TABLE ks.t{t} (id int PRIMARY KEY, v text)",
                         f"INSERT INTO ks.t{t} (id, v) VALUES (?, ?)")
        for i in range(200_000):
            for t in range(tables):
                helper.row(f"t{t}", i, [i.to_bytes(4, "big"), b"x" * 200])
        helper.flush()
    watchdog.cancel()
    message = str(stopped.value)
    assert message.startswith("sstable helper stopped (exit 3): Terminating due to "
                              "java.lang.OutOfMemoryError"), message
    assert "jvm.options" in message and "\n" not in message
