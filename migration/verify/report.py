"""What a verification found, as data (JSON), as a rich table and as a self-contained HTML
page (inline CSS, no external asset) an operator can attach to a cutover ticket.

A key is shown as the value of its one column (JSON keeps an integer an integer) or, for a
composite key, as the list of its values; every listed row also carries ``key_text``, the
canonical text verify and furet.quarantine match keys by (``["1042", "3"]``). Versions are
ledger values (:mod:`migration.engine.versions`); a table says how many microseconds one
unit is (``version_us``), so the HTML shows them as dates whatever the column's type. A
table without a version column (``version: none``) has ``version`` "", ``version_type``
"none" and rows without versions (null in JSON)."""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migration.canonical import key_text, value_text
from migration.paths import write_report_file
from migration.verify.window import ms_to_iso

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
EXIT_AGREE = 0
EXIT_DIFFERENT = 1


def shown_key(key: Any) -> Any:
    """A key as reports hold it: a one-column key's value, a composite key's tuple (a JSON
    list); anything else (an integer bound, None) as is."""
    if isinstance(key, tuple) and len(key) == 1:
        return key[0]
    return key


def key_label(key: Any) -> str:
    """A shown key as people read it: its canonical key text."""
    if isinstance(key, tuple | list):
        return key_text(tuple(key))
    return str(value_text(key))


@dataclass
class ChunkReport:
    no: int
    kind: str                    # key | version
    lo: Any                      # a shown key (key ranges) or a ledger version
    hi: Any
    source_rows: int = 0
    target_rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    status: str = "ok"           # ok | mismatch | transient | repaired | unrepaired | skipped
    missing: int = 0
    extra: int = 0
    different: int = 0


@dataclass
class DiffRow:
    kind: str                    # missing | extra | different
    key: Any                     # a shown key (see shown_key)
    columns: list[str] = field(default_factory=list)
    source: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    source_version: int | None = None  # ledger values
    target_version: int | None = None
    key_text: str = ""           # the canonical key text (set from ``key`` when empty)

    def __post_init__(self) -> None:
        if not self.key_text:
            self.key_text = key_label(self.key)


@dataclass
class RepairReport:
    copied: int = 0              # rows written through the version-aware writer
    deleted: int = 0             # extra rows deleted (--delete-extra)
    overwritten: int = 0         # rows forced over a newer target copy (--overwrite-newer)
    quarantined: int = 0         # rows the writer refused (now in furet.quarantine)
    shadowed: list[Any] = field(default_factory=list)  # shown keys a newer target copy hides
    extra_kept: int = 0          # extra rows left in place (no --delete-extra)
    rechecked_chunks: int = 0
    missing_after: int = 0
    extra_after: int = 0
    different_after: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing_after or self.extra_after or self.different_after)


@dataclass
class TableReport:
    source_table: str
    target_table: str
    key: str                     # the key column(s), comma-separated
    version: str                 # "" for a table without one (``version: none``)
    mode: str                    # sql | client (source hashed in Python) | cassandra
    chunks: int = 0
    chunks_checked: int = 0
    source_rows: int = 0
    target_rows: int = 0
    mismatching_chunks: int = 0
    # checksums differed, the rows no longer did (live source; a Cassandra replica the
    # checksum pass read lacked writes)
    transient_chunks: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    target_seconds: float = 0.0  # Cassandra scans
    diffs: list[DiffRow] = field(default_factory=list)
    diffs_truncated: bool = False
    quarantined_keys: list[Any] = field(default_factory=list)   # shown keys
    chunk_list: list[ChunkReport] = field(default_factory=list)
    repair: RepairReport | None = None
    version_type: str = ""       # e.g. BIGINT epoch ms, DATETIME(0)
    version_us: int = 1000       # microseconds per ledger unit (epoch ms: 1000)

    @property
    def name(self) -> str:
        return f"{self.source_table} -> {self.target_table}"

    @property
    def agrees(self) -> bool:
        if self.repair is not None:
            return self.repair.ok
        return not (self.missing or self.extra or self.different or self.mismatching_chunks)

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class VerifyReport:
    flow: str
    source: str
    target: str
    started_at: str
    since: int | None = None
    until: int | None = None
    sample: float = 1.0
    consistency: str = ""        # Cassandra: the reads that confirm a difference
    scan_consistency: str = ""   # Cassandra: the checksum pass
    repair: bool = False
    delete_extra: bool = False
    seconds: float = 0.0
    tables: list[TableReport] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return all(t.agrees for t in self.tables)

    @property
    def exit_code(self) -> int:
        return EXIT_AGREE if self.agrees else EXIT_DIFFERENT

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["agrees"] = self.agrees
        data["exit_code"] = self.exit_code
        data["since_iso"] = ms_to_iso(self.since)
        data["until_iso"] = ms_to_iso(self.until)
        for table, raw in zip(self.tables, data["tables"], strict=True):
            raw["name"] = table.name
            raw["agrees"] = table.agrees
            raw["rows_per_second"] = round(table.rows_per_second, 1)
            if table.repair is not None and raw["repair"] is not None:
                raw["repair"]["ok"] = table.repair.ok
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), default=str, indent=2, ensure_ascii=False)


