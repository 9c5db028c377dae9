"""What furet's commands print, shared by them: the two consoles and the printers of
results. Logs and CI have no terminal: lines stay whole (140 columns) instead of rich's
80-column default; on a terminal rich uses its width.

Values are printed as they are: both consoles have rich markup off, so a table, host or key
named ``[/x]`` is text, not a closing tag (which made rich raise). furet's own colours are
styles on :class:`~rich.text.Text` pieces (:func:`styled`), never markup in a string; the
printers here also build Text for a console of the caller's (markup on by default)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from migration.verify.report import VerifyReport, summary_rows

console = Console(width=None if sys.stdout.isatty() else 140, markup=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140, markup=False)
SHOWN_DIFFS = 20
PREFIX = ("furet", "bold cyan")


def styled(text: str, style: str) -> Text:
    """``text`` as it is, in ``style`` (a table cell, a word of a line)."""
    return Text(text, style=style)


def line(*parts: str | Text | tuple[str, str]) -> Text:
    """A line of plain strings, (text, style) pairs and Text pieces; no markup."""
    return Text.assemble(*parts)


def say(message: str | Text) -> None:
    console.print(line(PREFIX, " ", message), highlight=False)


def error_line(out: Console, prog: str, message: str) -> None:
    """``furet: error: <message>``, one line however long (soft wrap)."""
    out.print(line((f"{prog}: error:", "bold red"), " ", message), highlight=False,
              soft_wrap=True)


def print_report(out: Console, report: VerifyReport) -> None:
    """furet verify's summary table, the first differing keys per table, the verdict."""
    title = Text(f"furet verify {report.flow}: {report.source} -> {report.target}")
    table = Table("table", "rows compared", "chunks", "mismatching", "missing", "extra",
                  "different", "quarantined", "seconds", "rows/s", "result", title=title)
    for row in summary_rows(report):
        style = "green" if row[-1] == "agree" else "bold red"
        table.add_row(*(Text(cell) for cell in row[:-1]), styled(row[-1], style))
    out.print(table)

    def plain(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    for t in report.tables:
        for d in t.diffs[:SHOWN_DIFFS]:
            cols = f" columns {', '.join(d.columns)}" if d.columns else ""
            plain(f"  {t.name}: {d.kind} key {d.key_text}{cols}")
        if len(t.diffs) > SHOWN_DIFFS or t.diffs_truncated:
            plain(f"  {t.name}: ... {t.missing + t.extra + t.different - SHOWN_DIFFS} "
                  "more (see the JSON/HTML report)")
        if t.repair is not None:
            r = t.repair
            plain(f"  {t.name}: repair {r.copied} copied, {r.deleted} deleted, {r.extra_kept} "
                  f"extra kept, {r.overwritten} overwritten, {r.quarantined} quarantined, "
                  f"{len(r.shadowed)} shadowed; re-check: {r.missing_after} missing, "
                  f"{r.extra_after} extra, {r.different_after} different")
            if r.shadowed and not r.overwritten:
                plain(f"  {t.name}: {len(r.shadowed)} rows are shadowed by a newer "
                      "target copy (a later write or a delete); --overwrite-newer "
                      "writes the source's version over them")
    verdict = (styled("source and target agree", "green") if report.agrees
               else styled("source and target differ", "bold red"))
    out.print(line(PREFIX, f" verify {report.flow}: ", verdict, f" ({report.seconds:.1f}s)"),
              highlight=False)
