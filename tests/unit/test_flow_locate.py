"""Where `--flow NAME` finds its file (migration/flows/locate.py): shipped flows, then the
deployed ones of config flows.dir; never one shadowing the other; the name reaches the
engine from the config, and fab/furet accept deployed names."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from migration import contract
from migration.cli import cli
from migration.config import load_config
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.flows.locate import SHIPPED_DIR, flow_names, locate_flow
from migration.flows.mapping import load_flow
from migration.verify.run import VerifyOptions, run_verify

FLOW = """\
name: {name}
source: {{server: target, database: scratch_src}}
target: {{kind: mariadb, server: target, database: scratch_dst}}
tables:
  - source: item
    key: id
    version: updated_ts
    targets:
      - table: item
        columns: {{id: id, updated_ts: updated_ts, label: label}}
"""


def _deploy(directory: Path, stem: str, name: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{stem}.yml"
    path.write_text(FLOW.format(name=name or stem))
    return path


def test_a_deployed_flow_is_found_by_name_next_to_the_shipped_ones(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    path = _deploy(flows, "orders_copy")
    assert locate_flow("orders_copy", flows) == path
    flow = load_flow("orders_copy", flows_dir=flows)
    assert (flow.name, flow.source_database, flow.path) == ("orders_copy", "scratch_src",
                                                            str(path))
    # shipped names still resolve to the shipped files, with or without a flows dir
    assert locate_flow("runtime", flows) == SHIPPED_DIR / "runtime.yml"
    assert locate_flow("runtime") == SHIPPED_DIR / "runtime.yml"
    # without the flows dir the deployed name is unknown
    with pytest.raises(FuretError, match="unknown flow 'orders_copy'"):
        locate_flow("orders_copy")


def test_a_deployed_flow_never_shadows_a_shipped_one(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    _deploy(flows, "runtime")
    with pytest.raises(FuretError) as caught:
        load_flow("runtime", flows_dir=flows)
    message = str(caught.value)
    assert "flow 'runtime' is both shipped" in message
    assert str(SHIPPED_DIR / "runtime.yml") in message and str(flows / "runtime.yml") in message
    assert "\n" not in message


def test_unknown_flow_lists_shipped_and_deployed_names(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    _deploy(flows, "orders_copy")
    _deploy(flows, "audit_copy")
    (flows / "draft.yaml").write_text("not: a flow\n")       # only *.yml are flows
    (flows / ".furet-managed").write_text('["audit_copy.yml"]\n')  # the role's manifest
    (flows / ".#orders_copy.yml").write_text("an editor's lock file\n")
    assert flow_names(flows) == ["audit_copy", "orders_copy"]
    with pytest.raises(FuretError) as caught:
        load_flow("nope", flows_dir=flows)
    shipped = ", ".join(flow_names(SHIPPED_DIR))
    assert str(caught.value) == (f"unknown flow 'nope' (shipped: {shipped}; deployed in "
                                 f"{flows}: audit_copy, orders_copy)")
    assert "runtime" in shipped and "rt_bo" in shipped


@pytest.mark.parametrize("flows_dir, says", [
    ("", "no deployed flows: flows.dir is not set"),
    ("/nonexistent/furet/flows", "no deployed flows: /nonexistent/furet/flows does not exist"),
])
def test_no_or_missing_flows_dir_is_not_an_error_until_a_name_is_unknown(
        flows_dir: str, says: str) -> None:
    assert flow_names(flows_dir) == []
    assert load_flow("runtime", flows_dir=flows_dir).name == "runtime"
    with pytest.raises(FuretError, match=f"unknown flow 'nope' \\(shipped: .*runtime.*; {says}\\)"):
        load_flow("nope", flows_dir=flows_dir)


def test_a_flow_found_by_name_must_declare_that_name(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    path = _deploy(flows, "orders_copy", name="runtime")
    with pytest.raises(FuretError, match=f"flow file {path} declares name 'runtime': a flow "
                                         "looked up as 'orders_copy' must declare name: "
                                         "orders_copy"):
        load_flow("orders_copy", flows_dir=flows)
    # by path, the file is read as given (its name is its own)
    assert load_flow(str(path)).name == "runtime"
    # every shipped flow declares its file's name
    for name in flow_names(SHIPPED_DIR):
        assert load_flow(name).name == name


def test_paths_are_read_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flows = tmp_path / "flows"
    _deploy(flows, "orders_copy")
    monkeypatch.chdir(tmp_path)
    # a "/" or a suffix makes a path, relative to the current directory, never searched
    assert load_flow("flows/orders_copy.yml").name == "orders_copy"
    with pytest.raises(FuretError, match="flow file flows/orders_copy not found"):
        locate_flow("flows/orders_copy", flows)
    with pytest.raises(FuretError, match="flow file orders_copy.yml not found"):
        load_flow("orders_copy.yml", flows_dir=flows)


def test_flows_dir_setting_follows_the_config_order(tmp_path: Path) -> None:
    assert load_config(env={}).flows.dir == ""
    path = tmp_path / "furet.yml"
    path.write_text("flows: {dir: /etc/furet/flows}\n")
    assert load_config(str(path), env={}).flows.dir == "/etc/furet/flows"
    env = {"FURET_FLOWS_DIR": "/srv/flows"}
    assert load_config(str(path), env=env).flows.dir == "/srv/flows"
    path.write_text("flows: {directory: /x}\n")
    with pytest.raises(FuretError, match=r"unknown setting flows.directory \(known: dir\)"):
        load_config(str(path), env={})


def test_round_and_verify_search_the_configured_flows_dir(tmp_path: Path) -> None:
    """Both engines resolve the name with config.flows.dir, before any connection."""
    flows = tmp_path / "flows"
    _deploy(flows, "mislabelled", name="other")
    config = load_config(env={"FURET_FLOWS_DIR": str(flows)})
    for run in (lambda f: run_round(config, RoundOptions(f)),
                lambda f: run_verify(config, VerifyOptions(f))):
        with pytest.raises(FuretError, match=f"deployed in {flows}: mislabelled"):
            run("nope")
        # found in the deployed dir (then refused for its declared name: no server reached)
        with pytest.raises(FuretError, match="declares name 'other'"):
            run("mislabelled")


def test_furet_round_reads_the_flows_dir_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./furet.yml
    flows = tmp_path / "flows"
    _deploy(flows, "orders_copy")
    result = CliRunner().invoke(cli, ["round", "--flow", "nope", "--no-progress"],
                                env={"FURET_FLOWS_DIR": str(flows)})
    assert result.exit_code == 2, result.output  # the program's one line (FuretGroup)
    assert f"deployed in {flows}: orders_copy" in result.stderr


def test_fab_and_the_remote_argv_accept_a_deployed_flow_name() -> None:
    """The controller does not know the hosts' deployed flows: it passes any name on."""
    for command in ("round", "verify"):
        argv = contract.argv(command, {"flow": "orders_copy"})
        assert argv[argv.index("--flow") + 1] == "orders_copy"
        with pytest.raises(FuretError, match=r"--flow is required \(shipped: .*runtime.*; "
                                             "or a flow deployed in flows.dir\\)"):
            contract.argv(command, {"flow": ""})
    assert "deployed in flows.dir" in contract.COMMANDS["round"].option("flow").help
