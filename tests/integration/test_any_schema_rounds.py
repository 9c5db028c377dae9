"""Rounds on a schema furet did not write: composite keys of 2 and 3 columns, a string key,
DATETIME(0), TIMESTAMP(3) and epoch-seconds versions, with same-second writes under load.

Real servers (tests/integration/conftest.py). The writer changes rows as a web app does,
thousands per second sharing one second of DATETIME(0); rounds 2 and 3 run during the
writes, a final round after they stop; the target must then equal the source row for row.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from migration.db import connection, query
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.freeze import freeze, unfreeze
from migration.verify.run import VerifyOptions, run_verify

from .conftest import Server, make_config

DB = "shop_any"
TABLES = {
    # composite key of 2 columns, a second-precision DATETIME version, a decimal
    "order_line": """CREATE TABLE {db}.order_line (
        order_id INT NOT NULL, line_no SMALLINT NOT NULL, sku VARCHAR(20) NOT NULL,
        qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, updated_at DATETIME NOT NULL,
        PRIMARY KEY (order_id, line_no), KEY (updated_at))""",
    # composite key of 3 columns with strings, TIMESTAMP(3) kept by the server
    "stock": """CREATE TABLE {db}.stock (
        warehouse CHAR(3) NOT NULL, sku VARCHAR(20) NOT NULL, lot INT NOT NULL,
        qty INT NOT NULL,
        changed TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
            ON UPDATE CURRENT_TIMESTAMP(3),
        PRIMARY KEY (warehouse, sku, lot), KEY (changed))""",
    # a string key, epoch seconds in an INT, latin1 text
    "member": """CREATE TABLE {db}.member (
        code VARCHAR(16) NOT NULL, name VARCHAR(40) NOT NULL, touched INT NOT NULL,
        PRIMARY KEY (code), KEY (touched)) DEFAULT CHARSET latin1""",
    # no version column; rows deleted on the source are deleted on the target
    "tag_link": """CREATE TABLE {db}.tag_link (
        post_id INT NOT NULL, tag VARCHAR(20) NOT NULL, note VARCHAR(30) NULL,
        PRIMARY KEY (post_id, tag))""",
    # no version column, deletes kept (the default)
    "country": """CREATE TABLE {db}.country (
        code CHAR(2) NOT NULL PRIMARY KEY, name VARCHAR(40) NOT NULL) DEFAULT CHARSET latin1""",
}
FLOW = {
    "name": "any_schema",
    "source": {"server": "legacy", "database": DB},
    "target": {"kind": "mariadb", "server": "target", "database": DB},
    "tables": [
        {"source": "order_line", "key": ["order_id", "line_no"], "version": "updated_at",
         "targets": [{"table": "order_line", "columns": {
             c: c for c in ("order_id", "line_no", "sku", "qty", "price", "updated_at")}}]},
        {"source": "stock", "key": ["warehouse", "sku", "lot"], "version": "changed",
         "targets": [{"table": "stock", "columns": {
             c: c for c in ("warehouse", "sku", "lot", "qty", "changed")}}]},
        {"source": "member", "key": "code", "version": "touched",
         "targets": [{"table": "member", "columns": {c: c for c in ("code", "name",
                                                                       "touched")}}]},
        {"source": "tag_link", "key": ["post_id", "tag"], "version": "none",
         "deletes": "propagate",
         "targets": [{"table": "tag_link", "columns": {c: c for c in ("post_id", "tag",
                                                                         "note")}}]},
        {"source": "country", "key": "code", "version": "none",
         "targets": [{"table": "country", "columns": {"code": "code", "name": "name"}}]},
    ],
}
ORDER = {"order_line": "order_id, line_no", "stock": "warehouse, sku, lot", "member": "code",
         "tag_link": "post_id, tag", "country": "code"}
COUNTRIES = [f"{a}{b}" for a in "ABCDEFGH" for b in "ABCDEFGHIJ"]


def _schema(server: Server) -> None:
    with contextlib.closing(server.root()) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for ddl in TABLES.values():
            cur.execute(ddl.format(db=DB))


def _fill(server: Server, rng: random.Random) -> None:
    with contextlib.closing(server.root()) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.executemany(
            f"INSERT INTO {DB}.order_line VALUES (%s, %s, %s, %s, %s, "
            "UTC_TIMESTAMP() - INTERVAL %s SECOND)",
            [(o, n, f"SKU-{rng.randrange(500)}", rng.randrange(1, 9),
              f"{rng.randrange(100, 99999) / 100:.2f}", rng.randrange(0, 3))
             for o in range(1, 801) for n in range(1, 4)])
        cur.executemany(f"INSERT INTO {DB}.stock (warehouse, sku, lot, qty) VALUES "
                        "(%s, %s, %s, %s)",
                        [(w, f"sku-{s:04d}", lot, rng.randrange(100))
                         for w in ("PAR", "LYS", "BOR") for s in range(300)
                         for lot in (1, 2)])
        cur.executemany(f"INSERT INTO {DB}.member VALUES (%s, %s, UNIX_TIMESTAMP())",
                        [(f"m{i:05d}", rng.choice(["Zoé", "Jérôme", "Ådne", "Noël"]))
                         for i in range(1500)])
        cur.executemany(f"INSERT INTO {DB}.tag_link VALUES (%s, %s, %s)",
                        [(p, t, None if p % 3 else "pinned") for p in range(1, 1001)
                         for t in ("news", "sport", "tech")[:1 + p % 3]])
        cur.executemany(f"INSERT INTO {DB}.country VALUES (%s, %s)",
                        [(c, f"Pays {c} é") for c in COUNTRIES])


class Writer(threading.Thread):
    """Web-app-like changes with versions from the server's clock, as fast as it goes."""

    def __init__(self, server: Server, seed: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.deleted = 0
        self.failures: list[str] = []

    def run(self) -> None:
        conn = pymysql.connect(unix_socket=self.server.socket, user="root", autocommit=True,
                               charset="utf8mb4")
        try:
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                next_order = 10_000
                while not self.stop.is_set():
                    pick = self.rng.random()
                    try:
                        if pick < 0.4:
                            cur.execute(f"UPDATE {DB}.order_line SET qty = qty + 1, "
                                        "updated_at = UTC_TIMESTAMP() WHERE order_id = %s",
                                        (self.rng.randrange(1, 801),))
                        elif pick < 0.6:
                            next_order += 1
                            cur.execute(f"INSERT INTO {DB}.order_line VALUES (%s, 1, 'SKU-1', "
                                        "1, 9.99, UTC_TIMESTAMP()), (%s, 2, 'SKU-2', 2, "
                                        "19.50, UTC_TIMESTAMP())", (next_order, next_order))
                        elif pick < 0.7:
                            post = self.rng.randrange(1, 1200)
                            if self.rng.random() < 0.5:
                                cur.execute(f"DELETE FROM {DB}.tag_link WHERE post_id = %s",
                                            (post,))
                                self.deleted += cur.rowcount
                            else:
                                cur.execute(f"INSERT IGNORE INTO {DB}.tag_link VALUES "
                                            "(%s, 'misc', %s)", (post, f"n{self.writes}"))
                        elif pick < 0.72:
                            cur.execute(f"UPDATE {DB}.country SET name = %s WHERE code = %s",
                                        (f"Land {self.writes}", self.rng.choice(COUNTRIES)))
                        elif pick < 0.85:
                            cur.execute(f"UPDATE {DB}.stock SET qty = qty + 1 WHERE "
                                        "warehouse = %s AND sku = %s",
                                        (self.rng.choice(["PAR", "LYS", "BOR"]),
                                         f"sku-{self.rng.randrange(300):04d}"))
                        else:
                            cur.execute(f"UPDATE {DB}.member SET name = %s, touched = "
                                        "UNIX_TIMESTAMP() WHERE code = %s",
                                        (self.rng.choice(["Ana", "Øyvind", "Ève"]),
                                         f"m{self.rng.randrange(1500):05d}"))
                        self.writes += 1
                    except pymysql.MySQLError as exc:
                        self.failures.append(str(exc))
        finally:
            conn.close()


def _rows(server: Server, table: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(server.root()) as conn:
        return query(conn, f"SELECT * FROM {DB}.{table} ORDER BY {ORDER[table]}")


@pytest.fixture
def any_schema(fresh: dict[str, Server], tmp_path: Path) -> Path:
    seed = int(os.environ.get("FURET_TEST_SEED", random.randrange(1 << 30)))
    print(f"any-schema seed {seed} (FURET_TEST_SEED={seed} replays it)")
    for role in ("legacy", "target"):
        _schema(fresh[role])
    _fill(fresh["legacy"], random.Random(seed))
    path = tmp_path / "any_schema.yml"
    path.write_text(yaml.safe_dump(FLOW, allow_unicode=True))
    return path


def test_rounds_under_same_second_writes_end_equal(fresh: dict[str, Server],
                                                    any_schema: Path) -> None:
    config = make_config(fresh, overlap_ms=2000, safety_lag_ms=1000)
    flow = str(any_schema)
    first = run_round(config, RoundOptions(flow))
    assert first.kind == "full" and first.rows_quarantined == 0
    assert {t.source_table: t.rows_written for t in first.tables} == {
        "order_line": 2400, "stock": 1800, "member": 1500, "tag_link": 2000, "country": 80}
    writer = Writer(fresh["legacy"], random.randrange(1 << 30))
    writer.start()
    try:
        for _ in range(2):
            time.sleep(1.5)
            later = run_round(config, RoundOptions(flow))
            assert later.kind == "window" and later.rows_quarantined == 0
    finally:
        writer.stop.set()
        writer.join(30)
    assert not writer.failures, writer.failures[:3]
    assert writer.writes > 1000, f"only {writer.writes} writes: the test proves little"
    assert writer.deleted > 10, "too few deletes to show their propagation"
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {DB}.country WHERE code IN ('AA', 'HJ')")  # kept on target
    freeze(fresh["legacy"].settings())  # --final refuses a legacy that is not frozen
    final = run_round(config, RoundOptions(flow, final=True))
    unfreeze(fresh["legacy"].settings())
    assert final.final and final.rows_quarantined == 0
    tables = {t.source_table: t for t in final.tables}
    assert tables["country"].rows_deleted == 0 and tables["tag_link"].version_type == "none"
    assert sum(t.rows_deleted for t in final.tables) == final.rows_deleted
    for table in TABLES:
        if table == "country":
            source = _rows(fresh["legacy"], table)
            target = [r for r in _rows(fresh["target"], table) if r[0] not in ("AA", "HJ")]
            assert source == target and len(_rows(fresh["target"], table)) == 80
            continue
        source, target = _rows(fresh["legacy"], table), _rows(fresh["target"], table)
        assert len(source) == len(target), table
        wrong = [s for s, t in zip(source, target, strict=True) if s != t]
        assert not wrong, f"{table}: {len(wrong)} rows differ, e.g. {wrong[:2]}"
    # nothing changed since: the tables without a version are read (checksums), not written
    idle = {t.source_table: t for t in run_round(config, RoundOptions(flow)).tables}
    assert (idle["tag_link"].rows_written, idle["country"].rows_written) == (0, 0)
    assert idle["tag_link"].rows_read == len(_rows(fresh["legacy"], "tag_link"))
    assert {t: idle[t].version_type for t in TABLES} == {
        "order_line": "DATETIME(0)", "stock": "TIMESTAMP(3)", "member": "INT epoch s",
        "tag_link": "none", "country": "none"}


def test_datetime_versions_on_a_server_not_in_utc_need_a_zone(fresh: dict[str, Server],
                                                               any_schema: Path) -> None:
    config = make_config(fresh)
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL time_zone = '+01:00'")
    try:
        with pytest.raises(FuretError, match=(
                "flow any_schema: legacy 127.0.0.11:3306 database shop_any table order_line: "
                "version column updated_at is DATETIME .* server's time zone is \\+01:00, "
                "UTC\\+1h: say which zone")):
            run_round(config, RoundOptions(str(any_schema)))
        data = yaml.safe_load(any_schema.read_text())
        data["tables"][0]["version_timezone"] = "UTC"
        any_schema.write_text(yaml.safe_dump(data, allow_unicode=True))
        assert run_round(config, RoundOptions(str(any_schema))).rows_quarantined == 0
    finally:
        with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL time_zone = 'SYSTEM'")


def test_a_wrong_unit_is_refused_before_any_row_moves(fresh: dict[str, Server],
                                                      any_schema: Path) -> None:
    data = yaml.safe_load(any_schema.read_text())
    data["tables"][2]["version_unit"] = "ms"
    any_schema.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(FuretError, match="table member: version column touched \\(INT epoch "
                                         "ms\\) holds at most \\d+: that is epoch seconds"):
        run_round(make_config(fresh), RoundOptions(str(any_schema)))
    with connection(fresh["target"].settings()) as conn:
        assert query(conn, f"SELECT COUNT(*) FROM {DB}.member")[0][0] == 0


@pytest.mark.parametrize("literals", ["auto", "python"])
def test_a_colliding_secondary_key_is_quarantined_not_merged(fresh: dict[str, Server],
                                                              tmp_path: Path,
                                                              literals: str) -> None:
    ddl = (f"CREATE TABLE {DB}.account (id INT NOT NULL PRIMARY KEY, email VARCHAR(60) NOT "
           "NULL, plan VARCHAR(10) NOT NULL, updated_ts BIGINT NOT NULL, "
           "UNIQUE KEY uq_email (email))")
    for role in ("legacy", "target"):
        with contextlib.closing(fresh[role].root()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(ddl)
    now = int(time.time() * 1000)
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {DB}.account VALUES (%s, %s, 'free', %s)",
                        [(i, f"u{i}@example.org", now - 10_000) for i in range(1, 501)])
    with contextlib.closing(fresh["target"].root()) as conn, conn.cursor() as cur:
        # a row created on the target by hand holds the address row 7 has on the source
        cur.execute(f"INSERT INTO {DB}.account VALUES (9999, 'U7@example.org', 'gold', %s)",
                    (now,))
    path = tmp_path / "accounts.yml"
    path.write_text(yaml.safe_dump({
        "name": "accounts", "source": {"server": "legacy", "database": DB},
        "target": {"kind": "mariadb", "server": "target", "database": DB},
        "tables": [{"source": "account", "key": "id", "version": "updated_ts", "targets": [
            {"table": "account", "columns": {c: c for c in ("id", "email", "plan",
                                                            "updated_ts")}}]}]}))
    summary = run_round(make_config(fresh), RoundOptions(str(path), literals=literals))
    assert (summary.rows_written, summary.rows_quarantined) == (499, 1)
    with contextlib.closing(fresh["target"].root()) as conn:
        assert query(conn, f"SELECT id, email, plan FROM {DB}.account WHERE id IN (7, 9999)") \
            == [(9999, "U7@example.org", "gold")]         # untouched, row 7 not merged in
        (reason,), = query(conn, "SELECT reason FROM furet.quarantine WHERE flow = 'accounts' "
                                 "AND row_key = '7'")
    assert reason == ("duplicate key: account: unique key uq_email u7@example.org is held by "
                      "the row 9999, not merged")


TYPED_COLUMNS = ("id", "amount", "ratio", "score", "state", "tags", "flags", "code", "blob_v",
                 "vbin", "doc", "yr", "dur", "at", "day", "spot", "note", "updated_ts")


def _typed_ddl(charset: str) -> str:
    return (f"CREATE TABLE {DB}.typed (id INT NOT NULL PRIMARY KEY, amount DECIMAL(14,4), "
            "ratio FLOAT, score DOUBLE, state ENUM('new','paid','void'), "
            "tags SET('a','b','c'), flags BIT(5), code BINARY(4), blob_v BLOB, "
            "vbin VARBINARY(16), doc JSON, yr YEAR, dur TIME(3), at DATETIME(6), day DATE, "
            "spot POINT, doubled INT AS (id * 2) VIRTUAL, "
            f"note VARCHAR(40) CHARACTER SET {charset}, updated_ts BIGINT NOT NULL)")


def test_types_real_schemas_use_round_trip_exactly(fresh: dict[str, Server],
                                                   tmp_path: Path) -> None:
    for role, charset in (("legacy", "latin1"), ("target", "utf8mb4")):
        with contextlib.closing(fresh[role].root()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(_typed_ddl(charset))
    now = int(time.time() * 1000) - 10_000
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET sql_mode = ''")
        for i in range(1, 301):
            cur.execute(
                f"INSERT INTO {DB}.typed ({', '.join(TYPED_COLUMNS)}) VALUES (%s, %s, "
                "%s, %s, %s, %s, b'10101', %s, %s, %s, %s, %s, %s, %s, %s, "
                "ST_GeomFromText(%s), %s, %s)",
                (i, f"{i * 1234.5678 - 99999:.4f}", 3.14159274 * i / 7, 1e-12 * i ** 3,
                 ["new", "paid", "void"][i % 3], ["", "a", "a,c", "a,b,c"][i % 4],
                 bytes([i % 256, 0, 1, 2]), bytes(range(i % 50)) * 3,
                 bytes([i % 256, 255]), '{"k": [1, 2, {"x": "é"}]}', 1901 + i % 250,
                 f"{'-' if i % 2 else ''}{i % 838}:{i % 60:02d}:07.125",
                 f"2026-03-{1 + i % 28:02d} 10:11:12.{i:06d}",
                 "0000-00-00" if i % 100 == 0 else f"2020-{1 + i % 12:02d}-15",
                 f"POINT({i} {-i / 3})", ["Zoé", "Noël", "Ångström", None][i % 4], now + i))
    path = tmp_path / "typed.yml"
    path.write_text(yaml.safe_dump({
        "name": "typed", "source": {"server": "legacy", "database": DB},
        "target": {"kind": "mariadb", "server": "target", "database": DB},
        "tables": [{"source": "typed", "key": "id", "version": "updated_ts", "targets": [
            {"table": "typed", "columns": {c: c for c in TYPED_COLUMNS}}]}]},
        allow_unicode=True))
    summary = run_round(make_config(fresh), RoundOptions(str(path)))
    with contextlib.closing(fresh["target"].root()) as conn:
        reasons = query(conn, "SELECT row_key, reason FROM furet.quarantine WHERE flow = "
                              "'typed' ORDER BY row_key + 0")
    # the three zero dates (ids 100, 200, 300) are refused by the strict target
    assert (summary.rows_written, summary.rows_quarantined) == (297, 3), reasons[:5]
    cols = ", ".join(c if c != "spot" else "ST_AsText(spot)" for c in TYPED_COLUMNS)
    with contextlib.closing(fresh["legacy"].root()) as conn:
        source = query(conn, f"SELECT {cols}, CAST(ratio AS DOUBLE) FROM {DB}.typed "
                             "WHERE id % 100 <> 0 ORDER BY id")
    with contextlib.closing(fresh["target"].root()) as conn:
        target = query(conn, f"SELECT {cols}, CAST(ratio AS DOUBLE) FROM {DB}.typed "
                             "ORDER BY id")
    names = [*TYPED_COLUMNS, "ratio as double"]
    wrong = [(s[0], n, a, b) for s, t in zip(source, target, strict=True)
             for n, a, b in zip(names, s, t, strict=True) if a != b]
    assert len(source) == len(target) == 297 and not wrong, wrong[:6]
    assert [k for k, _ in reasons] == ["100", "200", "300"]
    assert all(r.startswith("bad date: typed: column day") for _, r in reasons), reasons
    # verify agrees, the quarantined rows counted apart; then it sees one changed value
    table, = run_verify(make_config(fresh), VerifyOptions(str(path))).tables
    assert table.agrees and (table.source_rows, table.quarantined) == (297, 3)
    with contextlib.closing(fresh["target"].root()) as conn, conn.cursor() as cur:
        cur.execute(f"UPDATE {DB}.typed SET ratio = ratio + 4e-6, tags = 'b' WHERE id = 42")
    table, = run_verify(make_config(fresh), VerifyOptions(str(path))).tables
    assert [(d.kind, d.key, d.columns) for d in table.diffs] == [
        ("different", 42, ["ratio", "tags"])]
