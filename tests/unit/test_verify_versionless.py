"""furet verify on tables without a version column (``version: none``), without servers:
the SQL of a side that reads by key only, the quarantine rule (a key is excluded while it
is quarantined, at any version), the refusals (Cassandra target, ``--since/--until``),
the repair (nothing is ever shadowed, ``--overwrite-newer`` has nothing to do) and the
reports. The same paths run against real servers in
tests/integration/test_verify_any_schema.py."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pytest
from rich.console import Console

from migration.canonical import key_text
from migration.config import DbSettings
from migration.engine.keys import Key
from migration.engine.writer import BatchOutcome
from migration.errors import FuretError
from migration.flows.mapping import ColumnMap, Flow, parse_flow
from migration.flows.validate import ColumnInfo, TableSchema
from migration.output import print_report
from migration.progress import Silent
from migration.verify import mysql_checksum as mq
from migration.verify.chunks import Range
from migration.verify.compare import Comparer
from migration.verify.drilldown import Classified, classify, group
from migration.verify.mysql_checksum import RowInfo
from migration.verify.planner import Chunk, ChunkPlanner, Current, Quarantine, quarantine_of
from migration.verify.repair import RepairPolicy, repair_pair
from migration.verify.report import VerifyReport, render_html
from migration.verify.report_builder import fill_report
from migration.verify.run import _sql_target_side, check_unversioned, table_codec, table_report
from migration.verify.sides import Pair, Reads, nk
from migration.verify.window import Sampler, TimeWindow

SETTINGS = DbSettings("legacy", "10.0.0.1", 3306, "furet", "s3cret")


def _side() -> mq.SqlSide:
    return mq.SqlSide(SETTINGS, "db", "tag_link", ("post_id", "tag"), "",
                      (ColumnMap("weight", "weight"),), {"weight": "int"}, codec=None)


class _Conn:
    """Answers every query with ``rows`` and keeps the statements."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.executed: list[tuple[str, Any]] = []

    def cursor(self) -> _Conn:
        return self

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: Any) -> None:
        self.executed.append((sql, args))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


# --- the SQL of a side without a version --------------------------------------------------


def test_a_side_without_a_version_filters_and_reads_by_key_only() -> None:
    side = _side()
    assert side.head == 2 and side.version_of((1, "a", 5)) is None
    where, args = mq.range_filter(side, Range(0, "key", (1, "a"), None), TimeWindow(),
                                  exclude=[(3, "c")])
    assert where == (" WHERE (`post_id` >= %s AND (`post_id` > %s OR (`post_id` = %s AND "
                     "(`tag` > %s)))) AND (NOT ((`post_id` = %s AND `tag` = %s)))")
    assert args == [1, 1, 1, "a", 3, "c"]
    conn = _Conn([(1, "a", 111), (2, "b", 222)])
    rows = mq.row_hashes(conn, side, None, TimeWindow())  # type: ignore[arg-type]
    assert conn.executed[0][0].startswith("SELECT `post_id`, `tag`, CAST(CONV(")
    assert [(r.key, r.version, r.hash) for r in rows] == [((1, "a"), None, 111),
                                                          ((2, "b"), None, 222)]
    texts = mq.rows_by_key(_Conn([(1, "a", "7")]), side, [(1, "a")])  # type: ignore[arg-type]
    assert texts['["1", "a"]'].texts == ("7",) and texts['["1", "a"]'].version is None
    # the version furet.quarantine records such rows with
    current = mq.current_versions(_Conn([(1, "a")]), side, [(1, "a"), (9, "z")])  # type: ignore[arg-type]
    assert current == {'["1", "a"]': ((1, "a"), 0)}


def test_a_side_without_a_version_never_compares_versions() -> None:
    side = _side()
    for chunk, window in ((None, TimeWindow(1, None)), (Range(0, "version", 1, 2), TimeWindow())):
        with pytest.raises(ValueError, match="database db table tag_link has no version column"):
            mq.range_filter(side, chunk, window)


def test_a_quarantined_key_without_a_version_is_excluded_at_any_version() -> None:
    """Rounds record a version-less row with version 0; an entry left from when the table
    had a version column (here 1700) excludes its key as well. Keys the source no longer
    holds are not excluded (nothing to leave out)."""
    versions = {key_text((1, "a")): {0}, key_text((2, "b")): {1700}, key_text((9, "z")): {0}}

    def current(keys: Sequence[Key]) -> Current:
        held = {(1, "a"), (2, "b")}
        return {nk(k): (k, 0) for k in ((int(a), b) for a, b in keys) if k in held}

    assert set(quarantine_of(versions, 2, False, current, versioned=False).as_dict()) == {
        '["1", "a"]', '["2", "b"]'}
    # the rule of versioned tables: only the current version counts
    assert set(quarantine_of(versions, 2, False, current).as_dict()) == {'["1", "a"]'}


