"""Plain progress lines when there is no terminal (over Fabric, in CI logs)."""

from __future__ import annotations

import io

from rich.console import Console

from migration.progress import PlainLines, RichBars, interval_from_env, reporter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_lines_are_rate_limited_and_a_last_line_closes_each_task() -> None:
    console, out = _console()
    clock = FakeClock()
    lines = PlainLines(console, "round runtime", interval=5.0, clock=clock)
    lines.table("quote", 1000)
    lines.table("offer", None)
    lines.advance("quote", 100)           # t=0: within the interval, nothing printed
    assert out.getvalue() == ""
    clock.now += 5.0
    lines.advance("quote", 150)           # t=5: one line per task that moved
    assert out.getvalue().splitlines() == [
        "progress round runtime quote: 250 / 1,000 rows (25%), 50 rows/s"]
    clock.now += 1.0
    lines.advance("offer", 3000)          # t=6: too soon
    assert len(out.getvalue().splitlines()) == 1
    clock.now += 4.0
    lines.advance("quote", 750)           # t=10: both tasks moved
    assert out.getvalue().splitlines()[1:] == [
        "progress round runtime quote: 1,000 / 1,000 rows (100%), 100 rows/s",
        "progress round runtime offer: 3,000 rows, 600 rows/s"]  # its clock began at t=5
    lines.close()                          # nothing moved since: no repeated line
    assert len(out.getvalue().splitlines()) == 3


def test_close_prints_what_moved_since_the_last_line() -> None:
    console, out = _console()
    clock = FakeClock()
    lines = PlainLines(console, "seed", interval=5.0, clock=clock)
    lines.table("lf_runtime.quote", None)
    clock.now += 2.0
    lines.advance("lf_runtime.quote", 5000)
    lines.close()
    assert out.getvalue() == "progress seed lf_runtime.quote: 5,000 rows, 2,500 rows/s\n"


def test_reporter_picks_lines_without_a_terminal_and_nothing_when_disabled() -> None:
    console, out = _console()
    with reporter(console, "seed") as progress:
        assert isinstance(progress, PlainLines)
        progress.table("t", 10)
        progress.advance("t", 10)
    assert out.getvalue().startswith("progress seed t: 10 / 10 rows (100%)")
    with reporter(console, "seed", enabled=False) as progress:
        progress.table("t", 10)
        progress.advance("t", 10)
    assert out.getvalue().count("\n") == 1


def test_interval_comes_from_the_environment_with_a_safe_default() -> None:
    assert interval_from_env({}) == 5.0
    assert interval_from_env({"FURET_PROGRESS_SECONDS": "0.5"}) == 0.5
    assert interval_from_env({"FURET_PROGRESS_SECONDS": "soon"}) == 5.0
    assert interval_from_env({"FURET_PROGRESS_SECONDS": "-3"}) == 0.0


def test_a_task_with_phases_prints_chunks_and_a_line_at_each_phase_change() -> None:
    console, out = _console()
    clock = FakeClock()
    lines = PlainLines(console, "verify runtime", interval=5.0, clock=clock)
    lines.phase("quote -> quote", "checksums")   # a phase change prints at once
    lines.advance("quote -> quote", 20000, chunks=1)
    lines.advance("quote -> quote", 4000, chunks=1)
    clock.now += 1.0
    lines.phase("quote -> quote", "cassandra scan")
    clock.now += 5.0
    lines.advance("quote -> quote", 500)         # rows without chunks still count
    lines.close()
    assert out.getvalue().splitlines() == [
        "verify runtime quote -> quote: 0 chunks, 0 rows (checksums)",
        "verify runtime quote -> quote: 2 chunks, 24,000 rows (cassandra scan)",
        "verify runtime quote -> quote: 2 chunks, 24,500 rows (cassandra scan)"]
    assert "\x1b" not in out.getvalue()


def test_bars_on_a_terminal_count_rows_chunks_and_phases() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with reporter(console, "verify runtime") as progress:
        assert isinstance(progress, RichBars)
        progress.table("quote", 1000)
        progress.advance("quote", 250)
        progress.phase("quote -> quote", "checksums")
        progress.advance("quote -> quote", 20000, chunks=1)
        progress.advance("quote -> quote", 4000, chunks=2)
        tasks = {t.description: t for t in progress.progress.tasks}
    assert tasks["quote"].completed == 250 and tasks["quote"].total == 1000
    verify = tasks["quote -> quote (checksums)"]
    assert verify.completed == 24000 and verify.fields["chunks"] == 3
    assert "3 chunks, 24,000 rows" in out.getvalue()
