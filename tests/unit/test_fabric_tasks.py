"""fabfile.py's logic (migration/fabric_tasks.py): inventory choice, remote command lines,
host selection, per-host outcomes and streamed output, without any SSH."""

from __future__ import annotations

import io
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from migration import fabric_tasks as ft
from migration.errors import FuretError
from migration.inventory import InventoryHost


def _host(name: str, groups: tuple[str, ...] = ("etl",)) -> InventoryHost:
    return InventoryHost(name, f"10.0.0.{len(name)}", "root", 22, None, groups)


ETL1, ETL2, LEGACY = _host("etl1"), _host("etl2"), _host("legacy1", ("legacy_mysql",))


def _load(hosts: list[InventoryHost]):  # type: ignore[no-untyped-def]
    def load(inventory: str, patterns: Sequence[str]) -> list[InventoryHost]:
        return [h for h in hosts if h.name in patterns or set(patterns) & set(h.groups)]
    return load


@dataclass
class _Result:
    exited: int
    stderr: str


class _FakeConnection:
    """Plays a host: writes its output to the streams Fabric would stream to."""

    def __init__(self, exited: int = 0, stdout: str = "", stderr: str = "",
                 error: Exception | None = None) -> None:
        self.exited, self.stdout, self.stderr, self.error = exited, stdout, stderr, error
        self.commands: list[tuple[str, dict]] = []

    def __enter__(self) -> _FakeConnection:
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, command: str, **kwargs: object) -> _Result:
        self.commands.append((command, kwargs))
        kwargs["out_stream"].write(self.stdout)  # type: ignore[attr-defined]
        kwargs["err_stream"].write(self.stderr)  # type: ignore[attr-defined]
        return _Result(self.exited, self.stderr)


# --- inventory and hosts ----------------------------------------------------------------

def test_inventory_task_flag_beats_fab_identity_beats_env_beats_default() -> None:
    env = {"FURET_INVENTORY": "inventories/production/hosts.yml"}
    assert ft.resolve_inventory("a.yml", env, ["b.yml"]) == "a.yml"
    assert ft.resolve_inventory(None, env, ["b.yml"]) == "b.yml"
    assert ft.resolve_inventory(None, env, []) == "inventories/production/hosts.yml"
    assert ft.resolve_inventory(None, {}, []) == ft.DEFAULT_INVENTORY


def test_a_real_ssh_identity_given_to_fab_is_not_taken_for_an_inventory() -> None:
    assert ft.resolve_inventory(None, {}, ["/root/.ssh/id_ed25519"]) == ft.DEFAULT_INVENTORY


def test_hosts_default_to_the_etl_group_and_split_on_commas() -> None:
    assert ft.split_hosts(None) == ("etl",)
    assert ft.split_hosts(" etl1, etl2 ,") == ("etl1", "etl2")


def test_state_changing_tasks_refuse_more_than_one_host() -> None:
    load = _load([ETL1, ETL2, LEGACY])
    assert ft.select("status", "inv", ("etl",), load) == [ETL1, ETL2]
    assert ft.select("round", "inv", ("etl2",), load) == [ETL2]
    for task in ("round", "freeze", "unfreeze"):
        with pytest.raises(FuretError, match=r"etl has 2 \(etl1, etl2\): pass --on etl1"):
            ft.select(task, "inv", ("etl",), load)


def test_an_empty_selection_is_an_error() -> None:
    with pytest.raises(FuretError, match="no host in etl"):
        ft.select("status", "inv", ("etl",), _load([LEGACY]))


# --- remote command lines ---------------------------------------------------------------

def test_remote_command_uses_the_installed_config_and_quotes_every_argument() -> None:
    command = ft.furet_command(ft.argv("round", {"flow": "run time; rm -rf /"}))
    assert shlex.split(command) == ["furet", "--config", "/etc/furet/furet.yml", "round",
                                    "--flow", "run time; rm -rf /"]


def test_round_arguments() -> None:
    assert ft.argv("round", {"flow": "runtime"}) == ["round", "--flow", "runtime"]
    assert ft.argv("round", {"flow": "rt_bo", "final": True, "strategy": "id",
                             "max_quarantined": "5",
                             "json": True}) == ["round", "--flow", "rt_bo", "--final", "--strategy",
                                                "id", "--max-quarantined", "5", "--json"]
    assert ft.argv("round", {"flow": "runtime",
                             "max_quarantined": 0})[-2:] == ["--max-quarantined", "0"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"flow": ""}, "--flow is required"),
    ({"flow": "runtime", "strategy": "fast"}, "--strategy 'fast' is not one of ts, naive, id"),
    ({"flow": "runtime", "max_quarantined": "many"}, "--max-quarantined 'many' is not an int"),
    ({"flow": "runtime", "max_quarantined": "-1"}, "--max-quarantined must be 0 or more"),
])
def test_round_arguments_are_checked_before_any_host_is_reached(kwargs: dict,
                                                                message: str) -> None:
    with pytest.raises(FuretError, match=message):
        ft.argv("round", kwargs)


