"""On a production host's settings (site.production: true, written by the etl_runner role
for an inventory not marked furet_lab), the commands that drop or invent data refuse in
one line unless the operator confirms; elsewhere they run as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from migration.cli import cli

COMMANDS = {
    ("legacy", "init"): "legacy init: refused",
    ("legacy", "init", "--drop"): "legacy init: refused",
    ("legacy", "seed", "--quotes", "10"): "legacy seed: refused",
    ("target", "init", "--drop"): "target init --drop: refused",
    ("cassandra", "init", "--truncate"): "cassandra init --truncate: refused",
}


@pytest.mark.parametrize("args", list(COMMANDS))
def test_production_settings_refuse_without_the_confirmation(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    config = tmp_path / "furet.yml"
    # port 9: nothing listens, so a command that got past the guard fails on connecting
    config.write_text("site: {production: true}\nlegacy: {host: 127.0.0.1, port: 9}\n"
                      "target: {host: 127.0.0.1, port: 9}\n"
                      "cassandra: {hosts: [127.0.0.1], port: 9}\n")
    refused = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert refused.exit_code == 2
    line = refused.output.strip()
    assert COMMANDS[args] in line and "--i-know-this-is-production" in line, line
    assert str(config) in line and len(line.splitlines()) == 1, line
    confirmed = CliRunner().invoke(cli, ["--config", str(config), *args,
                                         "--i-know-this-is-production"])
    assert COMMANDS[args] not in confirmed.output, confirmed.output   # it went on to connect
    assert confirmed.exit_code == 2 and "127.0.0.1" in confirmed.output, confirmed.output


def test_without_production_settings_nothing_is_asked(tmp_path: Path) -> None:
    config = tmp_path / "furet.yml"
    config.write_text("target: {host: 127.0.0.1, port: 9}\n")
    ran = CliRunner().invoke(cli, ["--config", str(config), "target", "init", "--drop"])
    assert "target init --drop: refused" not in ran.output and "127.0.0.1" in ran.output, \
        ran.output
