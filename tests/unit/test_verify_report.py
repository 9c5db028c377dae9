"""furet verify's row classification, report (JSON, HTML, exit codes), plain progress and
CLI wiring, without servers."""

from __future__ import annotations

import io
import json
import stat

from click.testing import CliRunner
from rich.console import Console

from migration.cli import cli
from migration.errors import FuretError
from migration.output import print_report
from migration.progress import PlainLines
from migration.verify.drilldown import Classified, classify, differing_columns, group, merge
from migration.verify.mysql_checksum import RowInfo
from migration.verify.report import (
    ChunkReport,
    DiffRow,
    RepairReport,
    TableReport,
    VerifyReport,
    render_html,
    write_reports,
)


def _row(key: object, h: int, version: int = 1) -> RowInfo:
    return RowInfo(key, version, h)


def test_classify_missing_extra_different() -> None:
    source = {"1": _row(1, 10), "2": _row(2, 20), "3": _row(3, 30)}
    target = group([("1", _row(1, 10)), ("2", _row(2, 99)), ("4", _row(4, 40))])
    found = classify(source, target)
    assert set(found.missing) == {"3"}
    assert [k for k, _ in found.extra] == ["4"]
    assert set(found.different) == {"2"} and found.different["2"][1].hash == 99
    assert not found.clean and classify({"1": _row(1, 1)}, group([("1", _row(1, 1))])).clean


def test_a_duplicate_target_row_is_extra_and_the_matching_one_is_kept() -> None:
    good, stale = _row(7, 70), _row(7, 71)
    found = classify({"7": _row(7, 70)}, group([("7", stale), ("7", good)]))
    assert not found.different and not found.missing
    assert found.extra == [("7", stale)]


def test_rows_found_outside_the_window_are_different_not_missing_and_extra() -> None:
    source = {"5": _row(5, 50, version=100)}
    target = group([("6", _row(6, 60, version=100))])
    found = classify(source, target, source_elsewhere={"6": _row(6, 61, version=90)},
                     target_elsewhere={"5": [_row(5, 51, version=101)]})
    assert not found.missing and not found.extra
    assert set(found.different) == {"5", "6"}


def test_merging_chunks_keeps_a_key_only_as_different() -> None:
    table = Classified()
    first = classify({"8": _row(8, 80)}, {})
    assert set(first.missing) == {"8"}
    merge(table, first)
    merge(table, classify({}, group([("9", _row(9, 90))]), source_elsewhere={}))
    moved = _row(8, 81)
    merge(table, Classified(different={"8": (_row(8, 80), moved)}, extra=[("8", moved)]))
    assert not table.missing and set(table.different) == {"8"}
    assert [k for k, _ in table.extra] == ["9"]


def test_differing_columns_by_name() -> None:
    names = ("id", "status", "premium_cents")
    assert differing_columns(names, ("1", "draft", None), ("1", "priced", "0")) == [
        "status", "premium_cents"]
    assert differing_columns(names, None, ("1", "a", "b")) == list(names)


def _report(agree: bool) -> VerifyReport:
    table = TableReport("quote", "quote", "id", "updated_ts", "sql", chunks=3, chunks_checked=3,
                        source_rows=100, target_rows=100 if agree else 99, seconds=0.5,
                        quarantined=2, quarantined_keys=[13, 14])
    table.chunk_list = [ChunkReport(0, "key", None, 40), ChunkReport(1, "key", 40, 80),
                        ChunkReport(2, "key", 80, None)]
    if not agree:
        table.chunk_list[1].status = "mismatch"
        table.mismatching_chunks, table.missing, table.different = 1, 1, 1
        table.diffs = [DiffRow("missing", 55, [], {"id": "55"}, None, 1_700_000_000_000),
                       DiffRow("different", 60, ["status"], {"status": "priced"},
                               {"status": "<b>x</b>"}, 1_700_000_000_000, 1_700_000_000_000)]
    return VerifyReport("runtime", "legacy a:3306 database lf_runtime",
                        "target b:3306 database lf_runtime", "2026-11-26T09:00:00+00:00",
                        since=None, until=None, tables=[table])


def test_exit_code_is_zero_only_when_every_table_agrees() -> None:
    assert _report(True).exit_code == 0
    assert _report(False).exit_code == 1
    repaired = _report(False)
    repaired.tables[0].repair = RepairReport(copied=2)
    assert repaired.exit_code == 0                     # the re-check found nothing left
    repaired.tables[0].repair.extra_after = 1
    assert repaired.exit_code == 1


