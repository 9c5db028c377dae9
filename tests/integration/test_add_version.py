"""`furet legacy add-version` on the real legacy server (127.0.0.11, non-strict, MariaDB
10.11) while a web-app-like writer inserts and updates the same table without pause.

For a table with an integer key and one with a two-column key: the dry run changes
nothing, the column is added online (INSTANT) and backfilled in keyset batches with 0
failed web-app writes (the writer's lock waits are shorter than the server's defaults),
every row has a version, the backfill is monotonic in key order and leaves the table's
own ON UPDATE column alone, a row updated afterwards gets a newer version, a second run
changes nothing, and rounds then copy the table by the new column (`flow init` chooses
it, `target schema` creates the target table). A table without a primary key and one that
only a locking ALTER can change are refused with their reason.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from migration.db import query
from migration.engine.round import RoundOptions, run_round
from migration.flows.generate import flow_init
from migration.legacy.add_version import COLUMN_DEFINITION, Outcome, add_version
from migration.target.ddl import target_schema
from tests.helpers import BIN

from .conftest import APP_USER, PASSWORD, Server, furet_env, make_config

pytestmark = pytest.mark.integration
DB = "addver"
COLUMN = "updated_ts"
PINNED_AT = datetime(2001, 1, 1)  # the tables' own `modified` before anyone updates a row


@dataclass(frozen=True)
class Shape:
    table: str
    key: tuple[str, ...]
    ddl: str
    fill: str
    rows: int

    def insert(self, cur: pymysql.cursors.Cursor, n: int) -> None:
        if self.key == ("id",):
            cur.execute(f"INSERT INTO {self.table} (name) VALUES (%s)", (f"new {n}",))
            return
        for line_no in (1, 2, 3):  # a new order and its lines, in key order
            cur.execute(f"INSERT INTO {self.table} (order_id, line_no, sku) VALUES (%s, %s, %s)",
                        (100_000 + n, line_no, f"N{n:07d}"))


MODIFIED = "modified TIMESTAMP NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP"
ITEMS = Shape("items", ("id",),
              "CREATE TABLE items (id INT UNSIGNED NOT NULL AUTO_INCREMENT, "
              f"name VARCHAR(40) NOT NULL, qty INT NOT NULL DEFAULT 0, {MODIFIED}, "
              "PRIMARY KEY (id)) ENGINE=InnoDB",
              "INSERT INTO items (name, qty) SELECT CONCAT('item ', seq), seq MOD 7 "
              "FROM seq_1_to_5000", 5000)
ORDER_LINES = Shape("order_lines", ("order_id", "line_no"),
                    "CREATE TABLE order_lines (order_id INT UNSIGNED NOT NULL, "
                    "line_no SMALLINT UNSIGNED NOT NULL, sku CHAR(8) NOT NULL, "
                    f"qty INT NOT NULL DEFAULT 1, {MODIFIED}, "
                    "PRIMARY KEY (order_id, line_no)) ENGINE=InnoDB",
                    "INSERT INTO order_lines (order_id, line_no, sku) SELECT seq DIV 5 + 1, "
                    "seq MOD 5 + 1, LPAD(seq, 8, '0') FROM seq_0_to_3999", 4000)


def _connect(server: Server, user: str = "furet") -> pymysql.connections.Connection:
    conn = pymysql.connect(host=server.address, port=server.port, user=user,
                           password=PASSWORD, database=DB, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def _rows(conn: pymysql.connections.Connection, sql: str, args: Any = None) -> list[Any]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


@pytest.fixture
def legacy(servers: dict[str, Server]) -> Iterator[pymysql.connections.Connection]:
    """An empty scratch database on the legacy server."""
    with contextlib.closing(servers["legacy"].root()) as root, root.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
    conn = _connect(servers["legacy"])
    try:
        yield conn
    finally:
        conn.close()


def _create(conn: pymysql.connections.Connection, shape: Shape) -> None:
    _rows(conn, shape.ddl)
    _rows(conn, shape.fill)


def _versions(conn: pymysql.connections.Connection, shape: Shape) -> dict[tuple[Any, ...], Any]:
    cols = ", ".join(shape.key)
    return {tuple(r[:-1]): r[-1] for r in _rows(
        conn, f"SELECT {cols}, {COLUMN} FROM {shape.table} ORDER BY {cols}")}


def _schema(conn: pymysql.connections.Connection) -> list[Any]:
    """What information_schema says about the scratch database (and each CREATE TABLE)."""
    tables = _rows(conn, "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES "
                         "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME", (DB,))
    columns = _rows(conn, "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, "
                          "IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS "
                          "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION", (DB,))
    creates = [_rows(conn, f"SHOW CREATE TABLE {t[0]}")[0] for t in tables]
    return [tables, columns, creates]


def _furet(servers: dict[str, Server], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "furet"), "legacy", "add-version", "--database", DB,
                           *args], env=furet_env(servers), capture_output=True, text=True,
                          timeout=300)


def _one_line(text: str) -> str:
    """A message as one line (rich wraps stderr at 140 columns when it is not a terminal)."""
    return " ".join(text.split())


@dataclass
class WebApp:
    """Web-app-like writes on one table, as fast as they go, from the app's own account:
    one-row updates, two-row transactions in key order, inserts. Its lock waits are
    shorter than the server's defaults, so a long lock taken by add-version would fail
    its writes (counted, never retried). Its updates go to every third key (spread over the
    whole key range): however long add-version takes on a loaded machine, two thirds of the
    rows are only ever backfilled, which the checks of untouched rows need."""

    server: Server
    shape: Shape
    keys: list[tuple[Any, ...]]
    stop: threading.Event = field(default_factory=threading.Event)
    after_mark: threading.Event = field(default_factory=threading.Event)
    committed: int = 0
    failed: list[str] = field(default_factory=list)
    updated: set[tuple[Any, ...]] = field(default_factory=set)
    updated_after_mark: set[tuple[Any, ...]] = field(default_factory=set)
    thread: threading.Thread | None = None

    def start(self) -> WebApp:
        self.thread = threading.Thread(target=self.run, name="webapp", daemon=True)
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive()

    def wait_for(self, commits: int) -> None:
        deadline = time.monotonic() + 30
        while self.committed < commits:
            assert time.monotonic() < deadline and not self.failed, self.failed
            time.sleep(0.01)

    def run(self) -> None:
        rng = random.Random(7)
        conn = _connect(self.server, APP_USER)
        conn.autocommit(False)
        with conn.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 3, lock_wait_timeout = 10")
        where = " AND ".join(f"{k} = %s" for k in self.shape.key)
        update = f"UPDATE {self.shape.table} SET qty = qty + 1 WHERE {where}"
        hot = self.keys[::3]
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                after = self.after_mark.is_set()
                kind = n % 3
                touched = (sorted(rng.sample(hot, 2)) if kind == 1
                           else [rng.choice(hot)] if kind == 2 else [])
                try:
                    with conn.cursor() as cur:
                        if kind == 0:
                            self.shape.insert(cur, n)
                        for key in touched:
                            cur.execute(update, key)
                    conn.commit()
                except pymysql.MySQLError as exc:
                    self.failed.append(f"{type(exc).__name__} {exc.args}")
                    with contextlib.suppress(pymysql.MySQLError):
                        conn.rollback()
                    continue
                self.committed += 1
                self.updated.update(touched)
                if after:
                    self.updated_after_mark.update(touched)
        finally:
            conn.close()


class Recorder:
    """A progress Reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.totals: dict[str, int | None] = {}
        self.rows: dict[str, int] = {}

    def table(self, name: str, total: int | None) -> None:
        self.totals[name] = total
        self.rows[name] = 0

    def phase(self, name: str, what: str) -> None:
        pass

    def advance(self, name: str, rows: int, chunks: int = 0) -> None:
        self.rows[name] = self.rows.get(name, 0) + rows


