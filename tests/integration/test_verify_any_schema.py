"""`furet verify` on any legacy schema (issue 11), against the real loopback servers: a
composite (INT, VARCHAR) key with a DATETIME(0) version, a three-column key with a
TIMESTAMP(3) version and a text key with an INT epoch-seconds version; and a composite-key
table without a version column (``version: none``: compared by key only, quarantined
while its key is in furet.quarantine at any version, repaired by the rounds' unconditional
upsert, refused under ``--since/--until`` and into Cassandra).

The target is filled with plain SQL (no round), so verify alone is under test: a clean copy
agrees; a missing, an extra and a different row per table are reported exactly, by key
text; a quarantined row (matched by key text and ledger version) is expected absent;
``--since/--until`` select the right rows of each version type; ``--repair
--delete-extra`` puts everything back and a second verify agrees. The scratch databases
are dropped at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migration.canonical import key_text
from migration.config import FuretConfig
from migration.db import connection, query
from migration.engine import ledger
from migration.engine.quarantine import QuarantinedRow
from migration.engine.versions import codec_for
from migration.errors import FuretError
from migration.verify.report import TableReport, VerifyReport
from migration.verify.run import VerifyOptions, run_verify
from tests.helpers import BIN, REPO

from .conftest import Server, furet_env, make_config

pytestmark = pytest.mark.integration

SRC, DST = "furet_any_src", "furet_any_dst"
FLOW = "any_schema_it"
BASE = datetime.datetime(2026, 1, 1)                   # UTC
BASE_S = int(BASE.replace(tzinfo=datetime.UTC).timestamp())
LINES = ("a", "B", "c10", "c9", "zz")   # "a" < "B" in the collation, not in Python
TAGS = ("a", "B", "c")
DDL = (
    "CREATE TABLE {db}.order_line (order_no INT NOT NULL, line_code VARCHAR(20) NOT NULL, "
    "qty INT NOT NULL, note VARCHAR(50) NULL, changed_at DATETIME NOT NULL, "
    "PRIMARY KEY (order_no, line_code))",
    "CREATE TABLE {db}.reading (site VARCHAR(10) NOT NULL, sensor INT NOT NULL, "
    "seq BIGINT NOT NULL, value_mc INT NULL, "
    "taken_at TIMESTAMP(3) NOT NULL DEFAULT '2000-01-01 00:00:00.000', "
    "PRIMARY KEY (site, sensor, seq))",
    "CREATE TABLE {db}.account (code VARCHAR(32) NOT NULL PRIMARY KEY, name VARCHAR(50) NULL, "
    "balance INT NULL, updated_s INT NOT NULL)",
    # no version column (the target's weight is made NOT NULL by the test that uses it)
    "CREATE TABLE {db}.tag_link (post_id INT NOT NULL, tag VARCHAR(20) NOT NULL, "
    "weight INT NULL, label VARCHAR(30) NULL, PRIMARY KEY (post_id, tag))",
)
FLOW_YAML = f"""\
name: {FLOW}
description: issue 11 scratch flow (tests/integration/test_verify_any_schema.py)
source: {{server: legacy, database: {SRC}}}
target: {{kind: mariadb, server: target, database: {DST}}}
tables:
  - source: order_line
    key: [order_no, line_code]
    version: changed_at
    targets:
      - table: order_line
        columns: {{order_no: order_no, line_code: line_code, qty: qty, note: note,
                   changed_at: changed_at}}
  - source: reading
    key: [site, sensor, seq]
    version: taken_at
    targets:
      - table: reading
        columns: {{site: site, sensor: sensor, seq: seq, value_mc: value_mc,
                   taken_at: taken_at}}
  - source: account
    key: code
    version: updated_s
    targets:
      - table: account
        columns: {{code: code, name: name, balance: balance, updated_s: updated_s}}
