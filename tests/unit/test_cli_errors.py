"""One clear line, always: an unexpected exception in `furet` or `fab` is one line naming what
failed and where, exit 2 (1 only means "verify found differences"), its traceback in a log
file whose path the line gives, never a password; ^C is one line and exit 130; values are
printed as they are (no rich markup: `[/x]` in a config is text, not a closing tag)."""

from __future__ import annotations

import inspect
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymysql
import pytest
from click.testing import CliRunner, Result
from invoke import Context, Exit
from rich.console import Console

from migration.cli import cli
from migration.inventory import InventoryHost
from migration.output import print_report
from migration.progress import reporter
from migration.verify.report import TableReport, VerifyReport
from tests.helpers import REPO
from tests.unit.test_contract import FABFILE

PASSWORD = "s3cr3t-Pw_42"
ETL1 = InventoryHost("etl1", "10.0.0.4", "root", 22, None, ("etl",))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No ./furet.yml, the target's password from the environment, logs under tmp_path."""
    monkeypatch.chdir(tmp_path)
    return {"FURET_LOG_DIR": str(tmp_path / "logs"), "FURET_TARGET_PASSWORD": PASSWORD,
            "FURET_TARGET_HOST": "10.0.0.41"}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_line_and_its_log(result: Result) -> tuple[str, str]:
    """The single stderr line and the text of the log file it names."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    found = re.search(r"traceback in (\S+\.log)", lines[0])
    assert found, lines[0]
    log = Path(found.group(1))
    assert log.is_file()
    return lines[0], log.read_text()


def _boom(exc: BaseException) -> Any:
    def raise_it(*args: object, **kwargs: object) -> None:
        raise exc
    return raise_it


# --- furet --------------------------------------------------------------------------------

def test_an_unexpected_exception_is_one_line_exit_2_and_its_traceback_in_a_log(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.engine.status

    monkeypatch.setattr(migration.engine.status, "status", _boom(RuntimeError("ledger\nboom")))
    result = CliRunner().invoke(cli, ["status", "--flow", "runtime"], env=env)
    line, log = _one_line_and_its_log(result)
    assert line.startswith("furet: error: status")
    assert "flow runtime" in line and "RuntimeError: ledger boom" in line
    assert Path(env["FURET_LOG_DIR"]) in Path(re.findall(r"\S+\.log", line)[0]).parents
    assert "Traceback (most recent call last)" in log and "RuntimeError: ledger" in log


def test_a_driver_error_names_its_server_and_never_echoes_a_password(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A real pymysql connection error (port 1 refuses at once): the line names the server and
    database the driver was talking to; a DSN or password= in an error text is masked, in
    the line and in the log."""
    import migration.engine.status

    def connect(*args: object, **kwargs: object) -> None:
        try:
            pymysql.connect(host="127.0.0.1", port=1, user="furet", password=PASSWORD,
                            database="lf_runtime", connect_timeout=2)
        except pymysql.err.OperationalError as exc:
            raise pymysql.err.OperationalError(
                exc.args[0], f"{exc.args[1]} via mysql://furet:{PASSWORD}@127.0.0.1:1/lf_runtime"
                f" password={PASSWORD}") from exc

    monkeypatch.setattr(migration.engine.status, "status", connect)
    result = CliRunner().invoke(cli, ["status"], env=env)
    line, log = _one_line_and_its_log(result)
    assert "127.0.0.1:1" in line and "lf_runtime" in line and "OperationalError" in line
    assert PASSWORD not in result.output and PASSWORD not in log
    assert "mysql://furet:***@127.0.0.1" in line


