"""Round 1 builds the secondary indexes of empty target tables at its end, on real servers.

A legacy table whose ``uid`` is not unique there (legacy dirt) goes to a target where it is
(``UNIQUE KEY uq_item_uid``), next to a plain index; a second table has a foreign key to a
target table of its own. Round 1 with the indexes deferred must leave the same rows, the
same quarantine (reasons included) and the same table definitions as the guarded upsert
with every index in place; the table in a foreign key keeps its indexes; a round whose
first invocation deferred the indexes and was killed adds them back when it is done. (One
worker: the guarded upsert then meets the rows in key order and keeps the lowest key of a
uid, as the deferred build does.)
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.db import connect, query
from migration.engine import deferred_indexes, ledger
from migration.engine.round import RoundOptions, run_round

from .conftest import Server, make_config

ROWS = 2400
SOURCE_DDL = (
    "CREATE DATABASE IF NOT EXISTS dx",
    """CREATE TABLE dx.item (id INT NOT NULL PRIMARY KEY, uid VARCHAR(16) NULL,
        name VARCHAR(40) NOT NULL, updated_ts BIGINT NOT NULL, KEY (updated_ts))""",
    """CREATE TABLE dx.note (id INT NOT NULL PRIMARY KEY, item_id INT NOT NULL,
        body VARCHAR(40) NOT NULL, updated_ts BIGINT NOT NULL)""",
)
TARGET_DDL = (
    "CREATE DATABASE IF NOT EXISTS {db}",
    """CREATE TABLE {db}.item (id INT NOT NULL PRIMARY KEY, uid VARCHAR(16) NULL,
        name VARCHAR(40) NOT NULL, updated_ts BIGINT NOT NULL,
        UNIQUE KEY uq_item_uid (uid), KEY ix_item_updated (updated_ts, id),
        KEY ix_item_name (name(8)) COMMENT 'a prefix, kept as written')""",
    # a table of the target alone, which note's rows point to
    """CREATE TABLE {db}.author (id INT NOT NULL PRIMARY KEY)""",
    f"INSERT INTO {{db}}.author SELECT seq FROM {{db}}.seq_1_to_{ROWS}",
    """CREATE TABLE {db}.note (id INT NOT NULL PRIMARY KEY, item_id INT NOT NULL,
        body VARCHAR(40) NOT NULL, updated_ts BIGINT NOT NULL, KEY ix_note_body (body),
        CONSTRAINT fk_note_author FOREIGN KEY (item_id) REFERENCES {db}.author (id))""",
)


def _flow(tmp_path: Path, name: str, database: str) -> str:
    data = {
        "name": name,
        "source": {"server": "legacy", "database": "dx"},
        "target": {"kind": "mariadb", "server": "target", "database": database},
        "tables": [
            {"source": "item", "key": "id", "version": "updated_ts",
             "targets": [{"table": "item", "columns": {c: c for c in
                                                       ("id", "uid", "name", "updated_ts")}}]},
            {"source": "note", "key": "id", "version": "updated_ts",
             "targets": [{"table": "note", "columns": {c: c for c in
                                                       ("id", "item_id", "body",
                                                        "updated_ts")}}]},
        ],
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def dirty_source(fresh: dict[str, Server]) -> dict[str, Server]:
    """``ROWS`` items, a few dozen sharing a uid with a lower id, some only to a
    case-insensitive collation (some NULL uids, which never collide), one note per tenth
    item."""
    seed = int(os.environ.get("FURET_TEST_SEED", random.randrange(1 << 30)))
    print(f"deferred-indexes seed {seed} (FURET_TEST_SEED={seed} replays it)")
    rng = random.Random(seed)
    with contextlib.closing(fresh["legacy"].root()) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS dx")
        for ddl in SOURCE_DDL:
            cur.execute(ddl)
        items = []
        for i in range(1, ROWS + 1):
            uid: str | None = f"u{i:06d}"
            if i > 10 and rng.random() < 0.02:
                uid = f"u{rng.randrange(1, i):06d}"   # a lower item's uid
            elif i > 10 and rng.random() < 0.01:
                uid = f"U{rng.randrange(1, i):06d}"   # the same to a _ci collation
            elif rng.random() < 0.01:
                uid = None
            items.append((i, uid, f"item {rng.randrange(10**6)}", 1_700_000_000_000 + i))
        cur.executemany("INSERT INTO dx.item VALUES (%s, %s, %s, %s)", items)
        cur.executemany("INSERT INTO dx.note VALUES (%s, %s, %s, %s)",
                        [(i, i, f"note {i}", 1_700_000_000_000 + i)
                         for i in range(10, ROWS + 1, 10)])
    with contextlib.closing(fresh["target"].root()) as conn, conn.cursor() as cur:
        for db in ("dx_deferred", "dx_guarded", "dx_resumed"):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            for ddl in TARGET_DDL:
                cur.execute(ddl.format(db=db))
    return fresh


def _state(server: Server, db: str, flow: str) -> dict[str, Any]:
    with contextlib.closing(server.root()) as conn:
        return {
            "items": query(conn, f"SELECT * FROM {db}.item ORDER BY id"),
            "notes": query(conn, f"SELECT * FROM {db}.note ORDER BY id"),
            "create": [query(conn, f"SHOW CREATE TABLE {db}.{t}")[0][1].replace(db, "DB")
                       for t in ("item", "note")],
            "quarantine": query(conn, "SELECT source_table, row_key, target_table, reason "
                                      "FROM furet.quarantine WHERE flow = %s ORDER BY "
                                      "CAST(row_key AS UNSIGNED)", (flow,)),
            "deferred": query(conn, "SELECT target_table FROM furet.deferred_indexes WHERE "
                                    "flow = %s", (flow,)),
        }


def test_round_1_builds_the_indexes_at_its_end_and_quarantines_what_breaks_a_unique_key(
        dirty_source: dict[str, Server], tmp_path: Path) -> None:
    servers = dirty_source
    # one worker: the guarded upsert then meets the rows in key order, and keeps the
    # lowest key of a uid as the deferred build does
    deferred_run = run_round(make_config(servers, workers=1, chunk_rows=500),
                             RoundOptions(_flow(tmp_path, "dx_deferred", "dx_deferred")))
    guarded_run = run_round(make_config(servers, workers=1, chunk_rows=500,
                                        defer_indexes=False),
                            RoundOptions(_flow(tmp_path, "dx_guarded", "dx_guarded")))
    deferred = _state(servers["target"], "dx_deferred", "dx_deferred")
    guarded = _state(servers["target"], "dx_guarded", "dx_guarded")

    assert deferred_run.writes == {"item": "plain INSERT", "note": "plain INSERT"}
    assert guarded_run.writes == deferred_run.writes
    dups = deferred["quarantine"]
    assert dups, "the seed made no shared uid"
    bad = [r for r in dups if r[0] != "item" or "is held by the row" not in r[3]]
    assert not bad, bad
    assert dups == guarded["quarantine"]
    assert deferred["items"] == guarded["items"]
    assert deferred["notes"] == guarded["notes"]
    assert deferred["create"] == guarded["create"]      # every index back, as it was written
    assert "UNIQUE KEY `uq_item_uid`" in deferred["create"][0]
    assert "KEY `ix_item_name` (`name`(8)) COMMENT" in deferred["create"][0]
    assert deferred["deferred"] == []
    for run in (deferred_run, guarded_run):
        assert run.rows_read == ROWS + ROWS // 10
        assert run.rows_quarantined == len(dups)
        assert run.rows_written == run.rows_read - len(dups)
    assert dups == _expected_duplicates(servers)


def test_a_round_killed_after_deferring_adds_the_indexes_back_and_a_foreign_key_keeps_them(
        dirty_source: dict[str, Server], tmp_path: Path) -> None:
    servers = dirty_source
    settings = servers["target"].settings()
    with contextlib.closing(connect(settings, autocommit=False, strict=True)) as conn:
        ledger.ensure_ledger(conn)
        # what round 1's first invocation does before it is killed
        done = deferred_indexes.defer(conn, "dx_resumed", 1, "dx_resumed",
                                      {"item": ("id",), "note": ("id",)})
        assert sorted(done) == ["item"]             # note is in a foreign key: kept whole
        assert [i.name for i in done["item"]] == ["uq_item_uid", "ix_item_updated",
                                                  "ix_item_name"]
        kept = query(conn, "SELECT table_name, index_name FROM information_schema.statistics "
                           "WHERE table_schema = 'dx_resumed'")
        assert {tuple(k) for k in kept} == {("item", "PRIMARY"), ("note", "PRIMARY"),
                                            ("note", "fk_note_author"),
                                            ("note", "ix_note_body"), ("author", "PRIMARY")}
    # the next invocation (one worker: a note never arrives before its item's chunk)
    summary = run_round(make_config(servers, workers=1, chunk_rows=300),
                        RoundOptions(_flow(tmp_path, "dx_resumed", "dx_resumed")))
    state = _state(servers["target"], "dx_resumed", "dx_resumed")
    assert state["deferred"] == [] and summary.status == "done"
    assert "UNIQUE KEY `uq_item_uid` (`uid`)" in state["create"][0]
    assert "KEY `ix_item_updated` (`updated_ts`,`id`)" in state["create"][0]
    assert state["quarantine"] == _expected_duplicates(servers)
    assert summary.rows_quarantined == len(state["quarantine"])
    assert len(state["items"]) == ROWS - summary.rows_quarantined


def _expected_duplicates(servers: dict[str, Server]) -> list[tuple[Any, ...]]:
    with contextlib.closing(servers["legacy"].root()) as conn:
        rows = query(conn, "SELECT id, uid FROM dx.item WHERE uid IS NOT NULL ORDER BY id")
    first: dict[str, int] = {}
    out = []
    for id_, uid in rows:
        held = first.setdefault(uid.lower(), id_)   # the target's collation ignores case
        if held != id_:
            out.append(("item", str(id_), "item", f"duplicate key: item: unique key "
                        f"uq_item_uid {uid} is held by the row {held}, not merged"))
    return out