# --- files --------------------------------------------------------------------------------

def write_reports(report: VerifyReport, directory: str | Path) -> tuple[Path, Path]:
    """``verify-<flow>-<UTC time>.json`` and ``.html`` in ``directory`` (created), mode
    0640: they hold rows of the data."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = folder / f"verify-{report.flow}-{stamp}"
    json_path, html_path = base.with_suffix(".json"), base.with_suffix(".html")
    write_report_file(json_path, report.to_json() + "\n")
    write_report_file(html_path, render_html(report))
    return json_path, html_path


# --- HTML ---------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{color:#176f2c}.bad{color:#b00020;font-weight:bold}.warn{color:#9a6700}
.strip{display:flex;flex-wrap:wrap;gap:2px;margin:6px 0;max-width:1100px}
.c{width:12px;height:18px;border-radius:2px;background:#2e9e4f}
.c.mismatch,.c.unrepaired{background:#d7263d}.c.repaired{background:#f2a541}
.c.skipped{background:#ddd}.c.quarantined{background:#7fb7e6}.c.transient{background:#b5d99c}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
code{background:#f6f6f6;padding:0 3px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def version_iso(value: int | None, version_us: int = 1000) -> str:
    """A ledger version as an ISO UTC instant (milliseconds, or microseconds when the
    column holds them)."""
    if value is None:
        return ""
    try:
        moment = EPOCH + datetime.timedelta(microseconds=value * version_us)
    except OverflowError:  # not an instant of the calendar: the value itself
        return str(value)
    spec = "microseconds" if version_us < 1000 and moment.microsecond % 1000 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _bound(kind: str, value: Any, version_us: int) -> str:
    if value is None:
        return ""
    if kind == "version" and isinstance(value, int):
        return version_iso(value, version_us)
    return key_label(value)


def chunk_label(chunk: ChunkReport, version_us: int = 1000) -> str:
    lo = _bound(chunk.kind, chunk.lo, version_us) or "-inf"
    hi = _bound(chunk.kind, chunk.hi, version_us) or "+inf"
    return f"{chunk.kind} ({lo}, {hi}]"


def _day(version: int | None, version_us: int) -> str:
    return version_iso(version, version_us)[:10]


def render_html(report: VerifyReport) -> str:
    verdict = ("<span class=ok>source and target agree</span>" if report.agrees
               else "<span class=bad>source and target differ</span>")
    window = ""
    if report.since is not None or report.until is not None:
        window = (f"<p>time window: versions in ({_e(ms_to_iso(report.since) or '-inf')}, "
                  f"{_e(ms_to_iso(report.until) or '+inf')}]</p>")
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>furet verify {_e(report.flow)}</title><style>{CSS}</style></head><body>",
        f"<h1>furet verify — flow <code>{_e(report.flow)}</code>: {verdict}</h1>",
        f"<p>source {_e(report.source)} → target {_e(report.target)}; started "
        f"{_e(report.started_at)}; {report.seconds:.1f} s; sample {report.sample:g}"
        f"{'; repair' if report.repair else ''}"
        f"{'; delete extra' if report.delete_extra else ''}"
        f"{'; scan consistency ' + _e(report.scan_consistency) if report.scan_consistency else ''}"
        f"{'; consistency ' + _e(report.consistency) if report.consistency else ''}</p>",
        window,
        "<table><tr><th class=l>table</th><th>rows (source)</th><th>rows (target)</th>"
        "<th>chunks</th><th>mismatching</th><th>missing</th><th>extra</th><th>different</th>"
        "<th>quarantined</th><th>seconds</th><th>rows/s</th><th class=l>result</th></tr>",
    ]
    for t in report.tables:
        result = "<span class=ok>agree</span>" if t.agrees else "<span class=bad>differ</span>"
        if t.repair is not None:
            result += (f" (repair: {t.repair.copied} copied, {t.repair.deleted} deleted, "
                       f"{t.repair.overwritten} overwritten)")
        parts.append(
            f"<tr><td class=l>{_e(t.name)}</td><td>{t.source_rows:,}</td>"
            f"<td>{t.target_rows:,}</td><td>{t.chunks_checked}/{t.chunks}</td>"
            f"<td>{t.mismatching_chunks}</td><td>{t.missing}</td><td>{t.extra}</td>"
            f"<td>{t.different}</td><td>{t.quarantined}</td><td>{t.seconds:.2f}</td>"
            f"<td>{t.rows_per_second:,.0f}</td><td class=l>{result}</td></tr>")
    parts.append("</table>")
    parts.append("<p class=legend><span><i style='background:#2e9e4f'></i>chunk agrees</span>"
                 "<span><i style='background:#d7263d'></i>chunk differs</span>"
                 "<span><i style='background:#f2a541'></i>differed, repaired</span>"
                 "<span><i style='background:#b5d99c'></i>changed during the check</span>"
                 "<span><i style='background:#7fb7e6'></i>agrees, holds quarantined rows"
                 "</span><span><i style='background:#ddd'></i>not sampled</span></p>")
    for t in report.tables:
        vtype = f" {t.version_type}" if t.version_type else ""
        version = f"version {t.version}{vtype}" if t.version else "no version column"
        parts.append(f"<h2>{_e(t.name)} <small>(key {_e(t.key)}, {_e(version)}, "
                     f"{_e(t.mode)})</small></h2><div class=strip>")
        for c in t.chunk_list:
            css = c.status
            if c.status == "ok" and c.quarantined:
                css = "quarantined"
            tip = (f"chunk {c.no} {chunk_label(c, t.version_us)}: source {c.source_rows}, "
                   f"target {c.target_rows}, quarantined {c.quarantined}, {c.status}")
            parts.append(f"<div class='c {css}' title='{_e(tip)}'></div>")
        parts.append("</div>")
        bad = [c for c in t.chunk_list if c.status not in ("ok", "skipped")]
        if bad:
            parts.append("<table><tr><th>chunk</th><th class=l>range</th><th>source rows</th>"
                         "<th>target rows</th><th>missing</th><th>extra</th><th>different</th>"
                         "<th class=l>status</th></tr>")
            for c in bad:
                parts.append(f"<tr><td>{c.no}</td><td class=l>{_e(chunk_label(c, t.version_us))}"
                             "</td>"
                             f"<td>{c.source_rows}</td><td>{c.target_rows}</td>"
                             f"<td>{c.missing}</td><td>{c.extra}</td><td>{c.different}</td>"
                             f"<td class=l>{_e(c.status)}</td></tr>")
            parts.append("</table>")
        days: dict[str, int] = {}
        for d in t.diffs:
            day = _day(d.source_version if d.source_version is not None else d.target_version,
                       t.version_us)
            if day:
                days[day] = days.get(day, 0) + 1
        if days:
            parts.append("<p>days (of the row version) with differences: " + ", ".join(
                f"{_e(day)} ({n})" for day, n in sorted(days.items())) + "</p>")
        if t.diffs:
            parts.append("<table><tr><th class=l>kind</th><th class=l>key</th>"
                         "<th class=l>columns</th><th class=l>source</th>"
                         "<th class=l>target</th></tr>")
            for d in t.diffs:
                src = "" if d.source is None else ", ".join(
                    f"{k}={v}" for k, v in d.source.items() if not d.columns or k in d.columns)
                tgt = "" if d.target is None else ", ".join(
                    f"{k}={v}" for k, v in d.target.items() if not d.columns or k in d.columns)
                parts.append(f"<tr><td class=l>{_e(d.kind)}</td><td class=l>{_e(d.key_text)}</td>"
                             f"<td class=l>{_e(', '.join(d.columns))}</td>"
                             f"<td class=l>{_e(src)}</td><td class=l>{_e(tgt)}</td></tr>")
            parts.append("</table>")
            if t.diffs_truncated:
                parts.append("<p class=warn>(list truncated; the counts above are exact)</p>")
        if t.quarantined_keys:
            parts.append(f"<p>quarantined keys (expected absent): "
                         f"{_e(', '.join(key_label(k) for k in t.quarantined_keys[:200]))}"
                         f"{' …' if len(t.quarantined_keys) > 200 else ''}</p>")
        if t.repair is not None:
            r = t.repair
            verdict_r = "<span class=ok>ok</span>" if r.ok else "<span class=bad>not ok</span>"
            parts.append(f"<p>repair: {r.copied} rows copied through the version-aware writer, "
                         f"{r.deleted} extra rows deleted, {r.extra_kept} extra rows kept, "
                         f"{r.overwritten} overwritten, {r.quarantined} quarantined, "
                         f"{len(r.shadowed)} shadowed by a newer target copy; re-check of "
                         f"{r.rechecked_chunks} chunks: {r.missing_after} missing, "
                         f"{r.extra_after} extra, {r.different_after} different "
                         f"({verdict_r})</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def summary_rows(report: VerifyReport) -> list[list[str]]:
    """Rows of the CLI's summary table (one per compared table)."""
    rows = []
    for t in report.tables:
        rows.append([t.name, f"{t.source_rows:,}", f"{t.chunks_checked}/{t.chunks}",
                     str(t.mismatching_chunks), str(t.missing), str(t.extra), str(t.different),
                     str(t.quarantined), f"{t.seconds:.2f}", f"{t.rows_per_second:,.0f}",
                     "agree" if t.agrees else "DIFFER"])
    return rows