def test_status_freeze_unfreeze_arguments() -> None:
    assert ft.argv("status") == ["status"]
    assert ft.argv("status", {"flow": "runtime", "last": "3", "json": True}) == [
        "status", "--flow", "runtime", "--last", "3", "--json"]
    assert ft.argv("freeze") == ["legacy", "freeze"]
    assert ft.argv("freeze", {"timeout": "90"}) == ["legacy", "freeze", "--timeout", "90"]
    assert ft.argv("unfreeze") == ["legacy", "unfreeze"]
    with pytest.raises(FuretError, match="--timeout 'soon' is not a number"):
        ft.argv("freeze", {"timeout": "soon"})


# --- outcomes and the report ------------------------------------------------------------

def test_outcome_names_the_last_error_line_or_the_missing_install() -> None:
    assert ft.outcome_from_result("etl1", 0, "") == ft.HostOutcome("etl1", True, 0)
    failed = ft.outcome_from_result(
        "etl1", 2, "progress\nfuret: error: target 127.0.0.1:3306: Access denied\n\n")
    assert failed == ft.HostOutcome("etl1", False, 2,
                                    "exit 2: furet: error: target 127.0.0.1:3306: Access denied")
    missing = ft.outcome_from_result("etl1", 127, "bash: furet: command not found")
    assert "not installed" in missing.reason and "playbooks/etl.yml" in missing.reason


def test_report_lists_every_host_and_exits_with_the_first_failure() -> None:
    report = ft.TaskReport("status", [ft.HostOutcome("etl1", True, 0),
                                      ft.HostOutcome("etl2", False, None, "SSH to x: refused"),
                                      ft.HostOutcome("etl3", False, 2, "exit 2: boom")])
    assert [o.host for o in report.succeeded] == ["etl1"]
    assert report.exit_code == 2  # etl2 was not reached: no remote code; never 1 (verify's)
    assert report.lines() == [
        "fab status: etl1 ok",
        "fab status: etl2 FAILED (SSH to x: refused)",
        "fab status: etl3 FAILED (exit 2: boom)",
        "fab status: 2 of 3 host(s) failed: etl2, etl3",
    ]
    assert ft.TaskReport("status", [ft.HostOutcome("etl1", True, 0)]).exit_code == 0
    assert ft.TaskReport("round", [ft.HostOutcome("etl1", False, 2, "x")]).exit_code == 2


def test_line_prefixer_prefixes_lines_split_across_writes() -> None:
    sink = io.StringIO()
    stream = ft.LinePrefixer(sink, "[etl1] ")
    for chunk in ("round 1 ", "started\nrows: 10", "0\n", "done\n"):
        stream.write(chunk)
    assert sink.getvalue() == "[etl1] round 1 started\n[etl1] rows: 100\n[etl1] done\n"


# --- running ----------------------------------------------------------------------------

def test_one_host_streams_unprefixed_with_no_pty_and_no_exception_on_failure() -> None:
    conn = _FakeConnection(exited=0, stdout="table\n", stderr="")
    out, err = io.StringIO(), io.StringIO()
    report = ft.execute("status", ft.argv("status"), "inv", ("etl",),
                        connect=lambda h: conn, load=_load([ETL1]), out=out, err=err)
    assert report.exit_code == 0 and out.getvalue() == "table\n"
    command, kwargs = conn.commands[0]
    assert command == "furet --config /etc/furet/furet.yml status"
    assert kwargs["pty"] is False and kwargs["warn"] is True and "hide" not in kwargs


def test_every_host_runs_even_after_one_fails_and_output_is_attributed() -> None:
    conns = {
        "etl1": _FakeConnection(exited=2, stdout="half\n", stderr="furet: error: no ledger\n"),
        "etl2": _FakeConnection(error=TimeoutError("timed out")),
        "etl3": _FakeConnection(exited=0, stdout="ok\n"),
    }
    hosts = [ETL1, ETL2, _host("etl3")]
    out, err = io.StringIO(), io.StringIO()
    report = ft.run_on_hosts("status", hosts, "furet status", connect=lambda h: conns[h.name],
                             out=out, err=err)
    assert out.getvalue() == "[etl1] half\n[etl3] ok\n"
    assert err.getvalue() == "[etl1] furet: error: no ledger\n"
    assert [(o.host, o.ok, o.exit_code) for o in report.outcomes] == [
        ("etl1", False, 2), ("etl2", False, None), ("etl3", True, 0)]
    assert report.failed[1].reason == "SSH to root@10.0.0.4:22: TimeoutError: timed out"
    assert report.exit_code == 2