# --- refusals -----------------------------------------------------------------------------


def _flow(kind: str = "mariadb") -> Flow:
    return parse_flow({
        "name": "f", "source": {"database": "src"},
        "target": {"kind": kind, "database": "dst", "keyspace": "dst"},
        "tables": [{"source": "quote", "key": "id", "version": "v",
                    "targets": [{"table": "quote", "columns": {"id": "id", "v": "v"}}]},
                   {"source": "tag_link", "key": ["post_id", "tag"], "version": "none",
                    "targets": [{"table": "tag_link", "columns": {
                        "post_id": "post_id", "tag": "tag", "weight": "weight"}}]}]})


def test_a_window_refuses_tables_without_a_version_in_one_line() -> None:
    flow = _flow()
    check_unversioned(flow, (), TimeWindow())                # no window: compared by key
    check_unversioned(flow, ("quote",), TimeWindow(1, 2))    # --table left it out
    for tables in ((), ("tag_link",)):
        with pytest.raises(FuretError) as err:
            check_unversioned(flow, tables, TimeWindow(None, 2))
        assert str(err.value) == (
            "flow f database src table tag_link has no version column: --since/--until "
            "cannot select its rows; use --table to verify the others")


def test_a_cassandra_target_refuses_tables_without_a_version() -> None:
    flow = _flow("cassandra")
    check_unversioned(flow, ("quote",), TimeWindow())
    with pytest.raises(FuretError) as err:
        check_unversioned(flow, (), TimeWindow())
    assert str(err.value) == (
        "flow f database src table tag_link: `version: none` needs a MariaDB target (rounds "
        "refuse it too); add a version with `furet legacy add-version --table tag_link`, or "
        "use --table to verify the others")


def test_the_target_side_of_a_table_without_a_version_has_none() -> None:
    flow = _flow()
    tf = flow.tables[1]
    schema = TableSchema("dst", "tag_link", {c: ColumnInfo(c, "int", False, False, False)
                                             for c in ("post_id", "tag", "weight")},
                         (("post_id", "tag"),))
    assert table_codec(flow, tf, schema) is None
    side = _sql_target_side(flow, tf, tf.targets[0], SETTINGS, schema, None)
    assert (side.keys, side.version, side.codec, side.head) == (("post_id", "tag"), "", None, 2)


# --- compare and repair over in-memory stores ---------------------------------------------


class Span:
    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = sorted(keys)

    def bounds(self, kind: str) -> tuple[Any, Any]:
        raise AssertionError("a composite key is cut at boundaries, never by version")

    def count(self) -> int:
        return len(self.keys)

    def next_boundary(self, lo: Key | None, rows: int) -> Key | None:
        after = [k for k in self.keys if lo is None or k > lo]
        return after[rows - 1] if len(after) >= rows else None


class Store:
    """key tuple -> row hash, no version; ``copy`` upserts unconditionally, except the
    keys in ``stuck`` (a target trigger that rewrites them: they stay different)."""

    def __init__(self, rows: dict[Key, int]) -> None:
        self.sql = _side()                      # what a report reads: no version codec
        self.rows = dict(rows)
        self.copied: list[Key] = []
        self.deleted: list[Key] = []
        self.overwritten: list[Any] = []
        self.stuck: set[Key] = set()

    @property
    def where(self) -> str:
        return "memory"

    def mode(self, source: Any) -> str:
        return "sql"

    identity = None  # rows keyed by the source key, as a MariaDB table

    def span(self) -> Span:
        return Span(list(self.rows))

    def _in(self, chunk: Chunk) -> list[RowInfo]:
        return [RowInfo(k, None, h) for k, h in sorted(self.rows.items())
                if chunk.rng.contains(k) and k not in chunk.excluded]

    def checksum(self, chunk: Chunk) -> tuple[int, int]:
        xor = 0
        rows = self._in(chunk)
        for r in rows:
            xor ^= r.hash
        return len(rows), xor

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        return 0.0

    def current_versions(self, keys: Sequence[Key]) -> Current:
        """Looked up by texts (as SQL converts them), matched back by key text."""
        wanted = {nk(k) for k in keys}
        return {nk(k): (k, 0) for k in self.rows if nk(k) in wanted}

    def rows_of(self, chunk: Chunk) -> dict[str, RowInfo]:
        return {nk(r.key): r for r in self._in(chunk)}

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: Any,
              quarantine: Quarantine) -> list[Classified]:
        return [classify(source.rows_of(c), group([(nk(r.key), r) for r in self._in(c)]))
                for c in bad]

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        return {nk(k): RowInfo(k, None, self.rows[k], (str(k[0]), k[1], str(self.rows[k])))
                for k in keys if k in self.rows}

    def source_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        return [(*k, self.rows[k]) for k in keys if k in self.rows]

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        for row in rows:
            key = (row[0], row[1])
            self.rows[key] = -1 if key in self.stuck else row[2]
            self.copied.append(key)
        return BatchOutcome(len(rows))

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        for _, row in extra:
            self.deleted.append(row.key)
            del self.rows[row.key]
        return len(extra)

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        self.overwritten.extend(rows)
        return len(rows)


