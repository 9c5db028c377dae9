"""Which tables get server-built literals, and the SQL they are read with (no server)."""

from __future__ import annotations

import pytest

from migration.config import FuretConfig
from migration.engine.round import RoundOptions, run_round
from migration.engine.sql_pushdown import plan
from migration.errors import FuretError
from migration.flows.mapping import ColumnMap, RefTimeMap, TableFlow, TargetMap, load_flow
from migration.flows.validate import ColumnInfo, TableSchema


def _schema(table: str, **columns: tuple[str, bool]) -> TableSchema:
    return TableSchema("db", table, {name: ColumnInfo(name, dtype, nullable, False, False)
                                     for name, (dtype, nullable) in columns.items()},
                       (("id",),))


SOURCE = _schema("t", id=("bigint", False), v=("bigint", False), name=("varchar", True),
                 raw=("varbinary", True), day=("date", True), price=("double", True),
                 made=("datetime", True))
TARGET = _schema("t", id=("bigint", False), v=("bigint", False), name=("varchar", False),
                 city=("varchar", True), day=("date", True), price=("double", True),
                 made=("datetime", True), ref=("int", True))


def _flow(*columns: ColumnMap, ref_time: RefTimeMap | None = None) -> TableFlow:
    return TableFlow("t", ("id",), "v", (TargetMap("t", (ColumnMap("id", "id"), ColumnMap("v", "v"),
                                                      *columns), ref_time),))


def test_runtime_flow_is_expressible_in_sql() -> None:
    flow = load_flow("runtime")
    customer = _schema("customer", id=("int", False), uid=("char", False),
                       email=("varchar", False), full_name=("varchar", True),
                       city=("varbinary", True), birth_date=("date", True),
                       created_ts=("bigint", False), updated_ts=("bigint", False))
    target = _schema("customer", **{**{c: (i.data_type, i.nullable)
                                       for c, i in customer.columns.items()},
                                    "city": ("varchar", True)})
    pushdown, why = plan(flow.table("customer"), customer, {"customer": target}, "ts")
    assert pushdown is not None and why == "server-built literals"
    select, cursor_index, first = pushdown.select_list(("id",))
    assert (cursor_index, first) == ([0], 2)
    assert select.startswith("`id`, `updated_ts`, COALESCE(CONVERT(CONCAT('!', CASE WHEN ")
    # Python's order: the city's encoding, then the birth date (no NOT NULL check: the
    # source columns of the NOT NULL target columns are NOT NULL themselves)
    assert pushdown.reason.index("bad encoding: customer: column city") < \
        pushdown.reason.index("bad date: customer: column birth_date")
    assert "IS NULL THEN" not in pushdown.reason
    assert "QUOTE(CONVERT(`full_name` USING utf8mb4))" in pushdown.literals[0]
    assert "IFNULL(`id`, 'NULL')" in pushdown.literals[0]


def test_checks_follow_the_python_path() -> None:
    pushdown, _ = plan(_flow(ColumnMap("name", "name", "trim"), ColumnMap("day", "day")),
                       SOURCE, {"t": TARGET}, "ts")
    assert pushdown is not None
    reason = pushdown.reason
    assert reason.index("recheck: t: column name: whitespace") < \
        reason.index("NULL not allowed: t: column name cannot be NULL") < \
        reason.index("bad date: t: column day: invalid date ")
    assert "QUOTE(TRIM(CONVERT(`name` USING utf8mb4)))" in pushdown.literals[0]
    select, cursor_index, first = pushdown.select_list(("name",))
    assert select.startswith("`id`, `v`, `name`, ") and (cursor_index, first) == ([2], 3)


def test_raw_bytes_are_hex_and_utf8_is_checked() -> None:
    raw, _ = plan(_flow(ColumnMap("city", "raw")), SOURCE, {"t": TARGET}, "ts")
    checked, _ = plan(_flow(ColumnMap("city", "raw", "utf8")), SOURCE, {"t": TARGET}, "ts")
    assert raw is not None and checked is not None
    assert "HEX(`raw`)" in raw.literals[0] and raw.reason == "NULL"
    assert "QUOTE(CONVERT(`raw` USING utf8mb4))" in checked.literals[0]
    assert "LOCATE(X'ED', `raw`)" in checked.reason   # surrogates: Python decides


def test_what_sql_cannot_build_stays_in_python() -> None:
    cases = {
        "t: column price: double has no exact server-built literal":
            (_flow(ColumnMap("price", "price")), {"t": TARGET}, "ts"),
        "t: column made: datetime has no exact server-built literal":
            (_flow(ColumnMap("made", "made")), {"t": TARGET}, "ts"),
        "t: column name: transform ms_to_day runs in Python":
            (_flow(ColumnMap("day", "name", "ms_to_day")), {"t": TARGET}, "ts"),
        "t: column day: varchar into date":
            (_flow(ColumnMap("day", "name")), {"t": TARGET}, "ts"),
        "t: no target schema to check rows against":
            (_flow(ColumnMap("name", "name")), {}, "ts"),
        "t: ref_time ids are looked up in Python":
            (_flow(ColumnMap("name", "name"), ref_time=RefTimeMap("ref", "v")), {"t": TARGET},
             "id"),
    }
    for expected, (flow, targets, strategy) in cases.items():
        assert plan(flow, SOURCE, targets, strategy) == (None, expected)
    # without --strategy id the ref_time column is not written: SQL can build the rest
    flow = _flow(ColumnMap("name", "name"), ref_time=RefTimeMap("ref", "v"))
    assert plan(flow, SOURCE, {"t": TARGET}, "ts")[0] is not None


def test_an_unknown_literals_mode_is_refused_before_connecting() -> None:
    with pytest.raises(FuretError, match="unknown literals mode 'fast' \\(expected auto, "
                                         "python\\)"):
        run_round(FuretConfig(), RoundOptions("runtime", literals="fast"))
