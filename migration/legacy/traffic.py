"""`furet legacy traffic --rate R --duration D`: writes like the web app, while rounds run.

Each operation is one transaction stamped with the app's clock in epoch ms: new customers,
new quotes, quotes moving draft -> priced (with 3-6 offers) -> chosen/expired, offer price
changes. A share of them are *late commits*: the transaction is stamped and written, then
held open for a moment while later-stamped transactions commit on other connections, the
case that makes ``ts > max(ts)`` lose rows.

Stops at the end of ``duration``, when ``stop`` is set, or when the legacy server turns
read-only (``furet legacy freeze``): in-flight transactions are then rolled back.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql

from migration.config import DbSettings
from migration.db import connect, db_error, error_code, query
from migration.legacy.seed import INSURERS, PRODUCTS, make_uid

READ_ONLY_ERRORS = frozenset({1290, 1836})
LOCK_ERRORS = frozenset({1205, 1213})  # lock wait timeout, deadlock


@dataclass
class TrafficReport:
    operations: int = 0
    committed: int = 0
    late_commits: int = 0
    rolled_back: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    stopped_by: str = "duration"
    seconds: float = 0.0


@dataclass
class _Open:
    conn: pymysql.connections.Connection
    commit_at: float
    quote: int = 0


class _App:
    def __init__(self, settings: DbSettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.main = connect(settings, "lf_runtime", autocommit=False)
        self.spare = [connect(settings, "lf_runtime", autocommit=False) for _ in range(3)]
        self.open: list[_Open] = []
        self.touched = 0  # the quote the current operation locks (held by late commits)
        for conn in [self.main, *self.spare]:
            self._exec(conn, "SET SESSION innodb_lock_wait_timeout = 5")
            # like most web apps: no gap locks between the held (late) transactions
            self._exec(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        rows = query(self.main, "SELECT (SELECT COALESCE(MAX(id), 0) FROM customer), "
                                "(SELECT COALESCE(MAX(id), 0) FROM quote)")
        self.max_customer, self.max_quote = (int(v) for v in rows[0])
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

    def new_quote(self, conn: pymysql.connections.Connection) -> None:
        ts = self.now_ms()
        uid = make_uid("tq", ts * 1000 + self.rng.randrange(1000), self.rng.randrange(10**9))
        qid = self._exec(conn, "INSERT INTO quote (uid, customer_id, product, status, "
                               "start_date, created_ts, updated_ts) VALUES "
                               "(%s, %s, %s, 'draft', CURDATE(), %s, %s)",
                         (uid, self.rng.randint(1, max(1, self.max_customer)),
                          self.rng.choice(PRODUCTS), ts, ts))
        self.max_quote = max(self.max_quote, qid)

    def _free_quote(self) -> int:
        held = {o.quote for o in self.open}
        while True:
            qid = self.rng.randint(1, max(1, self.max_quote))
            if qid not in held:
                self.touched = qid
                return qid

    def price_quote(self, conn: pymysql.connections.Connection) -> None:
        qid = self._free_quote()
        ts = self.now_ms()
        premium = self.rng.randint(9_000, 250_000)
        status = self.rng.choice(("priced", "chosen", "expired"))
        self._exec(conn, "UPDATE quote SET status = %s, premium_cents = %s, updated_ts = %s "
                         "WHERE id = %s", (status, premium, ts, qid))
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

    def reprice_offer(self, conn: pymysql.connections.Connection) -> None:
        self._exec(conn, "UPDATE offer SET price_cents = price_cents + %s, updated_ts = %s "
                         "WHERE quote_id = %s", (self.rng.randint(-500, 500), self.now_ms(),
                                                 self._free_quote()))

    def commit_due(self, force: bool = False) -> int:
        done = 0
        for item in list(self.open):
            if force or item.commit_at <= time.monotonic():
                item.conn.commit()
                self.open.remove(item)
                self.spare.append(item.conn)
                done += 1
        return done

    def close(self) -> None:
        for conn in [self.main, *self.spare, *(o.conn for o in self.open)]:
            with contextlib.suppress(Exception):
                conn.rollback()
                conn.close()


def run_traffic(settings: DbSettings, rate: float, duration: float, *, seed: int | None = None,
                late_share: float = 0.1, late_ms: tuple[int, int] = (200, 1500),
                stop: threading.Event | None = None) -> TrafficReport:
    """Run the web-app-like workload; see the module docstring."""
    rng = random.Random(seed)
    report = TrafficReport()
    kinds = (("new_quote", 35), ("price_quote", 40), ("reprice_offer", 15), ("new_customer", 10))
    app = _App(settings, rng)
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= duration:
                break
            if stop is not None and stop.is_set():
                report.stopped_by = "stop"
                break
            report.committed += app.commit_due()
            kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            late = bool(app.spare) and rng.random() < late_share
            conn = app.spare.pop() if late else app.main
            app.touched = 0
            try:
                getattr(app, kind)(conn)
            except pymysql.MySQLError as exc:
                if error_code(exc) not in LOCK_ERRORS:
                    raise
                conn.rollback()  # the app retries later; this transaction never happened
                (app.spare if late else []).append(conn)
                report.rolled_back += 1
                continue
            report.operations += 1
            report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
            if late:
                hold = rng.randint(*late_ms) / 1000.0
                app.open.append(_Open(conn, time.monotonic() + hold, app.touched))
                report.late_commits += 1
            else:
                conn.commit()
                report.committed += 1
            pause = report.operations / rate - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
        report.committed += app.commit_due(force=True)
    except pymysql.MySQLError as exc:
        if error_code(exc) not in READ_ONLY_ERRORS:
            raise db_error(exc, settings, "lf_runtime") from None
        report.stopped_by = "read_only"
        report.rolled_back += len(app.open) + 1
    finally:
        app.close()
        report.seconds = time.monotonic() - started
    return report
