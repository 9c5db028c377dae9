"""The `furet` command line. It parses flags and prints; the work is in the modules.

Whatever goes wrong is one line on stderr (:class:`FuretGroup`): a FuretError's message,
Ctrl-C (exit 130), or an unexpected exception with its traceback in a log file
(:mod:`migration.failure`); exit codes in :mod:`migration.errors`."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from migration import __version__, contract, failure
from migration.config import FuretConfig
from migration.engine.results import QuarantineLimitExceeded, RoundSummary
from migration.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, FuretError
from migration.output import console, err_console, error_line, line, print_report, styled
from migration.output import say as _say
from migration.progress import reporter


class FuretGroup(click.Group):
    """furet's groups: they note the command being run (for the error line) and, run as a
    program (standalone mode), turn every exception into one line and an exit code.
    ``standalone_mode=False`` (tests, embedding) lets exceptions through as they are."""

    group_class = type  # subgroups are FuretGroups too

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            failure.note_command([*ctx.command_path.split(" ")[1:], command.name or ""])
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:  # click would exit 1 on it
            raise failure.OutputClosed() from exc

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        failure.begin()
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except FuretError as exc:
            _exit(failure.user_error(exc), EXIT_USER_ERROR)
        except (KeyboardInterrupt, click.Abort):  # click turns ^C into Abort
            err_console.print(styled(f"furet: {failure.interrupted()}", "bold red"),
                              highlight=False, soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:  # a usage error: click's own message
            exc.show()
            sys.exit(EXIT_USER_ERROR)  # ClickException's own 1 would read as "differences"
        except failure.OutputClosed:
            with contextlib.suppress(OSError, ValueError):  # no 2nd error at exit's flush
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            _exit(f"{failure.current().command}: output closed early (broken pipe)",
                  EXIT_USER_ERROR)
        except Exception as exc:
            _exit(failure.unexpected(exc, "furet"), EXIT_USER_ERROR)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def _exit(message: str, code: int) -> None:
    error_line(err_console, "furet", message)
    sys.exit(code)


@click.group(cls=FuretGroup, params=contract.global_params())
@click.version_option(__version__, prog_name="furet")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, legacy_host: str | None,
        legacy_port: int | None, target_host: str | None, target_port: int | None) -> None:
    """furet: provision Galera and Cassandra, and migrate legacy MySQL onto them."""
    ctx.obj = {"config_path": config_path,
               "flags": {"legacy": {"host": legacy_host, "port": legacy_port},
                         "target": {"host": target_host, "port": target_port}}}


@cli.group()
def lab() -> None:
    """The local lab of podman hosts (see lab/lab.yml and inventories/lab/)."""


_WITH = click.option(
    "--with", "extras", multiple=True, metavar="NAME",
    help="Also the hosts of inventories/lab/NAME.yml (e.g. next: a new cluster's hosts).")


@lab.command("up")
@_WITH
def lab_up(extras: tuple[str, ...]) -> None:
    """Build the image if its recipe changed, start every lab host, wait for SSH."""
    from migration.lab import lifecycle
    from migration.lab.config import load_lab_config

    lifecycle.up(load_lab_config(extras=extras), _say)


@lab.command("image")
@click.option("--suite", type=click.Choice(["bookworm", "trixie"]), default="bookworm",
              show_default=True, help="The Debian suite of the image.")
def lab_image(suite: str) -> None:
    """Build the lab base image if its recipe changed (bookworm's is also tagged :latest)."""
    from migration.lab.config import load_lab_config
    from migration.lab.image import ensure_image
    from migration.lab.podman import Podman

    config = load_lab_config()
    ensure_image(config, Podman(config.containers_conf), _say, suite)


@lab.command("down")
def lab_down() -> None:
    """Remove the lab's containers (those of its extra inventories too) and its network."""
    from migration.lab import lifecycle
    from migration.lab.config import available_extras, load_lab_config

    lifecycle.down(load_lab_config(extras=available_extras()), _say)


@lab.command("status")
@_WITH
def lab_status(extras: tuple[str, ...]) -> None:
    """One line per lab host: container state, address, SSH answer."""
    from migration.lab import lifecycle
    from migration.lab.config import load_lab_config

    rows = lifecycle.status(load_lab_config(extras=extras))
    table = Table("host", "groups", "address", "container", "state", "ssh answers")
    for row in rows:
        style = "green" if row.ssh == row.host else "red"
        table.add_row(row.host, row.groups, row.address, row.container, row.state,
                      styled(row.ssh, style))
    console.print(table)
    if any(row.ssh != row.host for row in rows):
        raise FuretError("some lab hosts are down: run `make lab-up`")


@cli.command("hosts")
@click.option("-i", "--inventory", default="inventories/lab/hosts.yml", show_default=True,
              envvar="FURET_INVENTORY", help="Ansible inventory to read.")
@click.option("--vault-password-file", default=None,
              help="Password of the inventory's ansible-vault files (default: "
                   "$ANSIBLE_VAULT_PASSWORD_FILE, ansible.cfg's vault_password_file, else asked "
                   "in a terminal).")
@click.argument("patterns", nargs=-1)
def hosts(inventory: str, vault_password_file: str | None, patterns: tuple[str, ...]) -> None:
    """Summary of inventory hosts (or of the named hosts/groups), read over SSH."""
    from migration.hosts_summary import summarise
    from migration.inventory import use_vault_password_file
    from migration.remote import select_hosts

    use_vault_password_file(vault_password_file)

    rows = summarise(select_hosts(inventory, patterns))
    table = Table("host", "groups", "dc/rack", "address", "os", "cpu", "mem MiB", "tz",
                  "chrony (ref)", "up s")
    for row in rows:
        h, f = row.host, row.facts
        where = f"{h.variables.get('dc', '-')}/{h.variables.get('rack', '-')}"
        if row.error:
            table.add_row(h.name, ",".join(h.groups), where, h.address,
                          styled(row.error, "red"), "", "", "", "", "")
            continue
        table.add_row(h.name, ",".join(h.groups), where, h.address, f.get("os", "?"),
                      f.get("cpus", "?"), f.get("mem_mib", "?"), f.get("tz", "?"),
                      f"{f.get('chrony', '?')} ({f.get('ntp_ref') or 'local clock'})",
                      f.get("uptime", "?"))
    console.print(table)
    failed = [r.host.name for r in rows if r.error]
    if failed:
        raise FuretError(f"unreachable over SSH: {', '.join(failed)}")




# --- migration engine -------------------------------------------------------------------


def _config(ctx: click.Context, rounds: dict[str, object] | None = None) -> FuretConfig:
    """The settings of this invocation: defaults < file < FURET_* env < the group's flags
    (< the round's flags). The one loader of every command."""
    from migration.config import load_config

    obj = ctx.find_root().obj or {}
    flags = dict(obj.get("flags", {}))
    if rounds:
        flags["rounds"] = rounds
    params = ctx.params
    failure.note_about(flow=params.get("flow"), database=params.get("database")
                       or params.get("source_db"), table=params.get("table")
                       or params.get("tables"))
    config = load_config(obj.get("config_path"), flags=flags)
    failure.note_secrets(config.legacy.password, config.target.password,
                         config.cassandra.password, config.traffic.password)
    return config


def _print_round(summary: RoundSummary) -> None:
    title = (f"flow {summary.flow} round {summary.round_no} ({summary.strategy}, "
             f"{summary.kind}{', final' if summary.final else ''}"
             f"{', resumed' if summary.resumed else ''})")
    table = Table("source table", "version", "window (lo, hi]", "watermark", "chunks", "read",
                  "written", "quarantined", title=title)
    for row in summary.tables:
        q = row.rows_quarantined
        table.add_row(row.source_table, row.version_type or "epoch ms",
                      f"({row.window_lo}, {row.window_hi}]",
                      str(row.watermark), str(row.chunks), f"{row.rows_read:,}",
                      f"{row.rows_written:,}", styled(f"{q:,}", "yellow") if q else "0")
    console.print(table)
    rate = f"{summary.rate:,.0f} rows/s" if summary.rate is not None else "-"
    _say(f"round {summary.round_no} of {summary.flow}: {summary.status} in "
         f"{summary.seconds or 0.0:.1f}s, {summary.rows_written:,} rows written ({rate}), "
         f"{summary.rows_quarantined} quarantined")
    for name, how in sorted(summary.writes.items()):
        # round 1 could not use its plain INSERT; or its rows went to Cassandra as SSTables
        if how.startswith("upsert: ") or how == "SSTables streamed":
            _say(f"table {name}: written by {how}")


@cli.group("cutover")
def cutover_group() -> None:
    """The cutover's journal and steps on the ETL host (run by `fab cutover`, which is what
    operators use; these print one JSON document)."""


def _json_arg(value: str, what: str) -> dict[str, object]:
    try:
        data = json.loads(value or "{}")
    except json.JSONDecodeError:
        raise FuretError(f"cutover: {what} is not JSON") from None
    if not isinstance(data, dict):
        raise FuretError(f"cutover: {what} must be a JSON object")
    return data


@cutover_group.command("step")
@click.option("--run", "run_id", type=int, required=True)
@click.option("--seq", type=int, required=True)
@click.option("--step", "step_id", required=True)
@click.option("--action", required=True)
@click.option("--args", "args_json", default="{}", help="The step's args (JSON object).")
@click.option("--who", required=True)
@click.pass_context
def cutover_step(ctx: click.Context, run_id: int, seq: int, step_id: str, action: str,
                 args_json: str, who: str) -> None:
    """Run one step of a cutover run here, journaled (start, then ok or failed)."""
    from migration.cutover.journal import run_step

    result = run_step(_config(ctx), run_id, seq, step_id, action,
                      _json_arg(args_json, "--args"), who)
    click.echo(json.dumps(result, sort_keys=True, default=str))


@cutover_group.command("check")
@click.option("--action", required=True)
@click.option("--args", "args_json", default="{}", help="The step's args (JSON object).")
@click.pass_context
def cutover_check(ctx: click.Context, action: str, args_json: str) -> None:
    """A step's preconditions, evaluated here; changes nothing (`fab cutover plan`)."""
    from migration.cutover.actions import check

    click.echo(json.dumps(check(_config(ctx), action, _json_arg(args_json, "--args")),
                          sort_keys=True, default=str))


@cutover_group.group("journal")
def cutover_journal() -> None:
    """The journal in the ledger: open, show, mark and close runs and steps."""


@cutover_journal.command("open")
@click.option("--kind", type=click.Choice(["cutover", "rollback"]), required=True)
@click.option("--runbook-sha", required=True)
@click.option("--who", required=True)
@click.option("--options", "options_json", default="{}")
@click.pass_context
def cutover_journal_open(ctx: click.Context, kind: str, runbook_sha: str, who: str,
                         options_json: str) -> None:
    from migration.cutover.journal import open_run

    click.echo(json.dumps(open_run(_config(ctx), kind, runbook_sha, who,
                                   _json_arg(options_json, "--options"))))


@cutover_journal.command("show")
@click.option("--run", "run_id", type=int, default=None)
@click.option("--kind", type=click.Choice(["cutover", "rollback"]), default=None)
@click.pass_context
def cutover_journal_show(ctx: click.Context, run_id: int | None, kind: str | None) -> None:
    from migration.cutover.journal import show

    click.echo(json.dumps(show(_config(ctx), run_id, kind)))


@cutover_journal.command("mark")
@click.option("--run", "run_id", type=int, required=True)
@click.option("--seq", type=int, required=True)
@click.option("--step", "step_id", required=True)
@click.option("--status", type=click.Choice(["started", "ok", "failed", "skipped"]),
              required=True)
@click.option("--who", required=True)
@click.option("--host", required=True)
@click.option("--detail", default="")
@click.pass_context
def cutover_journal_mark(ctx: click.Context, run_id: int, seq: int, step_id: str, status: str,
                         who: str, host: str, detail: str) -> None:
    from migration.cutover.journal import mark_step

    mark_step(_config(ctx), run_id, seq, step_id, status, who, host, detail)
    click.echo(json.dumps({"run": run_id, "step": step_id, "status": status}))


@cutover_journal.command("close")
@click.option("--run", "run_id", type=int, required=True)
@click.option("--status", type=click.Choice(["done", "aborted", "failed"]), required=True)
@click.option("--detail", default="")
@click.pass_context
def cutover_journal_close(ctx: click.Context, run_id: int, status: str, detail: str) -> None:
    from migration.cutover.journal import close_run

    close_run(_config(ctx), run_id, status, detail)
    click.echo(json.dumps({"run": run_id, "status": status}))


@cutover_group.command("report")
@click.option("--run", "run_id", type=int, default=None,
              help="A cutover run, or the rollback run after it (default: the latest cutover).")
@click.option("--acked", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The log of `furet legacy traffic --acked`: the downtime as "
                                 "the application saw it.")
@click.option("--to", "directory", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="The directory of the JSON and HTML files (created).")
@click.pass_context
def cutover_report(ctx: click.Context, run_id: int | None, acked: Path | None,
                   directory: Path) -> None:
    """The report of a cutover run and its rollback: one JSON and one HTML file."""
    from migration.cutover.report import report_files

    json_path, html_path = report_files(_config(ctx), run_id, acked, directory)
    click.echo(json.dumps({"json": str(json_path), "html": str(html_path)}))


@cli.group()
def legacy() -> None:
    """The legacy MySQL side: schemas, seed data, web-app-like traffic, freeze, version
    columns."""


@legacy.command("init")
@click.option("--drop", is_flag=True, help="Drop lf_runtime and lf_bo first (all data!).")
@click.option("--i-know-this-is-production", "confirmed", is_flag=True,
              help="Do it even where the settings say production (site.production).")
@click.pass_context
def legacy_init(ctx: click.Context, drop: bool, confirmed: bool) -> None:
    """Create the legacy schemas lf_runtime (customer, quote, offer) and lf_bo."""
    from migration.guard import refuse_on_production
    from migration.legacy.schema import init_legacy

    config = _config(ctx)
    refuse_on_production(config, "legacy init", f"{'drop and ' if drop else ''}create the "
                         f"demo schemas lf_runtime, lf_bo on {config.legacy.where}", confirmed)
    done = init_legacy(config.legacy, drop=drop)
    _say(f"{config.legacy.where}: schemas {', '.join(done)} ready")


@legacy.command("seed")
@click.option("--quotes", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=42, show_default=True,
              help="Random seed (same seed, same data).")
@click.option("--dirt-per-thousand", type=float, default=3.0, show_default=True,
              help="Dirty rows per thousand (zero dates, latin1 bytes, NULL prices).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--i-know-this-is-production", "confirmed", is_flag=True,
              help="Do it even where the settings say production (site.production).")
@click.pass_context
def legacy_seed(ctx: click.Context, quotes: int, seed_value: int, dirt_per_thousand: float,
                as_json: bool, no_progress: bool, confirmed: bool) -> None:
    """Fill the legacy schemas with nine years of realistic, slightly dirty data."""
    from migration.guard import refuse_on_production
    from migration.legacy.seed import seed

    config = _config(ctx)
    refuse_on_production(config, "legacy seed", f"write {quotes} invented quotes into "
                         f"lf_runtime on {config.legacy.where}", confirmed)
    with reporter(err_console, "seed", not no_progress) as progress:
        for table in ("lf_runtime.customer", "lf_runtime.quote", "lf_runtime.offer"):
            progress.table(table, None)
        report = seed(config.legacy, quotes, seed_value=seed_value,
                      dirt_per_thousand=dirt_per_thousand, progress=progress.advance)
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(report)))
        return
    rows = report.customers + report.quotes + report.offers
    _say(f"{config.legacy.where}: {report.customers:,} customers, {report.quotes:,} quotes, "
         f"{report.offers:,} offers in {report.seconds:.1f}s ({rows / report.seconds:,.0f} rows/s);"
         f" dirt {report.dirty}; lf_bo {report.bo_quotes:,} quotes, {report.bo_offers:,} offers")


