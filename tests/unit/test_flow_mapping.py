"""Flow YAML: the shipped flows load; mapping mistakes are one error naming flow and table."""

from __future__ import annotations

import copy

import pytest
import yaml

from migration.errors import FuretError
from migration.flows.mapping import (
    FLOWS_DIR,
    TRANSFORMS,
    TransformError,
    flow_names,
    load_flow,
    parse_flow,
)


def test_shipped_flows_load() -> None:
    assert {"runtime", "rt_bo"} <= set(flow_names())
    runtime = load_flow("runtime")
    quote = runtime.table("quote")
    assert (quote.keys, quote.version) == (("id",), "updated_ts")
    assert quote.source_columns[:2] == ("id", "updated_ts")
    bo = load_flow("rt_bo").table("quote").targets[0]
    assert bo.target_of("updated_ts") == "ts" and bo.ref_time is not None


def _runtime() -> dict:
    return yaml.safe_load((FLOWS_DIR / "runtime.yml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tables"][1]["targets"][0]["columns"].pop("id"),
     "flow runtime table quote -> quote: key column id is not mapped"),
    (lambda d: d["tables"][1]["targets"][0]["columns"].pop("updated_ts"),
     "flow runtime table quote -> quote: version column updated_ts is not mapped"),
    (lambda d: d["tables"][1].pop("key"), "flow runtime table quote: missing 'key'"),
    (lambda d: d["tables"][0]["targets"][0]["columns"].update(
        city={"from": "city", "transform": "rot13"}), "unknown transform 'rot13'"),
    (lambda d: d["target"].update(kind="oracle"), "target kind 'oracle'"),
    (lambda d: d["tables"][1].update(key=["id", "id"]), "'key' lists a column twice"),
    (lambda d: d["tables"][1].update(key={"a": 1}), "'key' must be a column name or a list"),
    (lambda d: d["tables"][1].update(key=["id", "nope"]),
     "flow runtime table quote -> quote: key column nope is not mapped"),
    (lambda d: d["tables"][1].update(version_unit="minutes"),
     "flow runtime table quote: version_unit 'minutes' is not one of s, ms, us"),
    (lambda d: d["tables"][1].update(deletes="propagate"),
     "flow runtime table quote: deletes: propagate needs `version: none`"),
    (lambda d: d["tables"][1].update(deletes="sometimes"), "deletes 'sometimes' is not one of"),
])
def test_mapping_errors(edit, message: str) -> None:
    data = copy.deepcopy(_runtime())
    edit(data)
    with pytest.raises(FuretError, match=message):
        parse_flow(data)


def test_utf8_transform_refuses_latin1_bytes() -> None:
    assert TRANSFORMS["utf8"]("Orléans".encode()) == "Orléans"
    with pytest.raises(TransformError, match="bad encoding: invalid UTF-8 at byte 3"):
        TRANSFORMS["utf8"]("Orléans".encode("latin-1"))


def test_unknown_flow_names_the_shipped_ones() -> None:
    with pytest.raises(FuretError, match="unknown flow 'nope' .*runtime"):
        load_flow("nope")


def test_composite_keys_and_version_none_parse() -> None:
    data = copy.deepcopy(_runtime())
    quote = data["tables"][1]
    quote["key"] = ["id", "uid"]
    quote["targets"][0]["columns"]["uid"] = "uid"
    table = parse_flow(data).table("quote")
    assert table.keys == ("id", "uid") and table.width == 2
    assert table.source_columns[:3] == ("id", "uid", "updated_ts")
    assert table.target_keys(table.targets[0]) == ("id", "uid")
    quote["version"] = "none"
    quote["deletes"] = "propagate"
    table = parse_flow(data).table("quote")
    assert table.version == "" and table.deletes == "propagate"
    assert "updated_ts" in table.source_columns[2:]  # still mapped, but not the version
