"""`furet verify`: flags to :class:`~migration.verify.run.VerifyOptions`, the report printed.

Exit codes: 0 source and target agree (quarantined rows do not count), 1 they differ (or a
repair left differences), 2 a user error (bad flag, unreachable server, unknown table).
"""

from __future__ import annotations

import sys
import threading
import time

import click
from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from migration.config import FuretConfig
from migration.verify.cassandra_checksum import CONSISTENCY_LEVELS
from migration.verify.report import VerifyReport, summary_rows, write_reports

PLAIN_EVERY_S = 5.0
SHOWN_DIFFS = 20


def _consoles() -> tuple[Console, Console]:
    out = Console(width=None if sys.stdout.isatty() else 140)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    return out, err


def _config(ctx: click.Context) -> FuretConfig:
    from migration.config import load_config

    obj = ctx.find_root().obj or {}
    return load_config(obj.get("config_path"), flags=dict(obj.get("flags", {})))


class RichVerifyProgress:
    """One bar per compared table: chunks checked and rows read (TTY only)."""

    def __init__(self, progress: Progress, flow: str) -> None:
        self.progress = progress
        self.flow = flow
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}
        self.lock = threading.Lock()

    def phase(self, table: str, what: str) -> None:
        with self.lock:
            if table not in self.tasks:
                self.tasks[table] = self.progress.add_task(table, total=None, rows=0)
                self.rows[table] = 0
            self.progress.update(self.tasks[table], description=f"{table} ({what})")

    def advance(self, table: str, chunks: int, rows: int) -> None:
        with self.lock:
            self.rows[table] = self.rows.get(table, 0) + rows
            self.progress.update(self.tasks[table], advance=chunks, rows=self.rows[table])


class PlainVerifyProgress:
    """Plain lines every few seconds (logs, CI, `fab verify`): never a control character."""

    def __init__(self, console: Console, flow: str, every_s: float = PLAIN_EVERY_S) -> None:
        self.console = console
        self.flow = flow
        self.every_s = every_s
        self.state: dict[str, list] = {}
        self.last = 0.0
        self.lock = threading.Lock()

    def _line(self, table: str) -> None:
        chunks, rows, what = self.state[table]
        self.console.print(f"verify {self.flow} {table}: {chunks} chunks, {rows:,} rows ({what})",
                           highlight=False, soft_wrap=True)

    def phase(self, table: str, what: str) -> None:
        with self.lock:
            entry = self.state.setdefault(table, [0, 0, what])
            entry[2] = what
            self._line(table)
            self.last = time.monotonic()

    def advance(self, table: str, chunks: int, rows: int) -> None:
        with self.lock:
            entry = self.state.setdefault(table, [0, 0, ""])
            entry[0] += chunks
            entry[1] += rows
            if time.monotonic() - self.last >= self.every_s:
                self._line(table)
                self.last = time.monotonic()


def print_report(console: Console, report: VerifyReport) -> None:
    title = f"furet verify {report.flow}: {report.source} -> {report.target}"
    table = Table("table", "rows compared", "chunks", "mismatching", "missing", "extra",
                  "different", "quarantined", "seconds", "rows/s", "result", title=title)
    for row in summary_rows(report):
        style = "green" if row[-1] == "agree" else "bold red"
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/]")
    console.print(table)
    for t in report.tables:
        for d in t.diffs[:SHOWN_DIFFS]:
            cols = f" columns {', '.join(d.columns)}" if d.columns else ""
            console.print(f"  {t.name}: {d.kind} key {d.key}{cols}", highlight=False)
        if len(t.diffs) > SHOWN_DIFFS or t.diffs_truncated:
            console.print(f"  {t.name}: ... {t.missing + t.extra + t.different - SHOWN_DIFFS} "
                          "more (see the JSON/HTML report)", highlight=False)
        if t.repair is not None:
            r = t.repair
            console.print(
                f"  {t.name}: repair {r.copied} copied, {r.deleted} deleted, {r.extra_kept} "
                f"extra kept, {r.overwritten} overwritten, {r.quarantined} quarantined, "
                f"{len(r.shadowed)} shadowed; re-check: {r.missing_after} missing, "
                f"{r.extra_after} extra, {r.different_after} different", highlight=False)
            if r.shadowed and not r.overwritten:
                console.print(f"  {t.name}: {len(r.shadowed)} rows are shadowed by a newer "
                              "target copy (a later write or a delete); --overwrite-newer "
                              "writes the source's version over them", highlight=False)
    verdict = ("[green]source and target agree[/]" if report.agrees
               else "[bold red]source and target differ[/]")
    console.print(f"[bold cyan]furet[/] verify {report.flow}: {verdict} "
                  f"({report.seconds:.1f}s)", highlight=False)