@pytest.mark.parametrize("shape", [ITEMS, ORDER_LINES], ids=lambda s: s.table)
def test_add_version_under_web_app_writes(servers: dict[str, Server],
                                          legacy: pymysql.connections.Connection,
                                          shape: Shape, tmp_path: Path) -> None:
    _create(legacy, shape)
    keys = sorted(tuple(r) for r in _rows(legacy, f"SELECT {', '.join(shape.key)} FROM "
                                                  f"{shape.table}"))
    assert len(keys) == shape.rows

    # --dry-run: the plan as the server answers it, and nothing changes
    before = _schema(legacy)
    checksum = _rows(legacy, f"CHECKSUM TABLE {shape.table}")
    dry = _furet(servers, "--table", shape.table, "--dry-run", "--batch-rows", "300")
    assert dry.returncode == 0, dry.stderr
    assert f"ADD COLUMN `{COLUMN}` {COLUMN_DEFINITION}, ALGORITHM=INSTANT" in dry.stdout
    assert "empty copy of the table" in dry.stdout
    assert f"~{-(-shape.rows // 300)} batches of 300 rows by primary key" in dry.stdout
    assert "dry run, nothing changed" in dry.stdout
    assert _schema(legacy) == before
    assert _rows(legacy, f"CHECKSUM TABLE {shape.table}") == checksum

    # the real run, while the web app writes
    app = WebApp(servers["legacy"], shape, keys).start()
    try:
        app.wait_for(200)
        commits_before = app.committed
        progress = Recorder()
        result = add_version(servers["legacy"].settings(), shape.table, database=DB,
                             column=COLUMN, batch_rows=200, pause_ms=20, progress=progress)
        commits_during = app.committed - commits_before
        after_run = _versions(legacy, shape)
        time.sleep(0.01)  # a later update cannot share a millisecond with what was read
        app.after_mark.set()
        app.wait_for(app.committed + 200)
    finally:
        app.join()

    assert app.failed == []
    assert commits_during > 50  # the writer kept committing while add-version ran
    assert result.outcome is Outcome.ADDED
    assert result.plan is not None and result.plan.alter.clause.sql == "ALGORITHM=INSTANT"
    assert result.plan.key == shape.key
    assert result.plan.pinned == ("modified",)
    assert result.rows_walked >= shape.rows and result.batches >= shape.rows // 200
    assert progress.rows[f"{DB}.{shape.table}"] == result.rows_walked

    (definition,) = _rows(legacy, "SELECT COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
                                  "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                                  "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
                          (DB, shape.table, COLUMN))
    assert definition == ("timestamp(3)", "NO", "current_timestamp(3)",
                          "on update current_timestamp(3)")

    final = _versions(legacy, shape)
    assert all(isinstance(v, datetime) and v > PINNED_AT for v in final.values())
    assert _rows(legacy, f"SELECT COUNT(*) FROM {shape.table} WHERE {COLUMN} IS NULL") == [(0,)]

    # rows the web app never touched: backfilled after the ALTER, monotonic in key order,
    # in several batches, and their own `modified` left alone
    untouched = [k for k in keys if k not in app.updated]
    assert len(untouched) > shape.rows // 2
    stamped = [final[k] for k in untouched]
    assert result.threshold is not None and min(stamped) >= result.threshold
    assert stamped == sorted(stamped)
    assert len(set(stamped)) >= 3
    assert result.rows_backfilled >= len(untouched)
    cols = ", ".join(shape.key)
    modified = {tuple(r[:-1]): r[-1] for r in _rows(
        legacy, f"SELECT {cols}, modified FROM {shape.table}")}
    assert {modified[k] for k in untouched} == {PINNED_AT}

    # rows the web app updated after add-version finished: a newer version than before
    assert len(app.updated_after_mark) > 20
    assert all(final[k] > after_run[k] for k in app.updated_after_mark)

    # a second run finds the column and changes nothing
    schema = _schema(legacy)
    again = _furet(servers, "--table", shape.table)
    assert again.returncode == 0, again.stderr
    assert f"already has column {COLUMN} (timestamp(3)); nothing changed" in again.stdout
    assert _schema(legacy) == schema
    assert _versions(legacy, shape) == final

    # rounds then run on the new column: the flow made by `flow init` picks it as the
    # version, the target table comes from `target schema`, and two rounds copy the table
    _rounds_on_the_new_version(servers, legacy, shape, tmp_path)