"""


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    order_lines = [(i // 5 + 1, LINES[i % 5], i % 17, None if i % 11 == 0 else f"n{i}",
                    BASE + datetime.timedelta(seconds=i // 3))      # 3 rows per second
                   for i in range(3000)]
    readings = []
    for idx, (site, sensor, seq) in enumerate((s, n, q) for s in ("north", "south")
                                              for n in range(1, 16) for q in range(1, 51)):
        readings.append((site, sensor, seq, idx * 3,
                         BASE + datetime.timedelta(milliseconds=250 * idx)))
    accounts = [(f"acct-{i:04d}", f"Name {i}", i * 10, BASE_S + i * 10) for i in range(800)]
    tag_links = [(post, tag, post * 3 + len(tag), None if post % 7 == 0 else f"l{post}{tag}")
                 for post in range(1, 201) for tag in TAGS]
    return {"order_line": order_lines, "reading": readings, "account": accounts,
            "tag_link": tag_links}


def _sql(settings: Any, *statements: str, args: Any = None) -> None:
    with connection(settings) as conn:
        for statement in statements:
            query(conn, statement, args)


def _insert(settings: Any, database: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join(["%s"] * len(rows[0]))
    with connection(settings) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {database}.{table} VALUES ({marks})", rows)


@pytest.fixture
def scratch(servers: dict[str, Server], tmp_path: Path) -> Iterator[tuple[FuretConfig, Path]]:
    """The scratch source and target databases, filled alike, and the flow file."""
    legacy, target = servers["legacy"].settings(), servers["target"].settings()
    for settings, db in ((legacy, SRC), (target, DST)):
        _sql(settings, f"DROP DATABASE IF EXISTS {db}",
             f"CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4",
             *(ddl.format(db=db) for ddl in DDL))
    for table, rows in _rows().items():
        _insert(legacy, SRC, table, rows)
        with connection(legacy) as conn:   # copied as read back (what a round would copy)
            copied = query(conn, f"SELECT * FROM {SRC}.{table}")
        _insert(target, DST, table, copied)
    flow = tmp_path / "any_schema.yml"
    flow.write_text(FLOW_YAML)
    try:
        yield make_config(servers), flow
    finally:
        for settings, db in ((legacy, SRC), (target, DST)):
            _sql(settings, f"DROP DATABASE IF EXISTS {db}")
        with contextlib.suppress(Exception):
            _sql(target, "DELETE FROM furet.quarantine WHERE flow IN (%s, %s)",
                 args=(FLOW, FLOW_NONE))


def _verify(config: FuretConfig, flow: Path, **options: Any) -> VerifyReport:
    return run_verify(config, VerifyOptions(str(flow), workers=2, initial_chunk=200,
                                            chunk_time=0.05, **options))


def _tables(report: VerifyReport) -> dict[str, TableReport]:
    return {t.source_table: t for t in report.tables}


def _diffs(table: TableReport) -> dict[str, Any]:
    """Missing and extra key texts, different key text -> columns (counts checked too)."""
    out = {"missing": {d.key_text for d in table.diffs if d.kind == "missing"},
           "extra": {d.key_text for d in table.diffs if d.kind == "extra"},
           "different": {d.key_text: d.columns for d in table.diffs if d.kind == "different"}}
    assert (table.missing, table.extra, table.different) == (
        len(out["missing"]), len(out["extra"]), len(out["different"])), table.name
    return out


def _clean(report: VerifyReport, rows: dict[str, int]) -> None:
    for t in report.tables:
        assert (t.mismatching_chunks, t.missing, t.extra, t.different) == (0, 0, 0, 0), \
            (t.name, [dataclasses.asdict(d) for d in t.diffs[:5]])
        assert t.source_rows == t.target_rows == rows[t.source_table], t.name
    assert report.agrees and report.exit_code == 0


EXPECTED = {
    "order_line": {"missing": {'["10", "B"]'}, "extra": {'["9999", "x"]'},
                   "different": {'["64", "c9"]': ["qty"]}},
    "reading": {"missing": {'["south", "3", "7"]'}, "extra": {'["west", "1", "1"]'},
                "different": {'["north", "2", "10"]': ["value_mc"]}},
    "account": {"missing": {"acct-0100"}, "extra": {"acct-9999x"},
                "different": {"acct-0500": ["balance"]}},
}


def test_verify_composite_keys_and_temporal_versions(servers: dict[str, Server],
                                                     scratch: tuple[FuretConfig, Path]) -> None:
    config, flow = scratch
    target = servers["target"].settings()
    sizes = {table: len(rows) for table, rows in _rows().items()}

    # a clean copy agrees, cut in several chunks of key tuples
    clean = _verify(config, flow)
    _clean(clean, sizes)
    tables = _tables(clean)
    assert tables["order_line"].key == "order_no, line_code"
    assert tables["reading"].key == "site, sensor, seq"
    assert {t: tables[t].version_type for t in tables} == {
        "order_line": "DATETIME(0)", "reading": "TIMESTAMP(3)", "account": "INT epoch s"}
    assert tables["order_line"].chunks >= 3 and tables["account"].chunks >= 3
    assert all(isinstance(c.hi, list | tuple) for c in tables["reading"].chunk_list[:-1])

    # a missing, an extra and a different row per table; versions left as they were
    _sql(target,
         f"DELETE FROM {DST}.order_line WHERE order_no = 10 AND line_code = 'B'",
         f"INSERT INTO {DST}.order_line VALUES (9999, 'x', 1, 'extra', '2025-12-31 00:00:00')",
         f"UPDATE {DST}.order_line SET qty = qty + 100 WHERE order_no = 64 AND line_code = 'c9'",
         f"DELETE FROM {DST}.reading WHERE site = 'south' AND sensor = 3 AND seq = 7",
         f"INSERT INTO {DST}.reading VALUES ('west', 1, 1, 0, '2025-12-31 00:00:00.000')",
         f"UPDATE {DST}.reading SET value_mc = -1 WHERE site = 'north' AND sensor = 2 "
         "AND seq = 10",
         f"DELETE FROM {DST}.account WHERE code = 'acct-0100'",
         f"INSERT INTO {DST}.account VALUES ('acct-9999x', 'X', 0, 1)",
         f"UPDATE {DST}.account SET balance = -5 WHERE code = 'acct-0500'")
    # quarantined by a round: (200, 'c9') at its current version is expected absent; the
    # reading's entry is for an older version, so that row is compared as any other
    dt0 = codec_for("it", "changed_at", "datetime", 0)
    ts3 = codec_for("it", "taken_at", "timestamp", 3)
    version_200 = dt0.ledger(BASE + datetime.timedelta(seconds=(199 * 5 + 3) // 3))
    reading_idx = 4 * 50 + 4                          # ('north', 5, 5)
    old_reading = ts3.ledger((BASE + datetime.timedelta(milliseconds=250 * reading_idx))
                             .replace(tzinfo=datetime.UTC))
    assert version_200 is not None and old_reading is not None
    with connection(target) as conn:
        ledger.record_quarantine(conn, FLOW, 1, [
            QuarantinedRow("order_line", key_text((200, "c9")), version_200, "order_line",
                           "bad value", {}),
            QuarantinedRow("reading", key_text(("north", 5, 5)), old_reading - 1000,
                           "reading", "bad value", {})])
    _sql(target, f"DELETE FROM {DST}.order_line WHERE order_no = 200 AND line_code = 'c9'")

    found = _verify(config, flow)
    assert not found.agrees and found.exit_code == 1
    tables = _tables(found)
    assert {t: _diffs(tables[t]) for t in tables} == EXPECTED
    assert tables["order_line"].quarantined == 1
    assert tables["order_line"].quarantined_keys == [(200, "c9")]
    assert tables["reading"].quarantined == 0
    missing = next(d for d in tables["reading"].diffs if d.kind == "missing")
    assert missing.key == ("south", 3, 7) and missing.source is not None
    assert missing.source_version == ts3.ledger(
        (BASE + datetime.timedelta(milliseconds=250 * (750 + 2 * 50 + 6)))
        .replace(tzinfo=datetime.UTC))

    # the CLI: JSON keys are the key's values, the summary prints key texts
    run = subprocess.run([str(BIN / "furet"), "verify", "--flow", str(flow), "--json",
                          "--workers", "2", "--no-progress"], cwd=REPO,
                         env=furet_env(servers), capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    data = {t["source_table"]: t for t in json.loads(run.stdout)["tables"]}
    assert {(d["kind"], tuple(d["key"])) for d in data["order_line"]["diffs"]} == {
        ("missing", (10, "B")), ("extra", (9999, "x")), ("different", (64, "c9"))}
    assert {d["key"] for d in data["account"]["diffs"]} == {"acct-0100", "acct-9999x",
                                                            "acct-0500"}
    summary = subprocess.run([str(BIN / "furet"), "verify", "--flow", str(flow),
                              "--no-progress"], cwd=REPO, env=furet_env(servers),
                             capture_output=True, text=True, timeout=300)
    assert 'order_line -> order_line: missing key ["10", "B"]' in summary.stdout
    assert 'reading -> reading: different key ["north", "2", "10"] columns value_mc' in \
        summary.stdout

    # --since/--until (epoch ms or ISO) in each version type's units: only the rows inside
    windowed = {
        # DATETIME(0), 3 rows per second: seconds 101..110 -> 30 rows
        "order_line": _verify(config, flow, tables=("order_line",),
                              since="2026-01-01T00:01:40.500Z", until="2026-01-01T00:01:50.500"),
        # TIMESTAMP(3), a row every 250 ms: (10.1 s, 20 s] -> rows 41..80
        "reading": _verify(config, flow, tables=("reading",), since=str(BASE_S * 1000 + 10_100),
                           until=str(BASE_S * 1000 + 20_000)),
        # INT epoch seconds, a row every 10 s: (4995.5 s, 5095 s] -> rows 500..509
        "account": _verify(config, flow, tables=("account",),
                           since=str((BASE_S + 4995) * 1000 + 500),
                           until=str((BASE_S + 5095) * 1000)),
    }
    for table, (rows, different) in {"order_line": (30, '["64", "c9"]'),
                                     "reading": (40, '["north", "2", "10"]'),
                                     "account": (10, "acct-0500")}.items():
        (t,) = windowed[table].tables
        assert (t.source_rows, t.target_rows) == (rows, rows), table
        assert _diffs(t) == {"missing": set(), "extra": set(),
                             "different": {different: EXPECTED[table]["different"][different]}}
    quiet = _verify(config, flow, since="2027-01-01", until="2027-01-02")
    assert quiet.agrees and all(t.source_rows == 0 for t in quiet.tables)

    # repair through the rounds' writer, extra rows deleted by key tuple; then all agree
    repaired = _verify(config, flow, repair=True, delete_extra=True)
    for t in repaired.tables:
        assert t.repair is not None and t.repair.ok, (t.name, t.repair)
        assert (t.repair.copied, t.repair.deleted, t.repair.quarantined) == (2, 1, 0), t.name
    assert repaired.agrees
    with connection(target) as conn:
        assert query(conn, f"SELECT qty FROM {DST}.order_line WHERE order_no = 64 AND "
                           "line_code = 'c9'")[0][0] == (318 % 17)
        assert query(conn, f"SELECT COUNT(*) FROM {DST}.order_line WHERE order_no = 200 AND "
                           "line_code = 'c9'")[0][0] == 0      # quarantined: left absent
    again = _verify(config, flow)
    _clean(again, {**sizes, "order_line": sizes["order_line"] - 1})
    assert _tables(again)["order_line"].quarantined_keys == [(200, "c9")]


FLOW_NONE = "any_schema_none_it"
FLOW_NONE_YAML = f"""\
name: {FLOW_NONE}
description: issue 11 scratch flow, a table without a version (test_verify_any_schema.py)
source: {{server: legacy, database: {SRC}}}
target: {{kind: {{kind}}, server: target, database: {DST}, keyspace: {DST}}}
tables:
  - source: tag_link
    key: [post_id, tag]
    version: none
    deletes: propagate
    targets:
      - table: tag_link
        columns: {{post_id: post_id, tag: tag, weight: weight, label: label}}
  - source: account
    key: code
    version: updated_s
    targets:
      - table: account
        columns: {{code: code, name: name, balance: balance, updated_s: updated_s}}
