"""Server-built literals (migration.engine.sql_pushdown) write what the Python path writes.

One legacy table full of awkward values (NULLs, latin1 and 4-byte UTF-8 text, quotes,
backslashes, NUL and ^Z bytes, raw bytes, zero and half-zero dates, extreme integers,
whitespace and case for ``trim``/``lower``, invalid UTF-8 and UTF-16 surrogates, a value
the target refuses only on the server) is copied twice by two flows that differ only by
their target database: once with ``literals="python"``, once with the default. The two
targets must hold byte-identical rows and the ledger identical quarantine records.

The last test measures round 1 of the runtime flow with each path and
``mysqldump | mysql`` between the same two servers (FURET_BENCH_QUOTES quotes, 20000 by
default): wall time and CPU seconds of each server and of the client side (furet, or
mysqldump + mysql). It is a measurement, so ``make bench`` runs it and ``make test`` skips it.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.db import connection, query
from migration.engine.round import RoundOptions, run_round
from migration.legacy.seed import seed
from migration.target.schema import init_target

from .conftest import PASSWORD, USER, make_config

pytestmark = pytest.mark.integration

SOURCE_DDL = """
CREATE TABLE lf_eq.tricky (
  id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  updated_ts  BIGINT NOT NULL,
  big         BIGINT NULL,
  ubig        BIGINT UNSIGNED NULL,
  small       TINYINT NULL,
  amount      DECIMAL(15,3) NULL,
  name_l1     VARCHAR(60) CHARACTER SET latin1 NULL,
  name_u8     VARCHAR(60) CHARACTER SET utf8mb4 NULL,
  raw         VARBINARY(60) NULL,
  blob_raw    VARBINARY(60) NULL,
  padded      VARCHAR(60) CHARACTER SET utf8mb4 NULL,
  shout       VARCHAR(60) CHARACTER SET utf8mb4 NULL,
  kind        ENUM('a','b','c') NULL,
  day         DATE NULL,
  must        VARCHAR(10) NULL,
  narrow      INT NULL
) ENGINE=InnoDB DEFAULT CHARSET=latin1
"""
TARGET_DDL = """
CREATE TABLE {db}.tricky (
  id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  updated_ts  BIGINT NOT NULL,
  big         BIGINT NULL,
  ubig        BIGINT UNSIGNED NULL,
  small       TINYINT NULL,
  amount      DECIMAL(15,3) NULL,
  name_l1     VARCHAR(60) NULL,
  name_u8     VARCHAR(60) NULL,
  city        VARCHAR(60) NULL,
  blob_raw    VARBINARY(60) NULL,
  padded      VARCHAR(60) NULL,
  shout       VARCHAR(60) NULL,
  kind        ENUM('a','b','c') NULL,
  day         DATE NULL,
  must        VARCHAR(10) NOT NULL,
  narrow      TINYINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE {db}.tricky_b (
  id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  ts          BIGINT NOT NULL,
  label       VARCHAR(60) NULL,
  day         DATE NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
COLUMNS = ["id", "updated_ts", "big", "ubig", "small", "amount", "name_l1", "name_u8", "raw",
           "blob_raw", "padded", "shout", "kind", "day", "must", "narrow"]
TARGET_COLUMNS = {
    "tricky": ["id", "updated_ts", "big", "ubig", "small", "amount", "name_l1", "name_u8",
               "city", "blob_raw", "padded", "shout", "kind", "day", "must", "narrow"],
    "tricky_b": ["id", "ts", "label", "day"],
}


def _flow(tmp_path: Path, name: str, database: str) -> str:
    data = {
        "name": name,
        "source": {"server": "legacy", "database": "lf_eq"},
        "target": {"kind": "mariadb", "server": "target", "database": database},
        "tables": [{
            "source": "tricky", "key": "id", "version": "updated_ts",
            "targets": [
                {"table": "tricky", "columns": {
                    "id": "id", "updated_ts": "updated_ts", "big": "big", "ubig": "ubig",
                    "small": "small", "amount": "amount", "name_l1": "name_l1",
                    "name_u8": "name_u8", "city": {"from": "raw", "transform": "utf8"},
                    "blob_raw": "blob_raw", "padded": {"from": "padded", "transform": "trim"},
                    "shout": {"from": "shout", "transform": "lower"}, "kind": "kind",
                    "day": "day", "must": "must", "narrow": "narrow"}},
                {"table": "tricky_b", "columns": {
                    "id": "id", "ts": "updated_ts",
                    "label": {"from": "name_l1", "transform": "lower"}, "day": "day"}},
            ]}],
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def _awkward_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"must": "m"},                                              # NULL everywhere else
        {"big": -(2 ** 63), "ubig": 2 ** 64 - 1, "small": -128, "amount": "-123456789012.125",
         "must": ""},
        {"name_l1": "l'O\\ivier \"é\" ñ ÿ", "name_u8": "😀 𝄞 ' \\ \" \n\r\t \x00 \x1a end",
         "raw": "Zoé 😀 𝄞".encode(), "blob_raw": b"\x00\xff'\\\"\n", "padded": "  pad  ",
         "shout": "MiXeD Case 42", "kind": "b", "day": "1999-12-31", "must": "ok"},
        {"raw": b"caf\xe9", "must": "x"},                          # latin1 bytes: bad encoding
        {"raw": b"a\xed\xa0\x80z", "must": "x"},                   # surrogate: bad encoding
        {"raw": "한국어".encode(), "must": "x"},                    # 0xED but valid: written
        {"padded": "\t tab and nbsp\xa0", "shout": "ÉCOLE İstanbul", "must": "x"},
        {"padded": "   ", "name_u8": "", "blob_raw": b"", "raw": b"", "must": "x"},
        {"day": "0000-00-00", "must": "x"},                        # bad date
        {"day": "2020-02-00", "must": "x"},                        # half-zero date: bad date
        {"day": "0999-01-02", "must": "x"},
        {"must": None},                                            # NULL not allowed
        {"narrow": 1000, "must": "x"},                             # refused by the server only
        {"kind": "zzz", "must": "x"},                              # legacy stores ''
        {"name_l1": "ÀÉÎÕÜ façade", "must": "x"},
    ]
    rnd = random.Random(5)
    alphabet = "abcdefghijklmnopqrstuvwxyzéèà'\\\" 😀-"
    for i in range(400):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
        rows.append({"big": rnd.randint(-10 ** 12, 10 ** 12), "name_u8": text,
                     "name_l1": text.replace("😀", "ü"), "raw": text.encode(),
                     "padded": f" {text} ", "shout": text.upper(), "amount": f"{i}.5",
                     "day": f"20{i % 30:02d}-0{1 + i % 9}-1{i % 9}", "must": str(i),
                     "narrow": 2000 if i % 97 == 0 else i % 100})
    return rows


def _load_source(servers: dict) -> int:
    with contextlib.closing(servers["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("DROP DATABASE IF EXISTS lf_eq")
        cur.execute("CREATE DATABASE lf_eq DEFAULT CHARACTER SET latin1")
        cur.execute(SOURCE_DDL)
        rows = _awkward_rows()
        for i, row in enumerate(rows, start=1):
            values = {c: row.get(c) for c in COLUMNS}
            values.update(id=i * 7, updated_ts=1_700_000_000_000 + i)
            cur.execute(f"INSERT INTO lf_eq.tricky ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join(['%s'] * len(COLUMNS))})", [values[c] for c in COLUMNS])
    with contextlib.closing(servers["target"].root()) as conn, conn.cursor() as cur:
        for db in ("lf_eq_python", "lf_eq_server"):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db}")
            for statement in TARGET_DDL.format(db=db).split(";"):
                cur.execute(statement)
    return len(rows)


def _target_rows(servers: dict, database: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with connection(servers["target"].settings()) as conn:
        for table, columns in TARGET_COLUMNS.items():
            hexed = ", ".join(f"HEX(`{c}`)" for c in columns)
            out[table] = query(conn, f"SELECT {hexed} FROM {database}.{table} ORDER BY id")
    return out


def _quarantine(servers: dict, flow: str) -> list[tuple[Any, ...]]:
    with connection(servers["target"].settings()) as conn:
        return query(conn, "SELECT source_table, row_key, version, target_table, reason, "
                           "original FROM furet.quarantine WHERE flow = %s ORDER BY "
                           "CAST(row_key AS UNSIGNED)", (flow,))


def test_server_literals_write_byte_identical_rows(fresh: dict, tmp_path: Path) -> None:
    total = _load_source(fresh)
    config = make_config(fresh, batch_rows=60)
    python = run_round(config, RoundOptions(_flow(tmp_path, "eq_python", "lf_eq_python"),
                                            literals="python"))
    server = run_round(config, RoundOptions(_flow(tmp_path, "eq_server", "lf_eq_server")))
    assert python.literals == {"tricky": "python: asked for"}
    assert server.literals == {"tricky": "server"}
    # round 1 into empty tables: plain INSERTs (a batch with a refused row went the guarded
    # way, and its rows reached quarantine with the same reasons as the Python path's)
    assert python.writes == server.writes == {"tricky": "plain INSERT"}
    for key in ("rows_read", "rows_written", "rows_quarantined"):
        assert getattr(server, key) == getattr(python, key), key
    assert server.rows_read == total

    written = _target_rows(fresh, "lf_eq_python")
    assert _target_rows(fresh, "lf_eq_server") == written
    assert len(written["tricky"]) == total - python.rows_quarantined
    quarantined = _quarantine(fresh, "eq_python")
    assert _quarantine(fresh, "eq_server") == quarantined
    reasons = {int(r[1]) // 7: r[4].split(":")[0] for r in quarantined}
    assert reasons[4] == "bad encoding" and reasons[5] == "bad encoding"
    assert reasons[9] == "bad date" and reasons[10] == "bad date"
    assert reasons[12] == "NULL not allowed" and reasons[13] == "out of range"
    assert 6 not in reasons and 7 not in reasons     # rechecked in Python, then written
    with connection(fresh["target"].settings()) as conn:
        assert query(conn, "SELECT city, padded, shout FROM lf_eq_server.tricky WHERE id = 42 "
                           "OR id = 49 ORDER BY id") == [
            ("한국어", None, None), (None, "tab and nbsp", "ÉCOLE İstanbul".lower())]
        assert query(conn, "SELECT name_u8 FROM lf_eq_server.tricky WHERE id = 21")[0][0] == \
            "😀 𝄞 ' \\ \" \n\r\t \x00 \x1a end"

    # replaying every row over the written ones (another flow, same target) changes nothing
    again = run_round(config, RoundOptions(_flow(tmp_path, "eq_replay", "lf_eq_server")))
    assert again.status == "done" and again.rows_read == total
    # its round 1 tried a plain INSERT, met the rows already there, and upserted instead
    assert again.writes["tricky"].startswith("upsert: round 1 found rows in tricky")
    assert again.rows_quarantined == server.rows_quarantined
    assert _target_rows(fresh, "lf_eq_server") == written


def _cpu(servers: dict) -> dict[str, float]:
    """CPU seconds so far of both servers, this process and its finished children."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for role in ("legacy", "target"):
        fields = Path(f"/proc/{servers[role].proc.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        out[role] = (int(utime) + int(stime)) / tick
    me, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    out["client"] = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return out


def _measured(servers: dict, rows: int, seconds: float, before: dict[str, float]
              ) -> dict[str, Any]:
    after = _cpu(servers)
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "cpu_s": {k: round(after[k] - before[k], 2) for k in after}}


def _round_seconds(servers: dict, literals: str, batch_rows: int) -> dict[str, Any]:
    init_target(servers["target"].settings(), drop=True)
    with contextlib.closing(servers["target"].root()) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS furet")
    config = make_config(servers, workers=4, chunk_rows=20000, batch_rows=batch_rows,
                         batch_bytes=2_000_000)
    before, started = _cpu(servers), time.monotonic()
    summary = run_round(config, RoundOptions("runtime", literals=literals))
    return _measured(servers, summary.rows_read, time.monotonic() - started, before)


@pytest.mark.skipif(not os.environ.get("FURET_BENCH"),
                    reason="a measurement, not a check: `make bench` runs it (FURET_BENCH=1)")
def test_measure_round_1_against_mysqldump(fresh: dict, figures: Any) -> None:
    quotes = int(os.environ.get("FURET_BENCH_QUOTES", "20000"))
    legacy, target = fresh["legacy"], fresh["target"]
    seed(legacy.settings(), quotes)
    results: dict[str, Any] = {"quotes": quotes}
    for literals, batch_rows in (("python", 500), ("auto", 500), ("auto", 2000)):
        results[f"{literals}_{batch_rows}"] = _round_seconds(fresh, literals, batch_rows)

    with contextlib.closing(target.root()) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS lf_dump")
        cur.execute("CREATE DATABASE lf_dump")
    env = dict(os.environ, MYSQL_PWD=PASSWORD)
    before, started = _cpu(fresh), time.monotonic()
    dump = subprocess.Popen(["mysqldump", f"-h{legacy.address}", f"-P{legacy.port}",
                             f"-u{USER}", "--single-transaction", "lf_runtime", "customer",
                             "quote", "offer"], stdout=subprocess.PIPE, env=env)
    load = subprocess.run(["mysql", f"-h{target.address}", f"-P{target.port}", f"-u{USER}",
                           "lf_dump"], stdin=dump.stdout, env=env, capture_output=True)
    assert dump.wait(600) == 0 and load.returncode == 0, load.stderr
    results["mysqldump_mysql"] = _measured(fresh, results["python_500"]["rows"],
                                           time.monotonic() - started, before)
    figures(**results)