# --- fab verify -------------------------------------------------------------------------

def test_verify_arguments_and_report_dir() -> None:
    import datetime

    when = datetime.datetime(2026, 11, 26, 9, 30, tzinfo=datetime.UTC)
    remote = ft.verify_report_dir("runtime", when)
    assert remote == "/var/lib/furet/reports/runtime-20261126T093000Z"
    assert ft.verify_report_dir("../x y", when).endswith("/___x_y-20261126T093000Z")
    fixed = {"report_dir": remote, "no_progress": True}
    assert ft.argv("verify", {"flow": "runtime", **fixed}) == [
        "verify", "--flow", "runtime", "--report-dir", remote, "--no-progress"]
    assert ft.argv("verify", {"flow": "cassandra_prod", **fixed, "repair": True,
                              "delete_extra": True, "since": "2026-11-25",
                              "until": "1764000000000", "sample": "0.1",
                              "max_rows_per_second": "50000", "consistency": "local_one",
                              "scan_consistency": "local_quorum", "scan_page_rows": "2000",
                              "json": True})[6:] == [
        "--repair", "--delete-extra", "--since", "2026-11-25", "--until", "1764000000000",
        "--sample", "0.1", "--max-rows-per-second", "50000",
        "--scan-consistency", "LOCAL_QUORUM", "--scan-page-rows", "2000",
        "--consistency", "LOCAL_ONE", "--json"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"flow": ""}, "--flow is required"),
    ({"flow": "runtime", "delete_extra": True}, "need --repair"),
    ({"flow": "runtime", "sample": "most"}, "--sample 'most' is not a number"),
    ({"flow": "runtime", "sample": "2"}, r"--sample must be in \(0, 1\]"),
    ({"flow": "runtime", "consistency": "TWO"}, "--consistency 'TWO' is not one of"),
    ({"flow": "runtime", "max_rows_per_second": "-5"}, "must be 0 or more"),
])
def test_verify_arguments_are_checked_before_any_host_is_reached(kwargs: dict,
                                                                 message: str) -> None:
    with pytest.raises(FuretError, match=message):
        ft.argv("verify", {"report_dir": "/r", **kwargs})


class _FetchingConnection(_FakeConnection):
    """A host that ran furet verify: lists its report directory and serves ``get``."""

    def __init__(self, exited: int, files: list[str]) -> None:
        super().__init__(exited=exited, stdout="table\n")
        self.files = files
        self.got: list[tuple[str, str]] = []

    def run(self, command: str, **kwargs: object) -> _Result:
        if command.startswith("ls -1 "):
            self.commands.append((command, kwargs))
            result = _Result(0, "")
            result.stdout = "\n".join(self.files) + "\n"  # type: ignore[attr-defined]
            return result
        return super().run(command, **kwargs)

    def get(self, remote: str, local: str) -> None:
        self.got.append((remote, local))
        with open(local, "w") as handle:
            handle.write("{}")


@pytest.mark.parametrize("exited", [0, 1])
def test_verify_fetches_the_reports_even_when_it_found_differences(tmp_path, exited) -> None:
    conn = _FetchingConnection(exited, ["verify-runtime-1.html", "verify-runtime-1.json",
                                        "other.txt"])
    report, fetched = ft.execute_verify({"flow": "runtime"}, "inv", ("etl",),
                                        tmp_path / "reports", connect=lambda h: conn,
                                        load=_load([ETL1]), out=io.StringIO(),
                                        err=io.StringIO(),
                                        report_dir="/var/lib/furet/reports/r1")
    assert conn.commands[0][0] == ("furet --config /etc/furet/furet.yml verify --flow runtime "
                                   "--report-dir /var/lib/furet/reports/r1 --no-progress")
    assert [p.name for p in fetched] == ["verify-runtime-1.html", "verify-runtime-1.json"]
    assert conn.got[0] == ("/var/lib/furet/reports/r1/verify-runtime-1.html",
                           str(tmp_path / "reports" / "verify-runtime-1.html"))
    assert report.exit_code == exited


def test_verify_runs_on_one_host_and_fetches_nothing_after_an_error(tmp_path) -> None:
    with pytest.raises(FuretError, match="verify runs on one host only"):
        ft.execute_verify({"flow": "runtime"}, "inv", ("etl",), tmp_path,
                          connect=lambda h: _FakeConnection(), load=_load([ETL1, ETL2]),
                          report_dir="/r")
    conn = _FetchingConnection(2, ["verify-runtime-1.json"])
    report, fetched = ft.execute_verify({"flow": "runtime"}, "inv", ("etl",), tmp_path,
                                        connect=lambda h: conn, load=_load([ETL1]),
                                        out=io.StringIO(), err=io.StringIO(), report_dir="/r")
    assert report.exit_code == 2 and fetched == [] and conn.got == []