TF = _flow().tables[1]


def _compare(source: Store, target: Store, quarantined: dict[str, set[int]] | None = None
             ) -> tuple[Pair, Comparer]:
    pair = Pair(TF, TF.targets[0], source, target,  # type: ignore[arg-type]
                ("post_id", "tag", "weight"), numeric_key=False)
    comparer = Comparer(ChunkPlanner(Sampler(1.0), chunk_time=0.3, initial_chunk=50),
                        Reads(workers=2), Silent(), lambda table: quarantined or {},
                        max_report_rows=100)
    return pair, comparer


def _source() -> Store:
    return Store({(p, t): p * 31 + ord(t) for p in range(1, 101) for t in "abc"})


def test_compare_and_repair_without_a_version() -> None:
    source = _source()
    target = Store(source.rows)
    del target.rows[(10, "b")]
    target.rows[(50, "a")] = 7                  # different
    target.rows[(60, "c")] = 8                  # different, and stays so (a trigger)
    target.rows[(999, "x")] = 1                 # extra
    target.stuck = {(60, "c")}
    pair, comparer = _compare(source, target, {key_text((70, "a")): {0}})
    del target.rows[(70, "a")]                  # quarantined by a round: expected absent
    table = table_report(pair, pair.mode)
    done, found = comparer.compare(pair, table)
    fill_report(pair, table, done, found, 100)
    assert (set(found.missing), set(found.different), [k for k, _ in found.extra]) == (
        {'["10", "b"]'}, {'["50", "a"]', '["60", "c"]'}, ['["999", "x"]'])
    assert table.quarantined == 1 and table.quarantined_keys == [(70, "a")]
    assert table.version == "" and table.version_type == "none"
    assert all(d.source_version is None and d.target_version is None for d in table.diffs)
    assert {d.key_text: d.columns for d in table.diffs if d.kind == "different"} == {
        '["50", "a"]': ["weight"], '["60", "c"]': ["weight"]}

    def recheck(ranges: Sequence[Range]) -> Classified:
        return comparer.compare(pair, table_report(pair, "recheck"), fixed=ranges)[1]

    recorded: list[Any] = []
    repair = repair_pair(pair, done, found, recheck, recorded.append,
                         RepairPolicy(delete_extra=True, overwrite_newer=True))
    assert sorted(target.copied) == [(10, "b"), (50, "a"), (60, "c")]
    assert target.deleted == [(999, "x")] and not recorded
    # the upsert was unconditional: nothing is shadowed, nothing is overwritten
    assert repair.shadowed == [] and repair.overwritten == 0 and target.overwritten == []
    assert (repair.copied, repair.deleted, repair.missing_after, repair.extra_after,
            repair.different_after) == (3, 1, 0, 0, 1)
    assert not repair.ok
    table.repair = repair
    report = VerifyReport("f", "legacy", "target", "2026-11-30T00:00:00+00:00", tables=[table])
    data = json.loads(report.to_json())["tables"][0]
    assert data["version"] == "" and data["version_type"] == "none"
    assert {d["source_version"] for d in data["diffs"]} == {None}
    page = render_html(report)
    assert "(key post_id, tag, no version column, sql)" in page
    assert "days (of the row version)" not in page
    sink = io.StringIO()
    print_report(Console(file=sink, width=200), report)
    assert "shadowed by a newer" not in sink.getvalue()
    assert "0 overwritten, 0 quarantined, 0 shadowed" in sink.getvalue()
