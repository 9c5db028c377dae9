"""flow init's rules and target schema's type mapping, on table definitions built in the test
(the same paths run against real servers in tests/integration/test_flow_generate.py)."""

from __future__ import annotations

from typing import Any

import click
import pytest
import yaml

from migration import contract
from migration.cli import cli
from migration.errors import FuretError
from migration.flows.generate import (
    FlowTarget,
    choose_version,
    cql_name,
    named_like_change,
    parse_target,
    render_flow,
)
from migration.flows.mapping import parse_flow
from migration.flows.source_schema import Column, Database, Index, Table, default_sql
from migration.target.ddl import cql_ident, cql_type, mariadb_column, utf8mb4_collation


def _col(name: str, column_type: str, nullable: bool = False, **kw: Any) -> Column:
    data_type = column_type.split("(")[0].split(" ")[0].lower()
    return Column(name, column_type, data_type, nullable, **kw)


def _table(*columns: Column, pk: tuple[str, ...] = ("id",),
           indexed: tuple[str, ...] = ()) -> Table:
    indexes = [Index("PRIMARY", pk, True)] if pk else []
    indexes += [Index(f"ix_{c}", (c,), False) for c in indexed]
    return Table("shop", "t", (_col("id", "int(11)"), *columns), tuple(indexes))


@pytest.mark.parametrize(("name", "expected"), [
    ("updated_at", True), ("updated_ts", True), ("UpdatedAt", True), ("last_update", True),
    ("lastupdate", True), ("modified", True), ("date_modified", True), ("changed_on", True),
    ("mtime", True), ("row_mtime", True), ("update_time", True), ("date_maj", True),
    ("updated_by", False), ("changed_by", False), ("is_updated", False),
    ("update_count", False), ("changes", False), ("created_at", False), ("majority", False),
])
def test_change_column_names(name: str, expected: bool) -> None:
    assert named_like_change(name) is expected


def test_on_update_timestamp_wins_over_named_columns() -> None:
    table = _table(_col("updated_ts", "bigint(20)"), _col("modified", "datetime"),
                   _col("stamp", "timestamp(3)", extra="on update current_timestamp(3)",
                        precision=3), indexed=("stamp",))
    choice = choose_version(table)
    assert choice.column == "stamp" and choice.temporal == "timestamp"
    assert choice.reason == ("TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3): the server stamps "
                             "every write")


def test_not_null_candidates_before_nullable_ones() -> None:
    table = _table(_col("changed_on", "timestamp", nullable=True,
                        extra="on update current_timestamp()"),
                   _col("updated_ts", "bigint(20)"), indexed=("updated_ts",))
    choice = choose_version(table, lambda c: 1_732_950_000_123)
    assert (choice.column, choice.unit) == ("updated_ts", "")
    assert choice.reason == "BIGINT named like a change column: epoch ms (BIGINT)"
    only_nullable = _table(_col("changed_on", "timestamp", nullable=True,
                                extra="on update current_timestamp()"))
    choice = choose_version(only_nullable)
    assert choice.column == "changed_on" and "nullable: a row whose version is NULL" in \
        choice.reason and "no index starts with changed_on" in choice.reason


def test_datetime_then_bigint_then_int() -> None:
    assert choose_version(_table(_col("mtime", "int(11)"), _col("updated", "bigint(20)"),
                                 _col("date_modified", "datetime"))).column == "date_modified"
    choice = choose_version(_table(_col("mtime", "int(11)"), _col("updated", "bigint(20)")))
    assert choice.column == "updated"
    assert "unit assumed from the type (not sampled)" in choice.reason
    choice = choose_version(_table(_col("mtime", "int(10) unsigned"), indexed=("mtime",)),
                            lambda c: 1_732_950_000)
    assert (choice.column, choice.unit) == ("mtime", "")
    assert choice.reason == "INT named like a change column: epoch s (INT)"