@legacy.command("traffic")
@click.option("--rate", type=click.FloatRange(min=0.1), default=50.0, show_default=True,
              help="Transactions per second.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds.")
@click.option("--late-share", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of transactions committed after later-stamped ones.")
@click.option("--seed", "seed_value", type=int, default=None)
@click.option("--through-cutover", is_flag=True,
              help="Keep writing through a freeze and an endpoint switch: a refused, cut or "
                   "read-only connection is retried on a new one (until --duration or SIGTERM).")
@click.option("--acked", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append every acknowledged write to this file (JSON lines), for "
                   "`furet legacy traffic-check`.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def legacy_traffic(ctx: click.Context, rate: float, duration: float, late_share: float,
                   seed_value: int | None, through_cutover: bool, acked: Path | None,
                   as_json: bool) -> None:
    """Insert and update rows like the web app (stops when the legacy turns read-only,
    unless --through-cutover; SIGTERM stops it cleanly)."""
    import signal
    import threading

    from migration.legacy.traffic import run_traffic

    config = _config(ctx)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    report = run_traffic(config.legacy_app, rate, duration, seed=seed_value,
                         late_share=late_share, stop=stop, through_cutover=through_cutover,
                         acked=acked)
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(report)))
        return
    _say(f"{config.legacy.where}: {report.operations} transactions in {report.seconds:.1f}s, "
         f"{report.late_commits} late commits, stopped by {report.stopped_by}")
    if through_cutover:
        servers = ", ".join(f"{k} {v}" for k, v in sorted(report.by_server.items()))
        _say(f"acknowledged {report.committed} ({servers}), {report.errors} failed attempts, "
             f"longest time without a write {report.longest_gap_s:.1f}s")