def test_a_password_from_the_config_is_masked_wherever_it_appears(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.engine.status

    monkeypatch.setattr(migration.engine.status, "status",
                        _boom(ValueError(f"bad value {PASSWORD!r} in row 3")))
    result = CliRunner().invoke(cli, ["status"], env=env)
    line, log = _one_line_and_its_log(result)
    assert PASSWORD not in result.output and PASSWORD not in log
    assert "bad value '***' in row 3" in line


def test_context_named_by_the_code_reaches_the_line_even_from_a_worker_thread(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import migration.engine.status
    from migration.errors import context

    def work() -> None:
        with context(host="10.0.0.41:3306", database="lf_runtime", table="lf_runtime.quote"):
            raise ZeroDivisionError("division by zero")

    def status(*args: object, **kwargs: object) -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(work).result()

    monkeypatch.setattr(migration.engine.status, "status", status)
    result = CliRunner().invoke(cli, ["status", "--flow", "runtime"], env=env)
    line, log = _one_line_and_its_log(result)
    assert line.startswith("furet: error: status, flow runtime, host 10.0.0.41:3306, database "
                           "lf_runtime, table lf_runtime.quote: ZeroDivisionError: division by "
                           "zero (unexpected error; traceback in "), line
    assert "furet context: host 10.0.0.41:3306" in log  # the note, in the traceback


def test_ctrl_c_is_one_line_and_exit_130(env: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.engine.status

    monkeypatch.setattr(migration.engine.status, "status", _boom(KeyboardInterrupt()))
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert result.exit_code == 130, (result.output, result.exception)
    assert _lines(result.stderr) == ["furet: interrupted: status"]
    assert not Path(env["FURET_LOG_DIR"]).exists()


def test_a_user_error_stays_one_line_exit_2_without_a_log(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["--config", "nowhere/[/x].yml", "status"], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert _lines(result.stderr) == ["furet: error: config file nowhere/[/x].yml not found"]
    assert not Path(env["FURET_LOG_DIR"]).exists()


def test_a_config_value_with_markup_is_printed_as_it_is(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.target.schema

    monkeypatch.setattr(migration.target.schema, "init_target",
                        lambda settings, drop=False: ["lf_[bold]runtime"])
    result = CliRunner().invoke(cli, ["target", "init"],
                                env={**env, "FURET_TARGET_HOST": "db[/x]"})
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout == "furet target db[/x]:3306: schemas lf_[bold]runtime ready\n"


def test_verify_report_and_progress_print_markup_like_names_as_text() -> None:
    table = TableReport("[/x]", "q[red]", "id", "updated_ts", "sql", chunks=1,
                        chunks_checked=1, source_rows=1, target_rows=1, seconds=0.1)
    report = VerifyReport("f[/]", "legacy a:3306", "target b:3306", "2026-11-26T09:00:00+00:00",
                          since=None, until=None, tables=[table])
    sink = io.StringIO()
    print_report(Console(file=sink, width=200), report)
    assert "[/x]" in sink.getvalue() and "verify f[/]: source and target agree" in sink.getvalue()
    bars = io.StringIO()
    with reporter(Console(file=bars, force_terminal=True, width=120), "round", True) as progress:
        progress.table("lf_runtime.[/x]", 10)
        progress.advance("lf_runtime.[/x]", 5)
    assert "lf_runtime.[/x]" in bars.getvalue()


def test_the_installed_entry_point_exits_2_with_one_line(tmp_path: Path) -> None:
    """The real `furet` script path (migration.cli:main) in a process of its own."""
    script = ("import sys, migration.engine.status as s\n"
              "def boom(*a, **k):\n    raise RuntimeError('kaput')\n"
              "s.status = boom\n"
              "sys.argv = ['furet', 'status']\n"
              "from migration.cli import main\nmain()\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                              "FURET_LOG_DIR": str(tmp_path / "logs"), "HOME": str(tmp_path)})
    assert run.returncode == 2, run.stderr
    lines = _lines(run.stderr)
    assert len(lines) == 1 and "RuntimeError: kaput" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert len(list((tmp_path / "logs").glob("furet-*.log"))) == 1


# --- fab ----------------------------------------------------------------------------------

def _fab(command: str, **kwargs: Any) -> None:
    """Run the fabfile's task body as `fab` would, with its defaults (from its signature:
    invoke's get_arguments() pops the help texts test_contract checks)."""
    fab_task = getattr(FABFILE, "round_" if command == "round" else command)
    values = {name: p.default for name, p in inspect.signature(fab_task.body).parameters.items()
              if p.default is not inspect.Parameter.empty}
    fab_task.body(Context(), **{**values, **kwargs})


def test_fab_turns_an_unexpected_local_exception_into_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.remote

    monkeypatch.setenv("FURET_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(migration.remote, "select_hosts",
                        _boom(KeyError("etl_runner_config_dir")))
    with pytest.raises(Exit) as exit_info:
        _fab("status")
    assert exit_info.value.code == 2
    message = str(exit_info.value.message)
    assert len(_lines(message)) == 1 and message.startswith("fab status: error: ")
    assert "KeyError: 'etl_runner_config_dir'" in message
    log = Path(re.findall(r"traceback in (\S+\.log)", message)[0])
    assert "Traceback (most recent call last)" in log.read_text()


def test_fab_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.remote

    monkeypatch.setattr(migration.remote, "select_hosts", _boom(KeyboardInterrupt()))
    try:
        _fab("version")
    except KeyboardInterrupt:  # would stop pytest itself; invoke exits 1 on it, silently
        pytest.fail("KeyboardInterrupt escaped the fab task")
    except Exit as exc:
        assert exc.code == 130 and exc.message == "fab version: interrupted"
    else:
        pytest.fail("no Exit")


def test_fab_rehearsal_turns_an_unexpected_exception_into_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import migration.rehearsal

    monkeypatch.setenv("FURET_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(migration.rehearsal, "run_rehearsal", _boom(OSError(5, "I/O error")))
    with pytest.raises(Exit) as exit_info:
        _fab("rehearsal")
    assert exit_info.value.code == 2
    assert "OSError: [Errno 5] I/O error" in str(exit_info.value.message)


def test_fab_a_host_not_reached_exits_2_not_1_and_a_remote_failure_adds_no_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """1 is verify's "differences"; a remote furet's own line is the host's reason."""
    import migration.remote

    class Refused:
        def __enter__(self) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(migration.remote, "select_hosts", lambda inventory, patterns: [ETL1])
    monkeypatch.setattr(migration.remote, "connection_for", lambda host: Refused())
    with pytest.raises(Exit) as exit_info:
        _fab("status")
    assert exit_info.value.code == 2 and not exit_info.value.message
    assert "etl1 FAILED (SSH to root@10.0.0.4:22" in capsys.readouterr().err


# --- where the log goes -------------------------------------------------------------------

def test_log_directory_override_then_root_then_user_state() -> None:
    from migration.failure import log_dir_candidates

    assert log_dir_candidates({"FURET_LOG_DIR": "/srv/x"}, euid=0)[0] == Path("/srv/x")
    assert log_dir_candidates({}, euid=0)[0] == Path("/var/log/furet")
    user = log_dir_candidates({"XDG_STATE_HOME": "/h/st", "HOME": "/h"}, euid=1000)
    assert user[:2] == [Path("/var/log/furet"), Path("/h/st/furet/log")]
    assert log_dir_candidates({"HOME": "/h"}, euid=1000)[1] == Path("/h/.local/state/furet/log")