def test_bigint_unit_from_its_indexed_maximum() -> None:
    table = _table(_col("updated_ts", "bigint(20)"), indexed=("updated_ts",))
    seconds = choose_version(table, lambda c: 1_732_950_000)
    assert seconds.unit == "s" and "epoch s, not the BIGINT default (ms)" in seconds.unit_reason
    assert choose_version(table, lambda c: 1_732_950_000_000_000).unit == "us"
    assert choose_version(table, lambda c: None).unit == ""      # empty table: the default
    counter = choose_version(table, lambda c: 42)                # a counter, not a time
    assert counter.column == "" and "furet legacy add-version --table t" in counter.reason


def test_no_change_column_is_version_none() -> None:
    choice = choose_version(_table(_col("is_updated", "int(11)"), _col("name", "varchar(9)")))
    assert choice.column == "" and "`furet legacy add-version --table t`" in choice.reason


def test_rendered_flow_parses_and_keeps_lines_short() -> None:
    orders = Table("shop", "order_line", (
        _col("order_id", "int(11)"), _col("line_no", "smallint(6)"),
        _col("label", "varchar(40)", charset="latin1", collation="latin1_swedish_ci"),
        _col("photo", "blob", nullable=True),
        _col("total", "decimal(9,2)", nullable=True, extra="VIRTUAL GENERATED",
             generation="`qty` * 2"),
        _col("updated_at", "datetime")), (Index("PRIMARY", ("order_id", "line_no"), True),))
    loose = Table("shop", "audit", (_col("msg", "text", True),), ())
    source = Database("shop", "10.11.9-MariaDB", {"audit": loose, "order_line": orders})
    versions = {"order_line": choose_version(orders)}
    existing = {"order_line": Table("shop", "order_line", (
        _col("photo", "varchar(80)", True, charset="utf8mb4"),), ())}
    flow = render_flow(source, "legacy db1:3306", FlowTarget("mariadb", "shop"), "shop",
                       versions, "SYSTEM (UTC)", existing)
    assert flow.tables == ("order_line",) and flow.skipped[0].table == "audit"
    assert all(len(line) <= 100 for line in flow.text.splitlines())
    data = yaml.safe_load(flow.text)
    (table,) = data["tables"]
    assert table["key"] == ["order_id", "line_no"] and table["version"] == "updated_at"
    assert table["version_timezone"] == "UTC"
    columns = table["targets"][0]["columns"]
    assert columns["photo"] == {"from": "photo", "transform": "utf8"}   # bytes into text
    assert columns["label"] == "label" and "total" not in columns
    assert "#   - audit: no primary key (Galera needs one)" in flow.text
    assert "# total: generated column (VIRTUAL), not copied" in flow.text
    parsed = parse_flow(data)
    assert parsed.table("order_line").version == "updated_at"
    not_utc = render_flow(source, "legacy db1:3306", FlowTarget("mariadb", "shop"), "shop",
                          versions, "SYSTEM (CET)")
    assert "version_timezone" not in yaml.safe_load(not_utc.text)["tables"][0]
    assert "# # version_timezone: UTC" not in not_utc.text
    assert "    # version_timezone: UTC" in not_utc.text and "SYSTEM (CET)" in not_utc.text


def test_targets_and_names() -> None:
    assert parse_target("cassandra:prod") == FlowTarget("cassandra", "prod")
    with pytest.raises(FuretError, match="expected mariadb:DATABASE or cassandra:KEYSPACE"):
        parse_target("postgres:x")
    assert cql_name("CustomerId") == "customerid" and cql_name("2nd-name") == "c_2nd_name"
    assert cql_name("Token") == "token_" and cql_ident("token") == '"token"'
    assert cql_ident("order_id") == "order_id" and cql_ident("Name") == '"Name"'