def test_json_report_carries_counts_keys_and_verdict() -> None:
    data = json.loads(_report(False).to_json())
    assert data["agrees"] is False and data["exit_code"] == 1
    table = data["tables"][0]
    assert table["name"] == "quote -> quote" and table["quarantined_keys"] == [13, 14]
    assert [(d["kind"], d["key"], d["columns"]) for d in table["diffs"]] == [
        ("missing", 55, []), ("different", 60, ["status"])]
    assert table["rows_per_second"] == 200.0


def test_html_is_self_contained_and_shows_the_differing_ranges_and_days(tmp_path) -> None:
    page = render_html(_report(False))
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<link" not in page and "<script" not in page and "http" not in page
    assert "source and target differ" in page
    assert "key (40, 80]" in page and "mismatch" in page
    assert "2023-11-14 (2)" in page                    # the day of the differing versions
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    json_path, html_path = write_reports(_report(True), tmp_path / "out")
    assert json_path.name.startswith("verify-runtime-") and json_path.suffix == ".json"
    assert html_path.with_suffix(".json") == json_path
    assert "source and target agree" in html_path.read_text()
    # rows of the data: owner and group only, whatever the umask
    assert {stat.S_IMODE(p.stat().st_mode) for p in (json_path, html_path)} == {0o640}


def test_plain_progress_prints_lines_not_bars() -> None:
    sink = io.StringIO()
    progress = PlainLines(Console(file=sink, width=200), "verify runtime", interval=0)
    progress.phase("quote -> quote", "checksums")
    progress.advance("quote -> quote", 20000, chunks=1)
    progress.advance("quote -> quote", 4000, chunks=1)
    lines = sink.getvalue().splitlines()
    assert lines[-1] == "verify runtime quote -> quote: 2 chunks, 24,000 rows (checksums)"
    assert "\x1b" not in sink.getvalue()


def test_summary_lists_the_differing_keys() -> None:
    sink = io.StringIO()
    print_report(Console(file=sink, width=200), _report(False))
    text = sink.getvalue()
    assert "quote -> quote: missing key 55" in text
    assert "quote -> quote: different key 60 columns status" in text
    assert "source and target differ" in text


def test_cli_user_errors_exit_2_before_any_connection() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["verify", "--flow", "runtime", "--delete-extra"],
                           standalone_mode=False)
    assert isinstance(result.exception, FuretError)   # main() prints it, exits 2
    assert "only makes sense with --repair" in str(result.exception)
    result = runner.invoke(cli, ["verify", "--flow", "runtime", "--sample", "0"])
    assert result.exit_code == 2 and "--sample" in result.output
    result = runner.invoke(cli, ["verify", "--help"])
    assert result.exit_code == 0 and "--report-dir" in result.output


def test_composite_keys_and_temporal_versions_read_well_in_every_report() -> None:
    """A composite key: its values in JSON, its key text on the console and in HTML; a
    temporal version (ledger epoch microseconds) shown as its day and instant."""
    table = TableReport("order_line", "order_line", "order_no, line_no", "changed_at", "sql",
                        chunks=2, chunks_checked=2, source_rows=10, target_rows=10,
                        quarantined_keys=[(3, "x")], version_type="DATETIME(0)",
                        version_us=1)
    moment = 1_764_000_000_000_000          # 2025-11-24T16:00:00Z in epoch microseconds
    table.chunk_list = [ChunkReport(0, "key", None, (5, "b"), status="mismatch"),
                        ChunkReport(1, "version", moment, moment + 1_500, status="mismatch")]
    table.mismatching_chunks, table.missing = 2, 1
    table.diffs = [DiffRow("missing", (5, "a[bold]"), [], {"qty": "1"}, None, moment)]
    report = VerifyReport("f", "legacy", "target", "2026-11-26T09:00:00+00:00", tables=[table])
    data = json.loads(report.to_json())
    diff = data["tables"][0]["diffs"][0]
    assert diff["key"] == [5, "a[bold]"] and diff["key_text"] == '["5", "a[bold]"]'
    assert data["tables"][0]["quarantined_keys"] == [[3, "x"]]
    page = render_html(report)
    assert "<td class=l>[&quot;5&quot;, &quot;a[bold]&quot;]</td>" in page
    assert "key (-inf, [&quot;5&quot;, &quot;b&quot;]]" in page
    assert "version (2025-11-24T16:00:00.000Z, 2025-11-24T16:00:00.001500Z]" in page
    assert "2025-11-24 (1)" in page and "DATETIME(0)" in page
    assert "[&quot;3&quot;, &quot;x&quot;]" in page
    sink = io.StringIO()
    print_report(Console(file=sink, width=200), report)
    assert 'order_line -> order_line: missing key ["5", "a[bold]"]' in sink.getvalue()