def _rounds_on_the_new_version(servers: dict[str, Server],
                               legacy: pymysql.connections.Connection, shape: Shape,
                               tmp_path: Path) -> None:
    config = make_config(servers)
    made = flow_init(config, DB, shape.table, f"mariadb:{DB}", f"addver_{shape.table}")
    spec = yaml.safe_load(made.text)["tables"][0]
    assert spec["version"] == COLUMN and "ON UPDATE" in made.text
    flow = tmp_path / f"addver_{shape.table}.yml"
    flow.write_text(made.text)
    with contextlib.closing(servers["target"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {DB}.{shape.table}")
    target_schema(config, str(flow), apply=True)
    first = run_round(config, RoundOptions(str(flow)))
    assert first.kind == "full" and first.rows_quarantined == 0
    with legacy.cursor() as cur:
        cur.execute(f"UPDATE {shape.table} SET qty = qty + 100 ORDER BY {', '.join(shape.key)} "
                    "LIMIT 50")
    time.sleep(config.rounds.safety_lag_ms / 1000 + 0.5)  # past the lag: in the window
    second = run_round(config, RoundOptions(str(flow)))
    assert second.kind == "window" and second.rows_written >= 50
    columns = ", ".join([*shape.key, "qty", COLUMN])
    order = ", ".join(shape.key)
    source = _rows(legacy, f"SELECT {columns} FROM {shape.table} ORDER BY {order}")
    with contextlib.closing(servers["target"].root()) as conn:
        copied = query(conn, f"SELECT {columns} FROM {DB}.{shape.table} ORDER BY {order}")
    assert source == copied


class Holder:
    """A web-app transaction that updates one row and commits ``seconds`` later."""

    def __init__(self, server: Server, shape: Shape, key: tuple[Any, ...]) -> None:
        self.conn = _connect(server, APP_USER)
        self.conn.autocommit(False)
        where = " AND ".join(f"{k} = %s" for k in shape.key)
        with self.conn.cursor() as cur:
            cur.execute(f"UPDATE {shape.table} SET qty = qty + 1 WHERE {where}", key)
        self.error: BaseException | None = None
        self.committed = False

    def commit_after(self, seconds: float) -> threading.Thread:
        def run() -> None:
            time.sleep(seconds)
            try:
                self.conn.commit()
                self.committed = True
            except BaseException as exc:  # the test asserts there was none
                self.error = exc
            finally:
                self.conn.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


def test_add_version_waits_out_long_web_app_transactions(
        servers: dict[str, Server], legacy: pymysql.connections.Connection) -> None:
    """A transaction open on the table before the ALTER holds its metadata lock for 3 s:
    the ALTER gives up after 2 s and is retried. A transaction that locks a row once the
    backfill has started holds it for 2.5 s: the batch gives up after 1 s and is retried.
    Both transactions commit, and the writer on the other rows never fails."""
    _create(legacy, ITEMS)
    keys = sorted(tuple(r) for r in _rows(legacy, "SELECT id FROM items"))
    held_before, held_during = (10,), (3000,)
    app = WebApp(servers["legacy"], ITEMS,
                 [k for k in keys if k not in (held_before, held_during)]).start()
    threads: list[threading.Thread] = []
    holders: list[Holder] = []

    class HoldOnBackfill(Recorder):
        def table(self, name: str, total: int | None) -> None:
            super().table(name, total)
            holders.append(Holder(servers["legacy"], ITEMS, held_during))
            threads.append(holders[-1].commit_after(2.5))

    try:
        app.wait_for(100)
        holders.append(Holder(servers["legacy"], ITEMS, held_before))
        threads.append(holders[-1].commit_after(3.0))
        started = time.monotonic()
        result = add_version(servers["legacy"].settings(), "items", database=DB,
                             column=COLUMN, batch_rows=200, progress=HoldOnBackfill())
        seconds = time.monotonic() - started
    finally:
        app.join()
        for thread in threads:
            thread.join(30)
    assert app.failed == []
    assert [(h.committed, h.error) for h in holders] == [(True, None), (True, None)]
    assert result.outcome is Outcome.ADDED
    assert result.alter_retries >= 1 and result.batch_retries >= 1
    assert result.alter_seconds >= 2.5 and seconds >= 5.0
    assert result.rows_walked >= ITEMS.rows
    final = _versions(legacy, ITEMS)
    assert result.threshold is not None
    assert min(final.values()) >= result.threshold  # every row backfilled or updated since


def test_a_table_without_a_primary_key_is_refused(servers: dict[str, Server],
                                                  legacy: pymysql.connections.Connection
                                                  ) -> None:
    _rows(legacy, "CREATE TABLE events (at DATETIME NOT NULL, what VARCHAR(20)) ENGINE=InnoDB")
    _rows(legacy, "INSERT INTO events VALUES (NOW(), 'a'), (NOW(), 'b')")
    before = _schema(legacy)
    for extra in ((), ("--dry-run",)):
        run = _furet(servers, "--table", "events", *extra)
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        assert _one_line(run.stderr) == (
            f"furet: error: legacy 127.0.0.11:3306 database {DB} table events: no primary "
            "key: add-version backfills by primary key in small batches (and Galera needs "
            "one too); add one first")
    missing = _furet(servers, "--table", "nowhere")
    assert missing.returncode == 2
    assert _one_line(missing.stderr).endswith(f"database {DB} table nowhere: no such table")
    assert _schema(legacy) == before


def test_a_locking_alter_needs_allow_lock(servers: dict[str, Server],
                                          legacy: pymysql.connections.Connection) -> None:
    """A FULLTEXT index: InnoDB adds the column in place only with LOCK=SHARED (the server
    says so); furet names that ALTER and its lock, and runs it only with --allow-lock."""
    _rows(legacy, "CREATE TABLE notes (id INT UNSIGNED NOT NULL PRIMARY KEY, body TEXT, "
                  "FULLTEXT KEY ft_body (body)) ENGINE=InnoDB")
    _rows(legacy, "INSERT INTO notes SELECT seq, CONCAT('note ', seq) FROM seq_1_to_50")
    before = _schema(legacy)
    dry = _furet(servers, "--table", "notes", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "ALGORITHM=INPLACE, LOCK=SHARED" in dry.stdout
    assert "Fulltext index creation requires a lock" in dry.stdout
    assert "only with --allow-lock" in dry.stdout

    refused = _furet(servers, "--table", "notes")
    assert refused.returncode == 2
    message = _one_line(refused.stderr)
    assert f"database {DB} table notes: no online ALTER" in message
    assert f"ADD COLUMN `{COLUMN}` {COLUMN_DEFINITION}, ALGORITHM=INPLACE, LOCK=SHARED" in message
    assert "writes wait for the whole ALTER" in message and "--allow-lock" in message
    assert _schema(legacy) == before

    done = _furet(servers, "--table", "notes", "--allow-lock", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "with ALGORITHM=INPLACE, LOCK=SHARED" in done.stdout
    assert "backfilled 50 of 50 rows in 1 batch" in done.stdout
    assert _rows(legacy, f"SELECT COUNT(*) FROM notes WHERE {COLUMN} > '2020-01-01'") == [(50,)]