@legacy.command("traffic-check")
@click.option("--acked", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The log written by `furet legacy traffic --acked`.")
@click.option("--on", "side", type=click.Choice(["legacy", "target", "cassandra"]),
              default="legacy", show_default=True,
              help="Check against the legacy server as the web app reaches it, the target, or "
                   "Cassandra (the writes the Cassandra flows' final rounds copied; rows keyed "
                   "from the target).")
@click.pass_context
def legacy_traffic_check(ctx: click.Context, acked: Path, side: str) -> None:
    """Every write the web app got acknowledged is there (that version or a later one)."""
    from migration.legacy.acked_cassandra import check_acked_cassandra
    from migration.legacy.traffic import check_acked

    config = _config(ctx)
    if side == "cassandra":
        where = config.cassandra.where
        result = check_acked_cassandra(config, config.target, acked)
    else:
        settings = config.legacy_app if side == "legacy" else config.target
        where = settings.where
        result = check_acked(settings, acked)
    for what in result.missing[:20]:
        _say(f"missing: {what}")
    if result.missing:
        raise FuretError(f"{where}: {len(result.missing)} of {result.checked} "
                         "acknowledged writes are missing")
    if result.quarantined:
        _say(f"{where}: {result.checked - result.quarantined} of {result.checked} "
             "acknowledged writes are there; the other "
             f"{result.quarantined} went to rows furet quarantined (see furet status)")
    else:
        _say(f"{where}: all {result.checked} acknowledged writes are there")


@contract.click_command(legacy, "freeze")
@click.pass_context
def legacy_freeze(ctx: click.Context, timeout: float) -> None:
    """Legacy read-only on, then wait until no write is in flight."""
    from migration.legacy.freeze import freeze

    config = _config(ctx)
    seconds = freeze(config.legacy, timeout)
    _say(f"{config.legacy.where}: read-only, no write in flight (waited {seconds:.1f}s)")


@contract.click_command(legacy, "unfreeze")
@click.pass_context
def legacy_unfreeze(ctx: click.Context) -> None:
    """Legacy read-only off."""
    from migration.legacy.freeze import unfreeze

    config = _config(ctx)
    unfreeze(config.legacy)
    _say(f"{config.legacy.where}: writable again")


@contract.click_command(legacy, "add_version")
@click.pass_context
def legacy_add_version(ctx: click.Context, table: str, database: str, column: str,
                       dry_run: bool, allow_lock: bool, batch_rows: int, pause_ms: int,
                       no_progress: bool) -> None:
    """Add a version column to a legacy table online, then backfill it in small batches."""
    from migration.legacy.add_version import add_version

    config = _config(ctx)
    with reporter(err_console, "add-version", not (no_progress or dry_run)) as progress:
        result = add_version(config.legacy, table, database=database, column=column,
                             dry_run=dry_run, allow_lock=allow_lock, batch_rows=batch_rows,
                             pause_ms=pause_ms, progress=progress)
    for text in result.lines():  # whole lines: the ALTER stays one copyable line
        console.print(line(("furet", "bold cyan"), " ", text), highlight=False, soft_wrap=True)


@cli.group()
def target() -> None:
    """The target Galera side."""


@target.command("init")
@click.option("--drop", is_flag=True,
              help="Drop the target lf_runtime and lf_bo first and empty furet's ledger.")
@click.option("--i-know-this-is-production", "confirmed", is_flag=True,
              help="Do it even where the settings say production (site.production).")
@click.pass_context
def target_init(ctx: click.Context, drop: bool, confirmed: bool) -> None:
    """Create the target schemas lf_runtime and lf_bo (utf8mb4, strict)."""
    from migration.guard import refuse_on_production
    from migration.target.schema import init_target

    config = _config(ctx)
    if drop:
        refuse_on_production(config, "target init --drop", "drop lf_runtime, lf_bo on "
                             f"{config.target.where} and empty furet's ledger", confirmed)
    done = init_target(config.target, drop=drop)
    _say(f"{config.target.where}: schemas {', '.join(done)} ready")


@contract.click_command(target, "target_schema")
@click.pass_context
def target_schema_cmd(ctx: click.Context, flow: str, apply: bool,
                      replication: str | None) -> None:
    """Print, then with --apply create, the target tables of a flow."""
    from migration.target.ddl import target_schema

    result = target_schema(_config(ctx), flow, apply, replication)
    click.echo(result.plan.script(), nl=False)  # plain: a pipe gets the script as is
    if not apply:
        return
    noun = "database" if result.plan.kind == "mariadb" else "keyspace"
    made = "created" if result.database_created else "exists"
    err_console.print(f"furet {result.plan.where}: {noun} {result.plan.database} {made}",
                      highlight=False)
    for table in result.applied:
        state = "created" if table.created else "exists, left as it is"
        err_console.print(f"furet {result.plan.where}: table {result.plan.database}."
                          f"{table.table} {state}", highlight=False)


@cli.group()
def flow() -> None:
    """Flows: write one for your database, check one against the live schemas."""


@contract.click_command(flow, "flow_init")
@click.pass_context
def flow_init_cmd(ctx: click.Context, source_db: str, tables: str | None, target: str,
                  name: str | None) -> None:
    """Print a complete, commented flow YAML for a legacy database."""
    from migration.flows.generate import flow_init

    result = flow_init(_config(ctx), source_db, tables, target, name)
    click.echo(result.text, nl=False)  # plain: `> flow.yml` gets the YAML as is
    for skipped in result.skipped:
        err_console.print(f"furet flow init: table {source_db}.{skipped.table} left out: "
                          f"{skipped.reason}", highlight=False)


@contract.click_command(flow, "flow_check")
@click.pass_context
def flow_check_cmd(ctx: click.Context, flow: str) -> None:
    """Check a flow against the live source and target schemas."""
    from migration.flows.check import check_flow

    report = check_flow(_config(ctx), flow)
    for table in report.tables:
        targets = ", ".join(table.targets)
        if table.ok:
            console.print(line(("OK", "green"), f"   {table.source} -> {targets}"),
                          highlight=False)
        else:
            console.print(line(("FAIL", "bold red"), f" {table.source} -> {targets}: "
                               f"{table.error}"), highlight=False, soft_wrap=True)
    if report.failures:
        raise FuretError(report.failures[0].error if len(report.failures) == 1 else
                         f"flow {report.flow}: {len(report.failures)} of {len(report.tables)} "
                         f"tables do not fit (first: {report.failures[0].error})")
    _say(f"flow {report.flow}: {len(report.tables)} tables fit {report.source} -> "
         f"{report.target}")


@cli.group()
def cassandra() -> None:
    """The target Cassandra ring."""


@cassandra.command("init")
@click.option("--keyspace", default="prod", show_default=True)
@click.option("--replication", default=None,
              help="CQL replication map (default: NetworkTopologyStrategy rbx 3, gra 3).")
@click.option("--truncate", is_flag=True, help="Empty the query tables (a new rehearsal).")
@click.option("--i-know-this-is-production", "confirmed", is_flag=True,
              help="Do it even where the settings say production (site.production).")
@click.pass_context
def cassandra_init(ctx: click.Context, keyspace: str, replication: str | None,
                   truncate: bool, confirmed: bool) -> None:
    """Create the keyspace and the query tables of migration/target/cql/prod.cql."""
    from migration.guard import refuse_on_production
    from migration.target.cassandra_schema import DEFAULT_REPLICATION, init_cassandra

    config = _config(ctx)
    if truncate:
        refuse_on_production(config, "cassandra init --truncate", "empty the query tables "
                             f"of keyspace {keyspace} on {config.cassandra.where}", confirmed)
    tables = init_cassandra(config.cassandra, keyspace, replication or DEFAULT_REPLICATION,
                            truncate)
    _say(f"{config.cassandra.where}: keyspace {keyspace} with {', '.join(tables)}"
         + (" (emptied)" if truncate else ""))


@contract.click_command(cli, "round")
@click.pass_context
def round_cmd(ctx: click.Context, flow: str, final: bool, strategy: str, workers: int | None,
              chunk_rows: int | None, batch_rows: int | None, overlap_ms: int | None,
              safety_lag_ms: int | None, max_rows_per_second: int | None,
              max_quarantined: int | None, literals: str, reverse: bool, assume_frozen: bool,
              as_json: bool, no_progress: bool) -> None:
    """Run (or resume) the next round of a flow."""
    from migration.engine.ledger import RoundRow
    from migration.engine.round import RoundOptions, run_round
    from migration.enums import LiteralsPath, Strategy

    config = _config(ctx, {"workers": workers, "chunk_rows": chunk_rows,
                           "batch_rows": batch_rows, "overlap_ms": overlap_ms,
                           "safety_lag_ms": safety_lag_ms,
                           "max_rows_per_second": max_rows_per_second})
    options = RoundOptions(flow, Strategy(strategy), final, max_quarantined,
                           LiteralsPath(literals), reverse, assume_frozen)

    def started(round_row: RoundRow, resumed: bool) -> None:
        if not as_json:
            verb = "resuming" if resumed else "starting"
            err_console.print(f"furet {verb} round {round_row.round_no} of flow "
                              f"{round_row.flow}", highlight=False)

    limit: QuarantineLimitExceeded | None = None
    with reporter(err_console, f"round {flow}", not no_progress) as progress:
        try:
            summary = run_round(config, options, progress, on_start=started)
        except QuarantineLimitExceeded as exc:  # the round is done: print it, then fail
            summary, limit = exc.summary, exc
    if as_json:
        console.print_json(json.dumps(summary.to_dict(), default=str))
    else:
        _print_round(summary)
    for warning in summary.warnings():  # rows committed later than the overlap allows
        err_console.print(warning, markup=False, highlight=False, soft_wrap=True)
    if limit is not None:
        raise limit


@contract.click_command(cli, "status")
@click.pass_context
def status_cmd(ctx: click.Context, flow: str | None, last: int, as_json: bool) -> None:
    """The rounds of every flow recorded in the target's furet ledger, and the quarantine."""
    from migration.engine.status import status

    config = _config(ctx)
    report = status(config, flow, last)
    if as_json:
        console.print_json(json.dumps(report.to_dict(), default=str))
        return
    table = Table("flow", "round", "strategy", "kind", "status", "read", "written",
                  "quarantined", "runs", "seconds", "started", title=f"{config.target.where}")
    for r in report.rounds:
        table.add_row(r.flow, str(r.round_no), str(r.strategy),
                      r.kind + (" final" if r.final else ""),
                      styled(r.status, "green" if r.status == "done" else "yellow"),
                      f"{r.rows_read:,}", f"{r.rows_written:,}",
                      str(r.rows_quarantined), str(r.invocations),
                      f"{r.seconds or 0:.1f}", str(r.started_at))
    console.print(table)
    if report.quarantine:
        q = Table("flow", "source table", "reason", "rows", title="quarantine")
        for row in report.quarantine:
            q.add_row(row.flow, row.source_table, row.reason, str(row.rows))
        console.print(q)


@contract.click_command(cli, "verify")
@click.pass_context
def verify_cmd(ctx: click.Context, flow: str, tables: tuple[str, ...], since: str | None,
               until: str | None, sample: float, seed: int | None, workers: int | None,
               chunk_time: float, max_rows_per_second: int, max_load: int, scan_consistency: str,
               scan_page_rows: int, consistency: str,
               repair: bool, delete_extra: bool, overwrite_newer: bool, max_report_rows: int,
               report_dir: str | None, as_json: bool, no_progress: bool,
               reverse: bool) -> None:
    """Compare a flow's source and target by chunk checksums; list, and repair, the rows
    that differ. Exit 0 when they agree, 1 when they differ, 2 on errors."""
    from migration.enums import Consistency
    from migration.verify.report import write_reports
    from migration.verify.run import VerifyOptions, run_verify

    config = _config(ctx)
    options = VerifyOptions(
        flow=flow, since=since, until=until, sample=sample, seed=seed, tables=tables,
        workers=workers or config.rounds.workers, chunk_time=chunk_time,
        max_rows_per_second=max_rows_per_second, max_load=max_load,
        scan_consistency=Consistency(scan_consistency), scan_page_rows=scan_page_rows,
        consistency=Consistency(consistency), repair=repair, delete_extra=delete_extra,
        overwrite_newer=overwrite_newer, max_report_rows=max_report_rows, reverse=reverse)
    with reporter(err_console, f"verify {flow}", not no_progress) as progress:
        report = run_verify(config, options, progress)
    if report_dir:
        json_path, html_path = write_reports(report, report_dir)
        err_console.print(f"furet verify: reports {json_path} {html_path}", highlight=False,
                          soft_wrap=True)
    if as_json:
        click.echo(report.to_json())  # plain: a pipe gets valid JSON, never wrapped lines
    else:
        print_report(console, report)
    if report.exit_code:
        sys.exit(report.exit_code)


@cli.group("endpoint")
def endpoint_group() -> None:
    """The application's database endpoint: HAProxy on the app_endpoint host, sending new
    connections to the legacy master, to Galera, or nowhere."""


@contract.click_command(endpoint_group, "endpoint_status")
def endpoint_status_cmd(socket_path: str, map_path: str, as_json: bool) -> None:
    """Where the endpoint sends new connections, per its map file and its memory."""
    from migration import endpoint

    report = endpoint.status(endpoint.RuntimeApi(endpoint.UnixSocket(socket_path)), map_path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))  # plain: valid JSON in a pipe
    else:
        table = Table("backend", "server", "status", "sessions", "last check",
                      title=report.where)
        for backend in report.backends:
            active = backend.name == report.active
            table.add_row(styled(backend.name + (" (active)" if active else ""),
                                 "bold green" if active else ""),
                          "", backend.status, str(backend.scur), "")
            for server in backend.servers:
                table.add_row("", server.name + (" (backup)" if server.backup else ""),
                              styled(server.status, "green" if server.usable else "red"),
                              str(server.scur), server.check)
        console.print(table)
        for name in report.missing:
            _say_line(f"{report.where}: haproxy.cfg has no backend {name}")
        if report.agree:
            _say_line(report.verdict())
    if not report.agree:
        raise FuretError(report.verdict())