"""
EXPECTED_NONE = {"missing": {'["10", "B"]', '["150", "a"]'}, "extra": {'["9999", "x"]'},
                 "different": {'["64", "c"]': ["label"]}}


def test_verify_a_table_without_a_version(servers: dict[str, Server],
                                          scratch: tuple[FuretConfig, Path]) -> None:
    config, any_flow = scratch
    legacy, target = servers["legacy"].settings(), servers["target"].settings()
    flow = any_flow.parent / "any_schema_none.yml"
    flow.write_text(FLOW_NONE_YAML.replace("{kind}", "mariadb"))
    rows = len(_rows()["tag_link"])
    _sql(target, f"ALTER TABLE {DST}.tag_link MODIFY weight INT NOT NULL")

    # a clean copy agrees, compared by key tuples only, in several chunks
    clean = _tables(_verify(config, flow))
    tags = clean["tag_link"]
    assert (tags.mismatching_chunks, tags.missing, tags.extra, tags.different) == (0, 0, 0, 0)
    assert tags.source_rows == tags.target_rows == rows and tags.agrees
    assert (tags.key, tags.version, tags.version_type) == ("post_id, tag", "", "none")
    assert tags.chunks >= 3 and all(c.kind == "key" for c in tags.chunk_list)
    assert clean["account"].agrees

    # --since/--until cannot select its rows: refused in one line, the others still can be
    with pytest.raises(FuretError) as err:
        _verify(config, flow, since="2026-01-01")
    assert str(err.value) == (f"flow {FLOW_NONE} database {SRC} table tag_link has no version "
                              "column: --since/--until cannot select its rows; use --table "
                              "to verify the others")
    (windowed,) = _verify(config, flow, tables=("account",), since="2025-12-31").tables
    assert windowed.agrees and windowed.source_rows == 800
    cli = subprocess.run([str(BIN / "furet"), "verify", "--flow", str(flow), "--until",
                          "2027-01-01", "--no-progress"], cwd=REPO, env=furet_env(servers),
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "table tag_link has no version column" in cli.stderr
    # into Cassandra, as the rounds: refused before any connection
    cassandra = any_flow.parent / "any_schema_none_cassandra.yml"
    cassandra.write_text(FLOW_NONE_YAML.replace("{kind}", "cassandra"))
    with pytest.raises(FuretError, match="table tag_link: `version: none` needs a MariaDB "
                                         "target"):
        _verify(config, cassandra)

    # a missing, an extra and a different row; two keys quarantined by rounds (version 0,
    # as rounds record such rows, and a version left from when the table had one): their
    # rows are expected absent; a source row the target will refuse (NULL weight)
    _sql(target,
         f"DELETE FROM {DST}.tag_link WHERE (post_id, tag) IN ((10, 'B'), (200, 'a'), "
         "(201, 'c'), (150, 'a'))",
         f"INSERT INTO {DST}.tag_link VALUES (9999, 'x', 1, 'extra')",
         f"UPDATE {DST}.tag_link SET label = 'changed' WHERE post_id = 64 AND tag = 'c'")
    _sql(legacy, f"UPDATE {SRC}.tag_link SET weight = NULL WHERE post_id = 150 AND tag = 'a'",
         f"INSERT INTO {SRC}.tag_link VALUES (201, 'c', 1, 'not in the ledger')")
    with connection(target) as conn:
        ledger.record_quarantine(conn, FLOW_NONE, 2, [
            QuarantinedRow("tag_link", key_text((200, "a")), 0, "tag_link", "bad", {}),
            QuarantinedRow("tag_link", key_text((201, "c")), 1_700_000_000_000, "tag_link",
                           "bad", {})])

    found = _verify(config, flow)
    assert not found.agrees and found.exit_code == 1
    tags = _tables(found)["tag_link"]
    assert _diffs(tags) == EXPECTED_NONE
    assert tags.quarantined == 2 and tags.quarantined_keys == [(200, "a"), (201, "c")]
    assert tags.source_rows == rows + 1 - 2 and tags.target_rows == rows - 2
    assert all(d.source_version is None and d.target_version is None for d in tags.diffs)
    different = next(d for d in tags.diffs if d.kind == "different")
    assert different.source is not None and different.target is not None
    assert (different.source["label"], different.target["label"]) == ("l64c", "changed")
    data = json.loads(found.to_json())["tables"][0]
    assert data["version"] == "" and data["version_type"] == "none"

    # repair through the rounds' writer (its unconditional upsert); the NULL weight is
    # refused and quarantined with version 0; nothing can be shadowed, so --overwrite-newer
    # has nothing to do; extra rows deleted by key tuple
    repaired = _verify(config, flow, repair=True, delete_extra=True, overwrite_newer=True)
    tags = _tables(repaired)["tag_link"]
    assert tags.repair is not None and tags.repair.ok, tags.repair
    assert (tags.repair.copied, tags.repair.deleted, tags.repair.quarantined,
            tags.repair.overwritten, tags.repair.shadowed) == (2, 1, 1, 0, [])
    assert repaired.agrees
    with connection(target) as conn:
        assert query(conn, f"SELECT weight, label FROM {DST}.tag_link WHERE post_id = 64 "
                           "AND tag = 'c'")[0] == (64 * 3 + 1, "l64c")
        assert query(conn, f"SELECT COUNT(*) FROM {DST}.tag_link WHERE post_id = 9999")[0][0] == 0
        assert query(conn, "SELECT version, round_no, reason FROM furet.quarantine WHERE "
                           "flow = %s AND row_key = %s",
                     (FLOW_NONE, key_text((150, "a"))))[0][:2] == (0, 0)
    again = _tables(_verify(config, flow))["tag_link"]
    assert again.agrees and (again.missing, again.extra, again.different) == (0, 0, 0)
    assert again.quarantined == 3 and again.source_rows == again.target_rows == rows - 2
