"""Verify and repair cannot destroy live rows; quarantine loses nothing (issue 12, items 4-5).

Real loopback servers only: the legacy and target MariaDB and one Cassandra node of
``conftest.py``. Races are made deterministic by the progress reporter, which verify and
rounds call at known points (a repair's ``phase(..., "repair")`` comes after every table
was compared and before anything is written; a round's ``table()`` after it took its lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from migration.cassandra_session import cassandra_session
from migration.config import CassandraSettings, FuretConfig
from migration.db import connection, query
from migration.engine import ledger
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.quarantine import QuarantinedRow
from migration.engine.round import RoundOptions, run_round
from migration.engine.versions import codec_for
from migration.errors import FuretError
from migration.flows.mapping import load_flow
from migration.legacy.seed import seed
from migration.progress import Silent
from migration.verify.run import VerifyOptions, run_verify
from tests.helpers import BIN, REPO

from .conftest import fresh_prod_keyspace, furet_env, make_config

pytestmark = pytest.mark.integration

QUOTE_COLUMNS = "id, uid, customer_id, product, status, premium_cents, start_date, " \
                "created_ts, updated_ts"


class Hook(Silent):
    """A progress reporter that runs ``action`` once, the first time ``when(name, what)``."""

    def __init__(self, when: Callable[[str, str], bool], action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self.fired = False

    def _maybe(self, name: str, what: str) -> None:
        if not self.fired and self.when(name, what):
            self.fired = True
            self.action()

    def phase(self, name: str, what: str) -> None:
        self._maybe(name, what)

    def table(self, name: str, total: int | None) -> None:
        self._maybe(name, "table")


def _sql(settings: Any, *statements: str) -> None:
    with connection(settings) as conn:
        for statement in statements:
            query(conn, statement)


def _quote_row(settings: Any, qid: int) -> tuple[Any, ...]:
    with connection(settings) as conn:
        return query(conn, f"SELECT {QUOTE_COLUMNS} FROM lf_runtime.quote WHERE id = %s",
                     (qid,))[0]


# --- 4a: --delete-extra re-reads the source just before deleting -------------------------


def test_delete_extra_keeps_a_row_the_source_gained_after_the_verify_read(fresh: dict) -> None:
    legacy, target = fresh["legacy"].settings(), fresh["target"].settings()
    seed(legacy, 400)
    config = make_config(fresh)
    assert run_round(config, RoundOptions("runtime")).status == "done"
    with connection(legacy) as conn:
        late, gone = (int(r[0]) for r in query(conn, "SELECT id FROM lf_runtime.quote "
                                                     "ORDER BY id LIMIT 2"))
    row = _quote_row(legacy, late)
    # `late` is in the target only when verify reads (deleted at the source, its copy left),
    # and the source inserts it again before the repair deletes: it is live, it stays.
    # `gone` is extra and stays extra: deleted.
    _sql(legacy, f"DELETE FROM lf_runtime.quote WHERE id IN ({late}, {gone})")

    def insert_again() -> None:
        with connection(legacy) as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO lf_runtime.quote ({QUOTE_COLUMNS}) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", row)

    hook = Hook(lambda name, what: what == "repair", insert_again)
    report = run_verify(config, VerifyOptions("runtime", tables=("quote",), workers=2,
                                              repair=True, delete_extra=True), progress=hook)
    assert hook.fired
    (table,) = report.tables
    assert table.extra == 2 and table.repair is not None
    with connection(target) as conn:
        left = {int(r[0]) for r in query(conn, f"SELECT id FROM lf_runtime.quote WHERE id IN "
                                               f"({late}, {gone})")}
    assert left == {late}, "a row live at the source was deleted from the target"
    assert table.repair.deleted == 1 and table.repair.extra_kept == 1
    assert table.repair.ok and report.agrees


# --- 4b: repairs and rounds of a flow exclude each other ----------------------------------


@contextlib.contextmanager
def _blocked_in(start: Callable[[Hook], Any], when: Callable[[str, str], bool]
                ) -> Iterator[list[Any]]:
    """Run ``start(hook)`` in a thread; yield once the hook fired (the run holds whatever
    it holds at that point), then let it go on and finish."""
    reached, release = threading.Event(), threading.Event()
    out: list[Any] = []

    def action() -> None:
        reached.set()
        release.wait(120)

    def run() -> None:
        try:
            out.append(start(Hook(when, action)))
        except BaseException as exc:  # noqa: BLE001  # handed to the test
            out.append(exc)
            reached.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert reached.wait(120), "the run never reached its hook"
        assert not out, f"the run ended before its hook: {out}"
        yield out
    finally:
        release.set()
        thread.join(180)


def _holder_line(text: str, command: str) -> None:
    assert f"flow runtime is locked by `{command}` on host {socket.gethostname()} pid " \
           f"{os.getpid()} since " in text, text
    assert "\n" not in text.strip()


def test_repair_and_rounds_of_one_flow_exclude_each_other(fresh: dict) -> None:
    seed(fresh["legacy"].settings(), 300)
    config = make_config(fresh)
    assert run_round(config, RoundOptions("runtime")).status == "done"
    repair = VerifyOptions("runtime", tables=("quote",), workers=2, repair=True)

    # a repair holds the flow: a round of the flow is refused, naming the holder
    with _blocked_in(lambda hook: run_verify(config, repair, progress=hook),
                     lambda name, what: what == "checksums") as out:
        with pytest.raises(FuretError) as refused:
            run_round(config, RoundOptions("runtime"))
        _holder_line(str(refused.value), "furet verify --repair --flow runtime")
        # through the CLI: one line, the user-error exit code
        cli = subprocess.run([str(BIN / "furet"), "round", "--flow", "runtime"], cwd=REPO,
                             env=furet_env(fresh), capture_output=True, text=True, timeout=120)
        assert cli.returncode == 2, cli.stdout + cli.stderr
        assert "flow runtime is locked by `furet verify --repair --flow runtime`" in \
            cli.stdout + cli.stderr
    assert not isinstance(out[0], BaseException), out

    # a round holds the flow: a repair is refused; a plain verify (read-only) is not
    with _blocked_in(lambda hook: run_round(config, RoundOptions("runtime"), progress=hook),
                     lambda name, what: what == "table") as out:
        with pytest.raises(FuretError) as refused:
            run_verify(config, repair)
        _holder_line(str(refused.value), "furet round --flow runtime")
        assert run_verify(config, dataclasses.replace(repair, repair=False)).tables
    assert not isinstance(out[0], BaseException), out

    # released at the end: both run again
    assert run_verify(config, repair).agrees
    assert run_round(config, RoundOptions("runtime")).status == "done"


HOLD = """
import sys, time
from migration.config import DbSettings
from migration.engine.flow_lock import flow_lock
settings = DbSettings("target", sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
with flow_lock(settings, "runtime", "furet round --flow runtime"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_holder_killed_with_sigkill_does_not_keep_the_flow(fresh: dict) -> None:
    """kill -9 leaves the lock row behind: a holder on this host whose process is gone is
    taken over at once; a holder elsewhere, once its heartbeat is stale."""
    seed(fresh["legacy"].settings(), 200)
    config = make_config(fresh)
    target = config.target
    proc = subprocess.Popen([sys.executable, "-c", HOLD, target.host, str(target.port),
                             target.user, target.password], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(FuretError, match=f"pid {proc.pid} since "):
            run_round(config, RoundOptions("runtime"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert run_round(config, RoundOptions("runtime")).status == "done"   # pid gone: taken

    # another host's holder: kept while its heartbeat is fresh, taken once it is stale
    with connection(target) as conn:
        query(conn, "INSERT INTO furet.locks (flow, token, host, pid, command) VALUES "
                    "('runtime', 'x', 'etl9.elsewhere', 1, 'furet round --flow runtime')")
        with pytest.raises(FuretError, match="on host etl9.elsewhere pid 1 since "):
            run_round(config, RoundOptions("runtime"))
        query(conn, "UPDATE furet.locks SET heartbeat_at = NOW(3) - INTERVAL %s SECOND "
                    "WHERE flow = 'runtime'", (ledger.LOCK_STALE_S + 1,))
    assert run_round(config, RoundOptions("runtime")).status == "done"
    with connection(target) as conn:
        assert query(conn, "SELECT COUNT(*) FROM furet.locks")[0][0] == 0  # released


# --- 4c: Cassandra deletes and overwrites stamped from the row's own write time ---------


def _cassandra(fresh: dict, cassandra_node: str, quotes: int) -> tuple[FuretConfig,
                                                                       CassandraSettings]:
    settings = fresh_prod_keyspace(cassandra_node)
    seed(fresh["legacy"].settings(), quotes)
    config = dataclasses.replace(make_config(fresh), cassandra=settings)
    assert run_round(config, RoundOptions("cassandra_prod")).status == "done"
    return config, settings


def _source_row(legacy: Any, qid: int, **changes: Any) -> tuple[Any, ...]:
    """A quote as the flow reads it (its source columns), with ``changes``."""
    tf = load_flow("cassandra_prod").table("quote")
    with connection(legacy) as conn:
        values = dict(zip(tf.source_columns, query(
            conn, f"SELECT {', '.join(tf.source_columns)} FROM lf_runtime.quote WHERE id = %s",
            (qid,))[0], strict=True))
    values.update(changes)
    return tuple(values[c] for c in tf.source_columns)


def test_cassandra_repair_stamps_from_the_rows_write_time_not_now(fresh: dict,
                                                                  cassandra_node: str) -> None:
    config, settings = _cassandra(fresh, cassandra_node, 300)
    legacy = fresh["legacy"].settings()
    with connection(legacy) as conn:
        (deleted, edited), = [tuple(int(v) for v in r) for r in query(
            conn, "SELECT MIN(id), MAX(id) FROM lf_runtime.quote")]
    before = {q: _source_row(legacy, q) for q in (deleted, edited)}
    tf = load_flow("cassandra_prod").table("quote")
    at = {name: i for i, name in enumerate(tf.source_columns)}
    now_ms = int(time.time() * 1000)
    assert all(r[at["updated_ts"]] + 60_000 < now_ms for r in before.values())  # the past
    pk = "customer_id = %s AND created_ts = %s AND quote_id = %s"
    e = before[edited]
    e_pk = (e[at["customer_id"]], e[at["created_ts"]], edited)
    e_version = e[at["updated_ts"]]
    cluster, session = cassandra_session(settings, "prod")
    try:
        # `deleted` is deleted at the source: extra in both tables; `edited` is edited by
        # hand in Cassandra with a write time 5 ms after its version: shadowed
        _sql(legacy, f"DELETE FROM lf_runtime.quote WHERE id = {deleted}")
        session.execute(f"UPDATE quotes_by_customer USING TIMESTAMP %s SET status = 'zzz' "
                        f"WHERE {pk}", ((e_version + 5) * 1000, *e_pk))
        report = run_verify(config, VerifyOptions("cassandra_prod", workers=2, repair=True,
                                                  delete_extra=True, overwrite_newer=True))
        repaired = {t.target_table: t.repair for t in report.tables}
        assert repaired["quotes_by_customer"] is not None
        assert repaired["quotes_by_customer"].deleted == 1
        assert repaired["quotes_by_customer"].overwritten == 1
        assert report.agrees, [dataclasses.asdict(r) for r in repaired.values() if r]
        stamp = session.execute(f"SELECT WRITETIME(status) FROM quotes_by_customer WHERE {pk}",
                                e_pk).one()[0]
        assert stamp == (e_version + 5) * 1000 + 1   # the hand edit's time + 1, not now

        # the source writes both quotes again, 10 ms after their old versions (long before
        # now): the rounds' version-aware writer must win over the repair's delete and
        # overwrite
        writer = CassandraWriter(session, "prod", tf,
                                 codec_for("prod quote", "updated_ts", "bigint", None))
        again = [_source_row(legacy, edited, status="chosen", updated_ts=e_version + 10)]
        d = list(before[deleted])
        d[at["updated_ts"]] += 10
        again.append(tuple(d))
        assert writer.write(None, again).written == 2
        for table in ("quotes_by_customer", "quotes_by_day"):
            got = {r.quote_id: r.status for r in session.execute(
                f"SELECT quote_id, status FROM {table} WHERE quote_id IN (%s, %s) "
                "ALLOW FILTERING", (deleted, edited))}
            assert got == {deleted: before[deleted][at["status"]], edited: "chosen"}, table
    finally:
        cluster.shutdown()


# --- 5a: long keys are not truncated into each other --------------------------------------


def _v3_ledger(conn: Any) -> None:
    """A ledger exactly as version 3 created it."""
    query(conn, "DROP DATABASE IF EXISTS furet")
    with conn.cursor() as cur:
        for version, statements in ledger.UPGRADES:
            if version <= 3:
                for statement in statements:
                    cur.execute(statement)
        cur.execute("INSERT INTO furet.ledger_schema (id, version) VALUES (1, 3)")


def test_long_quarantine_keys_are_kept_whole_and_a_v3_ledger_upgrades(fresh: dict) -> None:
    long_a, long_b = "k" * 600 + "a", "k" * 600 + "b"   # equal over their first 512

    def row(key: str, version: int = 7) -> QuarantinedRow:
        return QuarantinedRow("quote", key, version, "quote", "bad value: x", {"id": key})

    with connection(fresh["target"].settings()) as conn:
        ledger.record_quarantine(conn, "f", 1, [row(long_a), row(long_b)])
        got = sorted(query(conn, "SELECT row_key, seen FROM furet.quarantine WHERE flow = 'f'"))
        assert got == [(long_a, 1), (long_b, 1)]
        assert ledger.quarantined_versions(conn, "f", "quote") == {long_a: {7}, long_b: {7}}

        # a version 3 ledger with rows upgrades in place, its rows kept and found again
        _v3_ledger(conn)
        query(conn, "INSERT INTO furet.quarantine (flow, source_table, row_key, version, "
                    "round_no, target_table, reason, original) VALUES ('f', 'quote', "
                    "'[\"é\", 1]', 3, 1, 'quote', 'bad date: x', '{}')")
        assert ledger.ensure_ledger(conn) == 3
        assert ledger.schema_version(conn) == ledger.LEDGER_VERSION >= 4
        ledger.record_quarantine(conn, "f", 2, [row('["é", 1]', 3), row(long_a)])
        got = sorted(query(conn, "SELECT row_key, version, seen, key_hash FROM furet.quarantine"))
        assert got == sorted([
            ('["é", 1]', 3, 2, hashlib.sha256('["é", 1]'.encode()).hexdigest()),
            (long_a, 7, 1, hashlib.sha256(long_a.encode()).hexdigest())])


# --- 5b: a row one query table rejects is not left in the others --------------------------


def test_verify_reads_the_quarantine_in_batches_of_whole_keys(fresh: dict) -> None:
    """Texts equal under the ledger's collation ('a', 'A') and a key with several versions
    stay whole: each key in one batch, the batches together what quarantined_versions
    reads at once."""
    recorded = [("a", 1), ("A", 1), ("a", 2), ("b", 5), ("é", 3), ("B", 1), ("a", 3), ("c", 1)]
    settings = fresh["target"].settings()
    with connection(settings) as conn:
        ledger.record_quarantine(conn, "fb", 1, [
            QuarantinedRow("quote", key, version, "quote", "bad value: x", {"id": key})
            for key, version in recorded])
        whole = ledger.quarantined_versions(conn, "fb", "quote")
    batches = list(ledger.quarantined_version_batches(settings, "fb", "quote",
                                                      keys_per_batch=2))
    assert [len(b) for b in batches] == [2, 2, 2]
    merged: dict[str, set[int]] = {}
    for batch in batches:
        assert not set(batch) & set(merged)
        merged.update(batch)
    assert merged == whole == {"a": {1, 2, 3}, "A": {1}, "b": {5}, "B": {1}, "é": {3},
                               "c": {1}}


def test_a_row_rejected_by_one_query_table_is_not_left_in_the_other(
        fresh: dict, cassandra_node: str) -> None:
    config, settings = _cassandra(fresh, cassandra_node, 50)
    legacy = fresh["legacy"].settings()
    tf = load_flow("cassandra_prod").table("quote")
    with connection(legacy) as conn:
        good, bad = (int(r[0]) for r in query(conn, "SELECT id FROM lf_runtime.quote "
                                                    "ORDER BY id LIMIT 2"))
    cluster, session = cassandra_session(settings, "prod")
    try:
        for table in ("quotes_by_customer", "quotes_by_day"):
            session.execute(f"TRUNCATE {table}")
        writer = CassandraWriter(session, "prod", tf,
                                 codec_for("prod quote", "updated_ts", "bigint", None))
        # a NULL customer_id: quotes_by_customer's partition key refuses it, quotes_by_day
        # (partitioned by day) would take it
        rows = [_source_row(legacy, good), _source_row(legacy, bad, customer_id=None)]
        outcome = writer.write(None, rows)
        assert outcome.written == 1
        (refused,) = outcome.quarantined
        assert refused.row_key == str(bad) and refused.target_table == "quotes_by_customer"
        assert refused.reason.startswith("rejected: quotes_by_customer: ")
        for table in ("quotes_by_customer", "quotes_by_day"):
            got = {r.quote_id for r in session.execute(f"SELECT quote_id FROM {table}")}
            assert got == {good}, table
    finally:
        cluster.shutdown()