@contract.click_command(endpoint_group, "endpoint_switch")
def endpoint_switch_cmd(to: str, dry_run: bool, timeout: float, socket_path: str,
                        map_path: str, as_json: bool) -> None:
    """Send the endpoint's new connections to another side and cut the old side's
    sessions."""
    from migration import endpoint
    from migration.enums import EndpointSide

    result = endpoint.switch(endpoint.RuntimeApi(endpoint.UnixSocket(socket_path)), map_path,
                             EndpointSide(to.lower()), dry_run=dry_run, timeout=timeout,
                             on_action=None if as_json else _say_line)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))


def _say_line(text: str) -> None:
    """``furet <text>``, one line however long (a path is never wrapped)."""
    console.print(line(("furet", "bold cyan"), " ", text), highlight=False, soft_wrap=True)


@cli.group()
def hold() -> None:
    """The platform hold: no round, repair, backup or schema change while it is there (a
    Galera upgrade with the nodes on mixed versions)."""


@contract.click_command(hold, "hold_take")
@click.pass_context
def hold_take_cmd(ctx: click.Context, reason: str) -> None:
    """Put furet on hold for REASON."""
    from migration.hold import take

    config = _config(ctx)
    holder, took = take(config.target, reason)
    _say_line(f"{config.target.where}: on hold for `{holder.command}`"
              + ("" if took else f", as it was since {holder.started_at} UTC"))


