"""The `furet` command line. It parses flags and prints; the work is in the modules."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from migration import __version__
from migration.errors import EXIT_USER_ERROR, FuretError

# Logs and CI have no terminal: keep lines whole instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _say(message: str) -> None:
    console.print(f"[bold cyan]furet[/] {message}", highlight=False)


@click.group()
@click.version_option(__version__, prog_name="furet")
def cli() -> None:
    """furet: provision Galera and Cassandra, and migrate legacy MySQL onto them."""


@cli.group()
def lab() -> None:
    """The local lab of podman hosts (see lab/lab.yml and inventories/lab/)."""


@lab.command("up")
def lab_up() -> None:
    """Build the image if its recipe changed, start every lab host, wait for SSH."""
    from migration.lab import lifecycle
    from migration.lab.config import load_lab_config

    lifecycle.up(load_lab_config(), _say)


@lab.command("image")
def lab_image() -> None:
    """Build the lab base image if its recipe changed (also tags it :latest)."""
    from migration.lab.config import load_lab_config
    from migration.lab.image import ensure_image
    from migration.lab.podman import Podman

    config = load_lab_config()
    ensure_image(config, Podman(config.containers_conf), _say)


@lab.command("down")
def lab_down() -> None:
    """Remove the lab's containers and network (nothing else)."""
    from migration.lab import lifecycle
    from migration.lab.config import load_lab_config

    lifecycle.down(load_lab_config(), _say)


@lab.command("status")
def lab_status() -> None:
    """One line per lab host: container state, address, SSH answer."""
    from migration.lab import lifecycle
    from migration.lab.config import load_lab_config

    rows = lifecycle.status(load_lab_config())
    table = Table("host", "groups", "address", "container", "state", "ssh answers")
    for row in rows:
        style = "green" if row.ssh == row.host else "red"
        table.add_row(row.host, row.groups, row.address, row.container, row.state,
                      f"[{style}]{row.ssh}[/]")
    console.print(table)
    if any(row.ssh != row.host for row in rows):
        raise FuretError("some lab hosts are down: run `make lab-up`")


@cli.command("hosts")
@click.option("-i", "--inventory", default="inventories/lab/hosts.yml", show_default=True,
              envvar="FURET_INVENTORY", help="Ansible inventory to read.")
@click.argument("patterns", nargs=-1)
def hosts(inventory: str, patterns: tuple[str, ...]) -> None:
    """Summary of inventory hosts (or of the named hosts/groups), read over SSH."""
    from migration.hosts_summary import summarise
    from migration.remote import select_hosts

    rows = summarise(select_hosts(inventory, patterns))
    table = Table("host", "groups", "dc/rack", "address", "os", "cpu", "mem MiB", "tz",
                  "chrony (ref)", "up s")
    for row in rows:
        h, f = row.host, row.facts
        where = f"{h.variables.get('dc', '-')}/{h.variables.get('rack', '-')}"
        if row.error:
            table.add_row(h.name, ",".join(h.groups), where, h.address,
                          f"[red]{row.error}[/]", "", "", "", "", "")
            continue
        table.add_row(h.name, ",".join(h.groups), where, h.address, f.get("os", "?"),
                      f.get("cpus", "?"), f.get("mem_mib", "?"), f.get("tz", "?"),
                      f"{f.get('chrony', '?')} ({f.get('ntp_ref') or 'local clock'})",
                      f.get("uptime", "?"))
    console.print(table)
    failed = [r.host.name for r in rows if r.error]
    if failed:
        raise FuretError(f"unreachable over SSH: {', '.join(failed)}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except FuretError as exc:
        err_console.print(f"[bold red]furet: error:[/] {exc}", highlight=False)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Abort:
        err_console.print("furet: aborted")
        sys.exit(EXIT_USER_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