@click.command("verify")
@click.option("--flow", required=True, help="Flow name (migration/flows/*.yml) or YAML path.")
@click.option("--table", "tables", multiple=True, help="Only this source table (repeatable).")
@click.option("--since", default=None, help="Versions after this (epoch ms or ISO, UTC).")
@click.option("--until", default=None, help="Versions up to this (epoch ms or ISO, UTC).")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Share of chunks to check (random).")
@click.option("--seed", type=int, default=None, help="Random seed of --sample.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Parallel chunk checksums / Cassandra readers (default: rounds.workers).")
@click.option("--chunk-time", type=click.FloatRange(0.01, 60), default=0.3, show_default=True,
              help="Target seconds per checksum query (chunk size adapts).")
@click.option("--max-rows-per-second", type=click.IntRange(0), default=0, show_default=True,
              help="Throttle all reads together; 0 = unthrottled.")
@click.option("--max-load", type=click.IntRange(0), default=0, show_default=True,
              help="Pause while Threads_running on a server is above this; 0 = off.")
@click.option("--consistency", type=click.Choice(CONSISTENCY_LEVELS), default="LOCAL_QUORUM",
              show_default=True, help="Cassandra read consistency.")
@click.option("--repair", is_flag=True,
              help="Re-copy missing and different rows (version-aware), then re-check.")
@click.option("--delete-extra", is_flag=True, help="With --repair: delete extra target rows.")
@click.option("--overwrite-newer", is_flag=True,
              help="With --repair: overwrite rows a newer target copy shadows.")
@click.option("--max-report-rows", type=click.IntRange(0), default=1000, show_default=True,
              help="Diff rows listed per table in the reports (counts stay exact).")
@click.option("--report-dir", default=None, metavar="DIR",
              help="Write verify-<flow>-<time>.json and .html there.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress output.")
@click.pass_context
def verify(ctx: click.Context, flow: str, tables: tuple[str, ...], since: str | None,
           until: str | None, sample: float, seed: int | None, workers: int | None,
           chunk_time: float, max_rows_per_second: int, max_load: int, consistency: str,
           repair: bool, delete_extra: bool, overwrite_newer: bool, max_report_rows: int,
           report_dir: str | None, as_json: bool, no_progress: bool) -> None:
    """Compare a flow's source and target by chunk checksums; list, and repair, the rows
    that differ. Exit 0 when they agree, 1 when they differ, 2 on errors."""
    from migration.verify.run import VerifyOptions, run_verify

    config = _config(ctx)
    options = VerifyOptions(
        flow=flow, since=since, until=until, sample=sample, seed=seed, tables=tables,
        workers=workers or config.rounds.workers, chunk_time=chunk_time,
        max_rows_per_second=max_rows_per_second, max_load=max_load, consistency=consistency,
        repair=repair, delete_extra=delete_extra, overwrite_newer=overwrite_newer,
        max_report_rows=max_report_rows)
    out, err = _consoles()
    if no_progress:
        report = run_verify(config, options)
    elif err.is_terminal:
        with Progress(TextColumn("{task.description}"), TextColumn("{task.completed:,.0f} chunks"),
                      TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
                      console=err) as bar:
            report = run_verify(config, options, RichVerifyProgress(bar, flow))
    else:
        report = run_verify(config, options, PlainVerifyProgress(err, flow))
    if report_dir:
        json_path, html_path = write_reports(report, report_dir)
        err.print(f"furet verify: reports {json_path} {html_path}", highlight=False,
                  soft_wrap=True)
    if as_json:
        click.echo(report.to_json())  # plain: a pipe gets valid JSON, never wrapped lines
    else:
        print_report(out, report)
    if report.exit_code:
        sys.exit(report.exit_code)