@contract.click_command(hold, "hold_release")
@click.pass_context
def hold_release_cmd(ctx: click.Context, reason: str | None) -> None:
    """End the hold."""
    from migration.hold import release

    config = _config(ctx)
    ended = release(config.target, reason or "")
    _say_line(f"{config.target.where}: " + (f"hold for `{ended.command}` released"
                                            if ended else "not on hold"))


@contract.click_command(hold, "hold_show")
@click.pass_context
def hold_show_cmd(ctx: click.Context, as_json: bool) -> None:
    """Whether furet is on hold, and for what."""
    from migration.hold import show

    config = _config(ctx)
    holder = show(config.target)
    if as_json:
        click.echo(json.dumps(None if holder is None else {
            "reason": holder.command, "host": holder.host, "since": holder.started_at}))
    else:
        _say_line(f"{config.target.where}: " + (
            f"on hold for `{holder.command}` since {holder.started_at} UTC (host {holder.host})"
            if holder else "not on hold"))


@cli.group()
def backup() -> None:
    """Backups whose restore is proven by furet's chunk checksums."""


@contract.click_command(backup, "backup_legacy")
@click.pass_context
def backup_legacy_cmd(ctx: click.Context, to: str, databases: tuple[str, ...],
                      record: bool) -> None:
    """Back up the legacy master with its checksums at the dump's point."""
    from migration.backup.legacy import DEFAULT_DATABASES, backup_legacy

    config = _config(ctx)
    result = backup_legacy(config, to, databases or DEFAULT_DATABASES)
    console.print(line(("furet", "bold cyan"), " ", result.line), highlight=False,
                  soft_wrap=True)  # one line, however long
    _record_backup(config, to, record)


