"""One contract per command (migration/contract.py): for every command, the click options of
`furet`, the arguments and help of its `fab` task, the remote argv and the verify gate's
filter agree, and a value survives click -> fab -> remote argv -> click unchanged."""

from __future__ import annotations

import importlib.util
import shlex
from dataclasses import dataclass
from typing import Any

import click
import pytest
from click.testing import CliRunner
from invoke import Context, Exit

from migration import contract
from migration.cli import cli
from migration.errors import FuretError
from migration.inventory import InventoryHost
from tests.helpers import REPO

COMMANDS = sorted(contract.COMMANDS)
ETL1 = InventoryHost("etl1", "10.0.0.4", "root", 22, None, ("etl",),
                     {"etl_runner_config_dir": "/srv/furet/etc"})


def _module(name: str, path: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FABFILE = _module("fabfile_under_test", "fabfile.py")
FILTERS = _module("furet_filters_under_test", "playbooks/filter_plugins/furet.py")


def _click_command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for word in path:
        assert isinstance(command, click.Group), path
        command = command.commands[word]
    return command


def _parse(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """``furet ARGV`` parsed by click as the remote furet would: the group's values, the
    command's values, the command's words."""
    ctx = cli.make_context("furet", list(argv))
    params = dict(ctx.params)
    rest = [*ctx._protected_args, *ctx.args]  # what click's Group.invoke resolves
    group: click.Command = cli
    words: list[str] = []
    while isinstance(group, click.Group):
        words.append(rest.pop(0))
        group = group.commands[words[-1]]
    return params, dict(group.make_context(words[-1], rest).params), tuple(words)


def _required(spec: contract.Command) -> list[str]:
    return [w for o in spec.options if o.required for w in (o.flag, "runtime")]


def _required_values(spec: contract.Command,
                     but: contract.Option | None = None) -> dict[str, str]:
    """The command's required options (--flow, --table) by name, each given "runtime"."""
    return {o.name: "runtime" for o in spec.options if o.required and o != but}


def _needed(spec: contract.Command, option: contract.Option) -> dict[str, bool]:
    """The flags ``option`` needs by the command's couplings (--delete-extra: --repair)."""
    return {c.flag[2:].replace("-", "_"): True for c in spec.checks
            if isinstance(c, contract.Needs) and option.flag in c.dependents}


def _example(option: contract.Option) -> list[str]:
    """Command-line words giving ``option`` a valid value other than its default."""
    if option.kind == contract.FLAG:
        return [option.flag]
    if option.kind == contract.CHOICE:
        assert option.choices is not None
        value = [c for c in option.choices.choices() if c != option.default][-1].lower()
    elif option.kind == contract.INT:
        value = str(int(option.maximum if option.maximum is not None
                        else (option.minimum or 0) + 7))
    elif option.kind == contract.FLOAT:
        value = "0.25" if option.maximum == 1 else "12.5"
    else:
        value = "run time; rm -rf /" if option.name != "flow" else "rt_bo"
    words = [option.flag, value]
    return words + [option.flag, "offer"] if option.multiple else words


@dataclass
class _Result:
    exited: int
    stderr: str = ""
    stdout: str = ""


class _Host:
    """Plays the ETL host over SSH: records the command lines, says ok."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __enter__(self) -> _Host:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, line: str, **kwargs: Any) -> _Result:
        self.lines.append(line)
        return _Result(1 if line.startswith("ls ") else 0)


@pytest.fixture
def etl_host(monkeypatch: pytest.MonkeyPatch) -> _Host:
    import migration.remote

    host = _Host()
    monkeypatch.setattr(migration.remote, "select_hosts", lambda inventory, patterns: [ETL1])
    monkeypatch.setattr(migration.remote, "connection_for", lambda h: host)
    return host


def _fab(command: str, **kwargs: Any) -> None:
    """Run the fabfile's task as `fab` would: through its own argument list and body."""
    fab_task = getattr(FABFILE, "round_" if command == "round" else command)
    values = {a.attr_name or a.name: a.default for a in fab_task.get_arguments()}
    fab_task.body(Context(), **{**values, **kwargs})


@pytest.mark.parametrize("command", COMMANDS)
def test_click_options_are_the_contracts(command: str) -> None:
    spec = contract.COMMANDS[command]
    click_command = _click_command(spec.path)
    params = [p for p in click_command.params if p.name != "help"]
    assert [p.name for p in params] == [o.dest for o in spec.options]
    assert click_command.help == spec.help
    for option, param in zip(spec.options, params, strict=True):
        assert isinstance(param, click.Option)
        assert param.opts == [option.flag]
        assert param.is_flag == (option.kind == contract.FLAG)
        assert param.multiple == option.multiple and param.required == option.required
        assert param.help == option.help
        if option.kind != contract.FLAG:
            assert param.default == (None if option.default is None else
                                     (str(option.default) if option.choices else
                                      option.default))
        if option.choices is not None:
            assert isinstance(param.type, click.Choice)
            assert tuple(param.type.choices) == option.choices.choices()
        if option.kind == contract.INT and option.minimum is None and option.maximum is None:
            assert param.type is click.INT   # unbounded: no "[x<=None]" in the help
        elif option.kind in (contract.INT, contract.FLOAT):
            assert isinstance(param.type, click.IntRange if option.kind == contract.INT
                              else click.FloatRange)
            assert (param.type.min, param.type.max) == (option.minimum, option.maximum)
    group = [p.name for p in cli.params if p.name not in ("help", "version")]
    assert group == [o.dest for o in contract.GLOBAL]


@pytest.mark.parametrize("command", COMMANDS)
def test_fab_task_arguments_and_help_are_the_contracts(command: str) -> None:
    spec = contract.COMMANDS[command]
    fab_task = getattr(FABFILE, "round_" if command == "round" else command)
    assert fab_task.name == command
    arguments = {a.attr_name or a.name: a for a in fab_task.get_arguments()}
    expected = [*contract.FAB_COMMON, *spec.remote_options(), *spec.fab_options]
    assert list(arguments) == [o.name for o in expected]
    assert arguments["inventory"].names == ("inventory", "i")
    assert arguments["on"].names == ("on", "o")
    for option in expected:
        argument = arguments[option.name]
        assert argument.help == option.fab_help() and option.help.rstrip(".") in argument.help
        assert argument.kind == (bool if option.kind == contract.FLAG
                                 else list if option.multiple else str)
        if option.choices is not None:
            assert ", ".join(option.choices.choices()) in argument.help
    # every option furet passes on is a fab argument; the others are set by the task
    hidden = [o.name for o in spec.options if not o.remote]
    assert not set(hidden) & set(arguments)
    assert set(hidden) <= {"report_dir", "no_progress"}


@pytest.mark.parametrize(("command", "option"), [
    (c, o) for c in COMMANDS for o in contract.COMMANDS[c].remote_options()])
def test_a_value_goes_click_fab_argv_click_unchanged(command: str, option: contract.Option,
                                                     etl_host: _Host) -> None:
    spec = contract.COMMANDS[command]
    words = _example(option)
    required = [] if option.required else _required(spec)
    needed = _needed(spec, option)
    required += [f"--{name.replace('_', '-')}" for name in needed]
    if option in contract.GLOBAL:
        parsed = cli.make_context("furet", [*words, *spec.path]).params[option.dest]
    else:
        parsed = _click_command(spec.path).make_context(
            spec.path[-1], [*required, *words]).params[option.dest]
    assert parsed not in (None, False, ())
    # what an operator types after `fab TASK`: the same words, as text
    text = True if option.kind == contract.FLAG else (
        [str(v) for v in parsed] if option.multiple else str(parsed))
    given = {**_required_values(spec, option), **needed}
    _fab(command, **given, **{option.name: text})
    (line,) = [x for x in etl_host.lines if not x.startswith("ls ")]
    remote = shlex.split(line)
    assert remote[:3] == ["furet", "--config", "/srv/furet/etc/furet.yml"]
    group_values, values, path = _parse(remote[3:])
    assert path == spec.path
    again = group_values if option in contract.GLOBAL else values
    assert again[option.dest] == parsed
    # and the argv builder gives the same command line from the same values
    fixed = ({"report_dir": values["report_dir"], "no_progress": True}
             if command == "verify" else {})
    assert remote[3:] == contract.argv(command, {**given, option.name: text, **fixed})


@pytest.mark.parametrize(("command", "option"), [
    (c, o) for c in COMMANDS for o in contract.COMMANDS[c].options
    if o.kind in (contract.INT, contract.FLOAT, contract.CHOICE)])
def test_bad_values_fail_in_click_and_before_fab_reaches_a_host(
        command: str, option: contract.Option, etl_host: _Host) -> None:
    spec = contract.COMMANDS[command]
    bad = "-1" if option.minimum is not None else "x"
    bad = "many" if option.choices is None and option.minimum is None else bad
    if option.choices is not None:
        bad = "nonsense"
    with pytest.raises(click.BadParameter):
        _click_command(spec.path).make_context(spec.path[-1], [*_required(spec), option.flag,
                                                               bad])
    with pytest.raises(FuretError, match=f"^{option.flag} "):
        contract.argv(command, {**_required_values(spec), option.name: bad})
    if option.remote:
        with pytest.raises(Exit) as exit_info:
            _fab(command, **_required_values(spec), **{option.name: bad})
        assert exit_info.value.code == 2 and option.flag in str(exit_info.value.message)
    assert etl_host.lines == []


def test_verify_coupling_is_the_same_line_in_click_fab_and_argv(etl_host: _Host) -> None:
    runner = CliRunner()
    for flag in ("--delete-extra", "--overwrite-newer"):
        result = runner.invoke(cli, ["verify", "--flow", "runtime", flag],
                               standalone_mode=False)
        assert isinstance(result.exception, FuretError)
        message = str(result.exception)
        assert message.startswith(f"{flag} only makes sense with --repair")
        with pytest.raises(FuretError) as from_argv:
            contract.argv("verify", {"flow": "runtime", flag[2:].replace("-", "_"): True})
        assert str(from_argv.value) == message
        with pytest.raises(Exit) as from_fab:
            _fab("verify", flow="runtime", **{flag[2:].replace("-", "_"): True})
        assert from_fab.value.message == f"fab verify: error: {message}"
    assert etl_host.lines == []
    assert "--repair" in contract.argv("verify", {"flow": "runtime", "repair": True,
                                                  "delete_extra": True})


def test_fab_verify_passes_every_remote_option_and_its_own_report_dir(etl_host: _Host) -> None:
    _fab("verify", flow="quote_flow", table=["quote", "offer"], workers="2", max_load="50",
         target_host="10.0.0.9")
    remote = shlex.split(etl_host.lines[0])
    group, values, _ = _parse(remote[3:])
    assert group["target_host"] == "10.0.0.9"
    assert values["tables"] == ("quote", "offer") and values["workers"] == 2
    assert values["max_load"] == 50 and values["no_progress"] is True
    assert values["report_dir"].startswith("/var/lib/furet/reports/quote_flow-")
    assert etl_host.lines[1] == f"ls -1 {values['report_dir']}"  # its reports are fetched


def test_the_verify_gate_filter_builds_the_same_argv_and_paths() -> None:
    values = {"flow": "runtime", "report_dir": "/r", "no_progress": True, "json": True,
              "max_report_rows": 20}
    assert FILTERS.furet_argv(values, "verify") == contract.argv("verify", values)
    assert FILTERS.furet_remote({"etl_runner_config_dir": "/srv/f"}) == {
        "bin": "furet", "config": "/srv/f/furet.yml", "reports": "/var/lib/furet/reports"}
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="--flow is required"):
        FILTERS.furet_argv({"flow": ""}, "verify")


def test_rehearsal_steps_are_contract_command_lines() -> None:
    from migration import rehearsal

    steps = rehearsal.plan(quotes=5, rounds=1, flows=("runtime",))
    assert steps.final[0].args == tuple(contract.argv("round", {"flow": "runtime",
                                                                "final": True}))
    assert steps.freeze.args == tuple(contract.argv("freeze"))
