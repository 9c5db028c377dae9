"""The SQL of furet verify's MariaDB side for any key and version type (no server; the same
statements run against real servers in tests/integration/test_verify_any_schema.py):
key ranges over key tuples, versions compared with values of the column's own type, the
quarantined keys left out as key tuples, the keyset nibble of the chunk boundaries."""

from __future__ import annotations

import datetime
from typing import Any

from migration.config import DbSettings
from migration.engine.versions import codec_for
from migration.flows.mapping import ColumnMap
from migration.verify import mysql_checksum as mq
from migration.verify.chunks import Range
from migration.verify.window import TimeWindow

SETTINGS = DbSettings("legacy", "10.0.0.1", 3306, "furet", "s3cret")
DT0 = codec_for("t", "changed_at", "datetime", 0)


def _side(keys: tuple[str, ...], codec: Any = DT0) -> mq.SqlSide:
    return mq.SqlSide(SETTINGS, "db", "lines", keys, "changed_at",
                      (ColumnMap("qty", "qty"),), {"qty": "int"}, codec=codec)


def _instant(text: str) -> int:
    ledger = DT0.ledger(datetime.datetime.fromisoformat(text))
    assert ledger is not None
    return ledger


def test_a_composite_key_range_is_a_keyset_predicate_on_the_tuple() -> None:
    side = _side(("order_no", "line"))
    where, args = mq.range_filter(side, Range(0, "key", (7, "b"), (9, "a")), TimeWindow())
    assert where == (" WHERE (`order_no` >= %s AND (`order_no` > %s OR (`order_no` = %s AND "
                     "(`line` > %s)))) AND (`order_no` <= %s AND (`order_no` < %s OR "
                     "(`order_no` = %s AND (`line` <= %s))))")
    assert args == [7, 7, 7, "b", 9, 9, 9, "a"]


def test_an_integer_bound_of_a_single_key_stays_one_comparison() -> None:
    where, args = mq.range_filter(_side(("id",)), Range(0, "key", 100, None), TimeWindow())
    assert (where, args) == (" WHERE (`id` > %s)", [100])


def test_versions_and_the_window_compare_with_the_columns_own_type() -> None:
    """A DATETIME version: the ledger's epoch microseconds go to SQL as DATETIME text, so
    MariaDB compares the column with its index, nothing converted row by row."""
    side = _side(("order_no", "line"))
    lo, hi = _instant("2026-11-25 10:00:00"), _instant("2026-11-25 11:00:00")
    where, args = mq.range_filter(side, Range(0, "version", lo, hi), TimeWindow(lo, None),
                                  exclude=[(1, "a"), (2, "b")])
    assert where == (" WHERE (`changed_at` > %s) AND (`changed_at` <= %s) AND "
                     "(`changed_at` > %s) AND (NOT ((`order_no` = %s AND `line` = %s) OR "
                     "(`order_no` = %s AND `line` = %s)))")
    assert args == ["2026-11-25 10:00:00.000000", "2026-11-25 11:00:00.000000",
                    "2026-11-25 10:00:00.000000", 1, "a", 2, "b"]


def test_an_epoch_version_compares_as_an_integer() -> None:
    side = _side(("id",), codec_for("t", "v", "bigint", None))
    where, args = mq.range_filter(side, None, TimeWindow(1000, 2000), exclude=[(5,)])
    assert where == " WHERE (`changed_at` > %s) AND (`changed_at` <= %s) AND (`id` NOT IN (%s))"
    assert args == [1000, 2000, 5]


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


def test_the_next_boundary_is_a_keyset_nibble_and_returns_a_key_tuple() -> None:
    conn = _Conn([(12, "c")])
    side = _side(("order_no", "line"))
    assert mq.next_boundary(conn, side, (7, "b"), 500) == (12, "c")  # type: ignore[arg-type]
    sql, args = conn.executed[0]
    assert sql == ("SELECT `order_no`, `line` FROM `db`.`lines` WHERE `order_no` >= %s AND "
                   "(`order_no` > %s OR (`order_no` = %s AND (`line` > %s))) "
                   "ORDER BY `order_no`, `line` LIMIT 1 OFFSET 499")
    assert args == [7, 7, 7, "b"]
    assert mq.next_boundary(_Conn([]), side, None, 10) is None  # type: ignore[arg-type]


def test_rows_come_back_with_key_tuples_and_ledger_versions() -> None:
    moment = datetime.datetime(2026, 11, 25, 10, 0, 1)
    conn = _Conn([(7, "b", moment, 12345), (8, "a", None, 1)])
    rows = mq.row_hashes(conn, _side(("order_no", "line")), None,  # type: ignore[arg-type]
                         TimeWindow())
    assert [(r.key, r.version, r.hash) for r in rows] == [
        ((7, "b"), _instant("2026-11-25 10:00:01"), 12345), ((8, "a"), None, 1)]
    current = mq.current_versions(_Conn([(7, "b", moment)]),  # type: ignore[arg-type]
                                  _side(("order_no", "line")), [(7, "b")])
    assert current == {'["7", "b"]': ((7, "b"), _instant("2026-11-25 10:00:01"))}
