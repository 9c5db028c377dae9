"""Reverse flows (issue 13 item 4): a MariaDB-to-MariaDB flow inverted into the flow its
reverse rounds run (Galera -> legacy), and the flows that cannot be inverted, refused with
one line naming the flow, the table and the column, before any server is reached."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from migration.cli import cli
from migration.contract import COMMANDS
from migration.engine.results import RoundSummary
from migration.enums import Deletes, Strategy
from migration.errors import FuretError
from migration.flows.mapping import FLOWS_DIR, ColumnMap, load_flow, parse_flow
from migration.flows.reverse import REVERSE_SUFFIX, load_for, reverse_flow


def _runtime() -> dict[str, Any]:
    return yaml.safe_load((FLOWS_DIR / "runtime.yml").read_text())


def test_the_runtime_flow_reversed_goes_from_the_target_back_to_the_legacy() -> None:
    forward = load_flow("runtime")
    back = reverse_flow(forward)
    assert back.name == "runtime.reverse" and back.reverse_of == "runtime"
    assert (back.source_server, back.source_database) == ("target", "lf_runtime")
    assert (back.target_kind, back.target_server, back.target_database) == \
        ("mariadb", "legacy", "lf_runtime")
    assert [t.source for t in back.tables] == ["customer", "quote", "offer"]
    for tf, fwd in zip(back.tables, forward.tables, strict=True):
        (tm,) = tf.targets
        assert tm.table == fwd.source            # back into the legacy table it came from
        assert (tf.keys, tf.version) == (("id",), "updated_ts")
        assert tf.id_column == ""                  # --strategy id is not for reverse rounds
        (ftm,) = fwd.targets
        # every Galera column goes back into the legacy column it was copied from
        assert {(c.source, c.target) for c in tm.columns} == \
            {(c.target, c.source) for c in ftm.columns}
    # utf8 decoded the legacy bytes; going back the server stores the text in the
    # legacy column's own charset (VARBINARY: those very bytes): no transform
    assert back.table("customer").targets[0].columns[4] == ColumnMap("city", "city", "")
    # reversing the reverse is refused rather than guessed
    with pytest.raises(FuretError, match=r"flow runtime\.reverse is already a reverse flow"):
        reverse_flow(back)


def test_renamed_tables_columns_composite_keys_and_flow_settings_are_inverted() -> None:
    data = {
        "name": "shop", "source": {"database": "shop"},
        "target": {"kind": "mariadb", "database": "shop_new"},
        "tables": [
            {"source": "order_line", "key": ["order_id", "line_no"], "version": "changed_at",
             "version_timezone": "+01:00",
             "targets": [{"table": "order_lines", "columns": {
                 "oid": "order_id", "line": "line_no", "amount_cents": "amount",
                 "label": {"from": "label", "transform": "utf8"}, "changed": "changed_at"}}]},
            {"source": "tag", "key": "code", "version": "none", "deletes": "propagate",
             "targets": [{"table": "tag", "columns": {"code": "code", "title": "title"}}]},
        ]}
    back = reverse_flow(parse_flow(data))
    lines = back.table("order_lines")
    assert lines.keys == ("oid", "line") and lines.version == "changed"
    assert lines.version_timezone == "+01:00"
    (tm,) = lines.targets
    assert tm.table == "order_line"
    assert tm.target_of("amount_cents") == "amount" and tm.target_of("oid") == "order_id"
    assert lines.target_keys(tm) == ("order_id", "line_no")
    assert lines.source_columns[:3] == ("oid", "line", "changed")
    tag = back.table("tag")
    assert tag.version == "" and tag.deletes == Deletes.PROPAGATE
    assert (back.source_database, back.target_database) == ("shop_new", "shop")


def _edited(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(_runtime())
    edit(data)
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tables"][0]["targets"][0]["columns"].update(
        full_name={"from": "full_name", "transform": "trim"}),
     "flow runtime table customer -> customer column full_name: transform trim loses "
     "information"),
    (lambda d: d["tables"][1]["targets"].append(copy.deepcopy(d["tables"][1]["targets"][0])),
     "flow runtime table quote: copied into 2 tables"),
    (lambda d: d["tables"][1]["targets"][0]["columns"].update(status_copy="status"),
     "flow runtime table quote -> quote: source column status is copied into both status "
     "and status_copy"),
    (lambda d: d["tables"][2]["targets"][0].update(table="quote"),
     "flow runtime: target table quote is written from quote and offer"),
    (lambda d: d["tables"][1]["targets"][0].update(ref_time={"column": "r", "from": "updated_ts"}),
     "flow runtime table quote -> quote: ref_time"),
    (lambda d: d.update(name="x" * 60), "is longer than 64 characters"),
])
def test_mappings_that_cannot_be_inverted_are_refused_naming_table_and_column(
        edit: Any, message: str) -> None:
    with pytest.raises(FuretError, match=message.replace(".", r"\.").replace("(", r"\(")):
        reverse_flow(parse_flow(_edited(edit)))


def test_the_cassandra_flow_and_rt_bo_are_not_reversed() -> None:
    with pytest.raises(FuretError) as cassandra:
        reverse_flow(load_flow("cassandra_prod"))
    assert str(cassandra.value).startswith("flow cassandra_prod: --reverse ")
    assert "Cassandra keyspace prod" in str(cassandra.value)
    with pytest.raises(FuretError) as bo:
        reverse_flow(load_flow("rt_bo"))
    assert str(bo.value).startswith("flow rt_bo: --reverse ")
    assert "derived" in str(bo.value)


def test_the_reverse_suffix_is_reserved() -> None:
    with pytest.raises(FuretError, match=r"flow name runtime\.reverse ends with \.reverse"):
        parse_flow(_edited(lambda d: d.update(name="runtime" + REVERSE_SUFFIX)))
    with pytest.raises(FuretError, match=r"--flow runtime --reverse"):
        load_for("runtime.reverse", "", reverse=False)
    assert load_for("runtime", "", reverse=True).name == "runtime.reverse"


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("argv, words", [
    (["round", "--flow", "cassandra_prod", "--reverse"], ("cassandra_prod", "Cassandra")),
    (["verify", "--flow", "cassandra_prod", "--reverse"], ("cassandra_prod", "Cassandra")),
    (["round", "--flow", "rt_bo", "--reverse", "--no-progress"], ("rt_bo", "derived")),
    (["round", "--flow", "runtime", "--final", "--assume-frozen"], ("--assume-frozen",
                                                                    "--reverse")),
    (["round", "--flow", "runtime", "--reverse", "--assume-frozen"], ("--assume-frozen",
                                                                      "--final")),
    (["round", "--flow", "runtime", "--reverse", "--strategy", "id"], ("--strategy id",
                                                                       "--reverse")),
])
def test_the_command_refuses_with_one_line_before_any_server(
        argv: list[str], words: tuple[str, ...], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # a port nothing listens on: reaching a server would be a different error
    env = {"FURET_LOG_DIR": str(tmp_path / "logs"), "FURET_TARGET_HOST": "127.0.0.1",
           "FURET_TARGET_PORT": "1", "FURET_LEGACY_HOST": "127.0.0.1", "FURET_LEGACY_PORT": "1"}
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = _stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("furet: error: ") and "Traceback" not in result.output
    assert "cannot connect" not in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def test_reverse_options_are_in_the_contract() -> None:
    round_ = COMMANDS["round"]
    assert round_.option("reverse").kind == "flag"
    assert round_.option("assume_frozen").kind == "flag"
    assert COMMANDS["verify"].option("reverse").kind == "flag"
    with pytest.raises(FuretError, match="--assume-frozen only makes sense with --final"):
        round_.parse({"flow": "runtime", "reverse": True, "assume_frozen": True})


def test_a_reverse_rounds_late_rows_warning_names_the_verify_that_repairs_them() -> None:
    summary = RoundSummary("runtime.reverse", 3, Strategy.TS, "window", False, "done", 0,
                           60_000, 5_000, 3, 10, 10, 0, 1, None, None, 1.0,
                           late_rows={"quote": 2})
    (line,) = summary.warnings()
    assert line.startswith("warning: flow runtime.reverse round 3 table quote: 2 row(s)")
    assert "`furet verify --flow runtime --reverse --repair` copies them" in line