def _record_backup(config: FuretConfig, directory: str, record: bool) -> None:
    if record:
        from migration.backup.catalog import record_backup

        _say_line(record_backup(config, directory))


@contract.click_command(backup, "backup_galera")
@click.pass_context
def backup_galera_cmd(ctx: click.Context, to: str, stream_command: str,
                      databases: tuple[str, ...], source_host: str | None,
                      source_port: int | None, lock_wait: float, workdir: str | None,
                      record: bool) -> None:
    """Back up a Galera node (mariadb-backup stream) with its checksums, locks held."""
    from migration.backup.galera import DEFAULT_DATABASES, backup_galera

    config = _config(ctx)
    result = backup_galera(config, to, stream_command, databases or DEFAULT_DATABASES,
                           source_host=source_host, source_port=source_port,
                           lock_wait_s=lock_wait, workdir=workdir)
    console.print(line(("furet", "bold cyan"), " ", result.line), highlight=False,
                  soft_wrap=True)  # one line, however long
    _record_backup(config, to, record)


@contract.click_command(backup, "backup_cassandra")
@click.pass_context
def backup_cassandra_cmd(ctx: click.Context, to: str, nodes: tuple[str, ...],
                         flows: tuple[str, ...], splits: int, lock_wait: float,
                         record: bool) -> None:
    """Back up the Cassandra ring (snapshots streamed per node) with its checksums, locks
    held."""
    from migration.backup.cassandra import backup_cassandra

    config = _config(ctx)
    result = backup_cassandra(config, to, nodes, flows=flows, splits=splits,
                              lock_wait_s=lock_wait)
    for left in result.leftovers:
        _say_line(f"warning: {left}")
    console.print(line(("furet", "bold cyan"), " ", result.line), highlight=False,
                  soft_wrap=True)  # one line, however long
    _record_backup(config, to, record)


@contract.click_command(backup, "backup_restore_test")
@click.pass_context
def backup_restore_test_cmd(ctx: click.Context, directory: str, workdir: str | None,
                            cassandra_dist: str | None, record: bool) -> None:
    """Restore a backup (legacy dump or Galera archive) into a scratch server and compare it
    with its checksums."""
    from migration.backup.restore import restore_test

    result = restore_test(directory, workdir=workdir, cassandra_dist=cassandra_dist)
    if record:
        from migration.backup.catalog import record_restore

        _say_line(record_restore(_config(ctx), directory, result.passed,
                                 "" if result.passed else result.line))
    if not result.passed:
        raise FuretError(result.line)
    console.print(line(("furet", "bold cyan"), " ", result.line), highlight=False,
                  soft_wrap=True)


def main() -> None:
    """The `furet` program: every error is one line (see :class:`FuretGroup`)."""
    cli(prog_name="furet")