@pytest.mark.parametrize(("source", "target"), [
    ("latin1_swedish_ci", "utf8mb4_general_ci"), ("latin1_bin", "utf8mb4_bin"),
    ("latin1_general_cs", "utf8mb4_bin"), ("utf8mb3_unicode_ci", "utf8mb4_unicode_ci"),
    ("utf8_general_ci", "utf8mb4_general_ci"), ("utf8mb4_0900_ai_ci", "utf8mb4_uca1400_ai_ci"),
    ("utf8mb4_unicode_520_ci", "utf8mb4_unicode_520_ci"), ("latin1_german1_ci",
                                                          "utf8mb4_unicode_ci"),
    (None, "utf8mb4_unicode_ci"),
])
def test_utf8mb4_collations(source: str | None, target: str) -> None:
    assert utf8mb4_collation(source) == target


def test_mariadb_columns() -> None:
    notes: list[str] = []
    bio = _col("bio", "text", True, default="'-'", charset="latin1",
               collation="latin1_swedish_ci")
    assert mariadb_column(bio, "bio", notes=notes) == (
        "`bio` mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL DEFAULT '-'")
    assert "bio: latin1 text -> mediumtext" in notes[0]
    zero = _col("zd", "datetime", default="'0000-00-00 00:00:00'")
    assert mariadb_column(zero, "zd", notes=notes) == "`zd` datetime NOT NULL"
    assert "refuses zero dates" in notes[1]
    city = _col("city", "varbinary(80)", True)
    assert mariadb_column(city, "city", "utf8") == (
        "`city` varchar(80) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL")
    stamp = _col("ts", "timestamp(3)", default="current_timestamp(3)",
                 extra="on update current_timestamp(3)", precision=3)
    assert mariadb_column(stamp, "ts") == ("`ts` timestamp(3) NOT NULL DEFAULT "
                                           "current_timestamp(3) ON UPDATE current_timestamp(3)")
    assert mariadb_column(_col("id", "int(10) unsigned", extra="auto_increment"), "id") == (
        "`id` int(10) unsigned NOT NULL AUTO_INCREMENT")


def test_mysql_defaults_become_sql() -> None:
    assert default_sql("a'b", "varchar", "", mariadb=False) == "'a\\'b'"
    assert default_sql("CURRENT_TIMESTAMP", "timestamp", "DEFAULT_GENERATED",
                       mariadb=False) == "CURRENT_TIMESTAMP"
    assert default_sql("1.50", "decimal", "", mariadb=False) == "1.50"
    assert default_sql("(uuid())", "varchar", "", mariadb=True) == "(uuid())"


@pytest.mark.parametrize(("column_type", "transform", "cql"), [
    ("int(11)", "", "int"), ("int(10) unsigned", "", "bigint"), ("bigint(20) unsigned", "",
                                                                 "varint"),
    ("tinyint(3) unsigned", "", "smallint"), ("decimal(10,2)", "", "decimal"),
    ("enum('a','b')", "", "text"), ("json", "", "text"), ("blob", "", "blob"),
    ("varbinary(80)", "utf8", "text"), ("datetime(3)", "", "timestamp"), ("year(4)", "",
                                                                          "smallint"),
    ("time", "", "time"), ("bigint(20)", "ms_to_day", "date"),
])
def test_cql_types(column_type: str, transform: str, cql: str) -> None:
    assert cql_type(_col("c", column_type), transform) == cql


@pytest.mark.parametrize("task", sorted(contract.LOCAL_COMMANDS))
def test_local_commands_click_options_are_the_contracts(task: str) -> None:
    spec = contract.LOCAL_COMMANDS[task]
    command: click.Command = cli
    for word in spec.path:
        assert isinstance(command, click.Group)
        command = command.commands[word]
    params = [p for p in command.params if p.name != "help"]
    assert [p.name for p in params] == [*(a.name for a in spec.arguments),
                                        *(o.dest for o in spec.options)]
    assert command.help == spec.help
    for option, param in zip(spec.options, params[len(spec.arguments):], strict=True):
        assert isinstance(param, click.Option) and param.opts == [option.flag]
        assert param.required == option.required and param.help == option.help
    assert not set(contract.LOCAL_COMMANDS) & set(contract.COMMANDS)
