"""What furet's commands print, shared by them: the two consoles and the printers of
results. Logs and CI have no terminal: lines stay whole (140 columns) instead of rich's
80-column default; on a terminal rich uses its width."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from migration.verify.report import VerifyReport, summary_rows

console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
SHOWN_DIFFS = 20


def say(message: str) -> None:
    console.print(f"[bold cyan]furet[/] {message}", highlight=False)


def print_report(out: Console, report: VerifyReport) -> None:
    """furet verify's summary table, the first differing keys per table, the verdict."""
    title = f"furet verify {report.flow}: {report.source} -> {report.target}"
    table = Table("table", "rows compared", "chunks", "mismatching", "missing", "extra",
                  "different", "quarantined", "seconds", "rows/s", "result", title=title)
    for row in summary_rows(report):
        style = "green" if row[-1] == "agree" else "bold red"
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/]")
    out.print(table)
    for t in report.tables:
        for d in t.diffs[:SHOWN_DIFFS]:
            cols = f" columns {', '.join(d.columns)}" if d.columns else ""
            out.print(f"  {t.name}: {d.kind} key {escape(d.key_text)}{cols}", highlight=False)
        if len(t.diffs) > SHOWN_DIFFS or t.diffs_truncated:
            out.print(f"  {t.name}: ... {t.missing + t.extra + t.different - SHOWN_DIFFS} "
                          "more (see the JSON/HTML report)", highlight=False)
        if t.repair is not None:
            r = t.repair
            out.print(
                f"  {t.name}: repair {r.copied} copied, {r.deleted} deleted, {r.extra_kept} "
                f"extra kept, {r.overwritten} overwritten, {r.quarantined} quarantined, "
                f"{len(r.shadowed)} shadowed; re-check: {r.missing_after} missing, "
                f"{r.extra_after} extra, {r.different_after} different", highlight=False)
            if r.shadowed and not r.overwritten:
                out.print(f"  {t.name}: {len(r.shadowed)} rows are shadowed by a newer "
                              "target copy (a later write or a delete); --overwrite-newer "
                              "writes the source's version over them", highlight=False)
    verdict = ("[green]source and target agree[/]" if report.agrees
               else "[bold red]source and target differ[/]")
    out.print(f"[bold cyan]furet[/] verify {report.flow}: {verdict} "
                  f"({report.seconds:.1f}s)", highlight=False)
