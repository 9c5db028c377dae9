"""`furet legacy traffic --rate R --duration D`: writes like the web app, while rounds run.

Each operation is one transaction stamped with the app's clock in epoch ms: new customers,
new quotes, quotes moving draft -> priced (with 3-6 offers) -> chosen/expired, offer price
changes. A share of them are *late commits*: the transaction is stamped and written, then
held open for a moment while later-stamped transactions commit on other connections, the
case that makes ``ts > max(ts)`` lose rows.

Stops at the end of ``duration``, when ``stop`` is set, or when the legacy server turns
read-only (``furet legacy freeze``): in-flight transactions are then rolled back.

``through_cutover``: the web app as it lives through a cutover behind the application
endpoint. A read-only server, a cut connection or a refused one is not the end: the
transaction is rolled back (never acknowledged), the app reconnects and retries until the
endpoint serves again (then on Galera). Every acknowledged write is appended to the
``acked`` log (JSON lines: table, key, version, the server that took it), which
:func:`check_acked` reads back against any server afterwards; the report gives the longest
time without an acknowledged write, the downtime as the application saw it.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import pymysql

from migration.config import DbSettings
from migration.db import DbError, connect, db_error, error_code, query
from migration.legacy.seed import INSURERS, PRODUCTS, make_uid

READ_ONLY_ERRORS = frozenset({1290, 1836})
LOCK_ERRORS = frozenset({1205, 1213})  # lock wait timeout, deadlock
# Connection refused or cut (the endpoint switching, a backend going away), server gone.
CONNECTION_ERRORS = frozenset({2003, 2006, 2013, 2055, 1927, 1053})
RETRY_PAUSE_S = 0.05


@dataclass(frozen=True)
class Write:
    """One acknowledged write: ``rows`` rows of ``table`` whose ``key`` column is ``value``
    carry version ``ts`` or a later one."""
    table: str
    key: str
    value: int | str
    ts: int
    rows: int = 1
    server: str = ""


@dataclass
class TrafficReport:
    operations: int = 0
    committed: int = 0
    late_commits: int = 0
    rolled_back: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    stopped_by: str = "duration"
    seconds: float = 0.0
    # through_cutover: failed attempts, the longest time without an acknowledged write
    # (the downtime the application saw) and how many commits each server took.
    errors: int = 0
    longest_gap_s: float = 0.0
    by_server: dict[str, int] = field(default_factory=dict)


@dataclass
class _Open:
    conn: pymysql.connections.Connection
    commit_at: float
    quote: int = 0
    writes: list[Write] = field(default_factory=list)


class _App:
    def __init__(self, settings: DbSettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.main = connect(settings, "lf_runtime", autocommit=False)
        self.spare = [connect(settings, "lf_runtime", autocommit=False) for _ in range(3)]
        self.open: list[_Open] = []
        self.touched = 0  # the quote the current operation locks (held by late commits)
        self.writes: list[Write] = []  # what the current operation wrote
        for conn in [self.main, *self.spare]:
            self._exec(conn, "SET SESSION innodb_lock_wait_timeout = 5")
            # like most web apps: no gap locks between the held (late) transactions
            self._exec(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        rows = query(self.main, "SELECT (SELECT COALESCE(MAX(id), 0) FROM customer), "
                                "(SELECT COALESCE(MAX(id), 0) FROM quote), @@hostname")
        self.max_customer, self.max_quote = (int(v) for v in rows[0][:2])
        self.server = str(rows[0][2])
        self.main.commit()

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _exec(self, conn: pymysql.connections.Connection, sql: str, args: Any = None) -> int:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return int(cur.lastrowid or 0)

    def new_customer(self, conn: pymysql.connections.Connection) -> None:
        ts = self.now_ms()
        uid = make_uid("tc", ts * 1000 + self.rng.randrange(1000), self.rng.randrange(10**9))
        cid = self._exec(conn, "INSERT INTO customer (uid, email, full_name, city, birth_date, "
                               "created_ts, updated_ts) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (uid, f"{uid}@example.org", "Nouveau Client", b"Roubaix", "1990-05-17",
                          ts, ts))
        self.max_customer = max(self.max_customer, cid)
        self.writes.append(Write("customer", "id", cid, ts))

    def new_quote(self, conn: pymysql.connections.Connection) -> None:
        ts = self.now_ms()
        uid = make_uid("tq", ts * 1000 + self.rng.randrange(1000), self.rng.randrange(10**9))
        qid = self._exec(conn, "INSERT INTO quote (uid, customer_id, product, status, "
                               "start_date, created_ts, updated_ts) VALUES "
                               "(%s, %s, %s, 'draft', CURDATE(), %s, %s)",
                         (uid, self._free("customer", self.max_customer),
                          self.rng.choice(PRODUCTS), ts, ts))
        self.max_quote = max(self.max_quote, qid)
        self.writes.append(Write("quote", "id", qid, ts))

    def _free(self, table: str, highest: int) -> int:
        """A random id of ``table`` no held (late) transaction locks: the quotes they
        changed, and the rows they inserted (locked until they commit; ids come in insert
        order, not commit order). Picking one, this single-threaded app would wait on
        itself for the whole lock wait timeout."""
        held = {w.value for o in self.open for w in o.writes if w.table == table and w.key == "id"}
        if table == "quote":
            held |= {o.quote for o in self.open}
        picked = 1
        for _ in range(100):  # all held (a nearly empty table): wait like a real app would
            picked = self.rng.randint(1, max(1, highest))
            if picked not in held:
                break
        return picked

    def _free_quote(self) -> int:
        self.touched = self._free("quote", self.max_quote)
        return self.touched

    def price_quote(self, conn: pymysql.connections.Connection) -> None:
        qid = self._free_quote()
        ts = self.now_ms()
        premium = self.rng.randint(9_000, 250_000)
        status = self.rng.choice(("priced", "chosen", "expired"))
        with conn.cursor() as cur:
            changed = cur.execute("UPDATE quote SET status = %s, premium_cents = %s, "
                                  "updated_ts = %s WHERE id = %s", (status, premium, ts, qid))
        if changed:  # a quote the server does not hold (quarantined by furet) is no write
            self.writes.append(Write("quote", "id", qid, ts))
        if status == "priced":
            rows = []
            for rank, insurer in enumerate(self.rng.sample(INSURERS, self.rng.randint(3, 6)), 1):
                uid = make_uid("to", ts * 100 + rank, self.rng.randrange(10**12))
                rows.append((uid, qid, insurer, int(premium * self.rng.uniform(0.8, 1.3)), rank,
                             ts, ts))
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO offer (uid, quote_id, insurer, price_cents, rank_no, "
                                "created_ts, updated_ts) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                                rows)
            self.writes.extend(Write("offer", "uid", row[0], ts) for row in rows)

    def reprice_offer(self, conn: pymysql.connections.Connection) -> None:
        ts, qid = self.now_ms(), self._free_quote()
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM offer WHERE quote_id = %s FOR UPDATE", (qid,))
            ids = [int(row[0]) for row in cur.fetchall()]
            cur.execute("UPDATE offer SET price_cents = price_cents + %s, updated_ts = %s "
                        "WHERE quote_id = %s", (self.rng.randint(-500, 500), ts, qid))
        self.writes.extend(Write("offer", "id", oid, ts) for oid in ids)

    def commit_due(self, force: bool = False) -> list[_Open]:
        """Commit the held transactions that are due (what they wrote is acknowledged)."""
        done: list[_Open] = []
        for item in list(self.open):
            if force or item.commit_at <= time.monotonic():
                item.conn.commit()
                self.open.remove(item)
                self.spare.append(item.conn)
                done.append(item)
        return done

    def close(self) -> None:
        for conn in [self.main, *self.spare, *(o.conn for o in self.open)]:
            with contextlib.suppress(Exception):
                conn.rollback()
                conn.close()


class _Acks:
    """The acknowledged transactions: counted, timed (the longest gap between two is the
    downtime the application saw) and appended to the ``acked`` log."""

    def __init__(self, report: TrafficReport, log: TextIO | None) -> None:
        self.report, self.log = report, log
        self.last = time.monotonic()

    def add(self, writes: list[Write], server: str) -> None:
        now = time.monotonic()
        self.report.committed += 1
        self.report.longest_gap_s = max(self.report.longest_gap_s, now - self.last)
        self.report.by_server[server] = self.report.by_server.get(server, 0) + 1
        self.last = now
        if self.log is not None:
            for write in writes:
                self.log.write(json.dumps(asdict(replace(write, server=server))) + "\n")
            self.log.flush()


def run_traffic(settings: DbSettings, rate: float, duration: float, *, seed: int | None = None,
                late_share: float = 0.1, late_ms: tuple[int, int] = (200, 1500),
                stop: threading.Event | None = None, through_cutover: bool = False,
                acked: Path | None = None) -> TrafficReport:
    """Run the web-app-like workload; see the module docstring."""
    rng = random.Random(seed)
    report = TrafficReport()
    started = time.monotonic()
    log = acked.open("a", encoding="utf-8") if acked is not None else None
    acks = _Acks(report, log)
    try:
        while True:
            try:
                _run(settings, rate, duration, rng, report, acks, late_share, late_ms, stop,
                     started)
                return report
            except (pymysql.MySQLError, DbError) as exc:
                # DbError: connecting failed (connect() names the server in one line)
                code = exc.code if isinstance(exc, DbError) else error_code(exc)
                if not through_cutover:
                    if isinstance(exc, DbError):
                        raise
                    if code not in READ_ONLY_ERRORS:
                        raise db_error(exc, settings, "lf_runtime") from None
                    report.stopped_by = "read_only"
                    return report
                if code not in READ_ONLY_ERRORS | CONNECTION_ERRORS:
                    if isinstance(exc, DbError):
                        raise
                    raise db_error(exc, settings, "lf_runtime") from None
                report.errors += 1
                if time.monotonic() - started >= duration or (stop is not None and stop.is_set()):
                    report.stopped_by = "stop" if stop is not None and stop.is_set() else "duration"
                    return report
                time.sleep(RETRY_PAUSE_S)  # then a new connection: the endpoint may have moved
    finally:
        report.seconds = time.monotonic() - started
        if log is not None:
            log.close()


def _run(settings: DbSettings, rate: float, duration: float, rng: random.Random,
         report: TrafficReport, acks: _Acks, late_share: float, late_ms: tuple[int, int],
         stop: threading.Event | None, started: float) -> None:
    """One connection's life: until the end, or a database error (raised, the open
    transactions rolled back: none of them was acknowledged)."""
    kinds = (("new_quote", 35), ("price_quote", 40), ("reprice_offer", 15), ("new_customer", 10))
    app = _App(settings, rng)
    try:
        while True:
            if time.monotonic() - started >= duration:
                break
            if stop is not None and stop.is_set():
                report.stopped_by = "stop"
                break
            for item in app.commit_due():
                acks.add(item.writes, app.server)
            kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            late = bool(app.spare) and rng.random() < late_share
            conn = app.spare.pop() if late else app.main
            app.touched, app.writes = 0, []
            try:
                getattr(app, kind)(conn)
            except pymysql.MySQLError as exc:
                if error_code(exc) not in LOCK_ERRORS:
                    if late:
                        app.spare.append(conn)
                    report.rolled_back += len(app.open) + 1
                    raise
                conn.rollback()  # the app retries later; this transaction never happened
                (app.spare if late else []).append(conn)
                report.rolled_back += 1
                continue
            report.operations += 1
            report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
            if late:
                hold = rng.randint(*late_ms) / 1000.0
                app.open.append(_Open(conn, time.monotonic() + hold, app.touched, app.writes))
                report.late_commits += 1
            else:
                conn.commit()
                acks.add(app.writes, app.server)
            pause = report.operations / rate - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
        for item in app.commit_due(force=True):
            acks.add(item.writes, app.server)
    finally:
        app.close()


def read_acked(path: Path) -> Iterator[Write]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield Write(**json.loads(line))


def quarantined_rows(conn: pymysql.connections.Connection) -> set[tuple[str, str]]:
    """(table, key) of the rows furet's ledger holds in quarantine on this server, when it
    has one and the account may read it (else none)."""
    try:
        rows = query(conn, "SELECT source_table, row_key FROM furet.quarantine")
    except pymysql.MySQLError:
        return set()
    return {(str(r[0]), str(r[1])) for r in rows}


@dataclass
class AckedCheck:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    quarantined: int = 0   # missing, but furet quarantined that row (with its reason)


def check_acked(settings: DbSettings, path: Path) -> AckedCheck:
    """Every acknowledged write of the log is on the server of ``settings`` (the row holds
    that version or a later one), except rows furet quarantined (counted apart)."""
    conn = connect(settings, "lf_runtime")
    result = AckedCheck()
    try:
        quarantine = quarantined_rows(conn)
        for write in read_acked(path):
            result.checked += 1
            rows = query(conn, f"SELECT COUNT(*) FROM `{write.table}` WHERE `{write.key}` = %s "
                               "AND updated_ts >= %s", (write.value, write.ts))
            if int(rows[0][0]) >= write.rows:
                continue
            if (write.table, str(write.value)) in quarantine:
                result.quarantined += 1
                continue
            result.missing.append(f"{write.table} {write.key}={write.value} version {write.ts} "
                                  f"(acknowledged by {write.server})")
    finally:
        conn.close()
    return result
