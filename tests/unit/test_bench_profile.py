"""make bench: its CPU profile (podman's CPU times, the line it prints), the growth table, the
verify's median and --skip-baselines."""

from __future__ import annotations

import json

import pytest

from bench.lab import go_duration
from bench.run import Measure


@pytest.mark.parametrize(("text", "seconds"), [
    ("18.260725416s", 18.260725416), ("1m2.5s", 62.5), ("2h0m1s", 7201.0),
    ("350ms", 0.35), ("12µs", 12e-6), ("0s", 0.0)])
def test_go_durations_as_podman_prints_them(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


def test_profile_names_the_hosts_that_used_the_most_cpu() -> None:
    m = Measure("Galera", "furet round 1 (runtime)", 100, 10.0,
                cpu_s={"galera1": 40.4, "etl1": 12.0, "galera2": 30.2, "app1": 0.3})
    assert m.profile() == "83 s CPU: galera1 40, galera2 30, etl1 12"


DSBULK_CONSOLE = """Operation directory: .cache/bench/dsbulk/logs/LOAD_20261202-125715-281522
total | failed | rows/s | p50ms |  p99ms | p999ms | batches
4,367 |      0 |    766 | 34.32 | 202.38 | 285.21 |    1.57
total | failed | rows/s | p50ms |  p99ms | p999ms | batches
1,000,000 |      7 |    766 | 34.32 | 202.38 | 285.21 |    1.57
Operation LOAD_20261202-125715-281522 completed successfully in 1 second.
"""


def test_dsbulk_closing_table_gives_records_and_failures() -> None:
    from bench.baselines import _dsbulk_summary

    assert _dsbulk_summary(DSBULK_CONSOLE) == (1_000_000, 7)
    assert _dsbulk_summary("Operation directory: x\nOperation LOAD failed.\n") is None


def _point(quotes: int, measure: str, rate: int, rss: float) -> dict:
    return {"quotes": quotes, "measure": measure, "rows_per_second": rate,
            "peak_rss_mib": rss}


def test_the_chart_series_are_per_measure_in_size_order() -> None:
    from bench.chart import series

    growth = [_point(1_000_000, "Galera: round 1", 40_000, 51.0),
              _point(100_000, "Galera: round 1", 30_000, 50.0),
              _point(100_000, "Cassandra: verify", 90_000, 99.0)]
    assert series(growth) == {"Galera: round 1": [(100_000, 30_000.0, 50.0),
                                                  (1_000_000, 40_000.0, 51.0)],
                              "Cassandra: verify": [(100_000, 90_000.0, 99.0)]}


def _growth_text(monkeypatch, points: list[dict], main_quotes: int) -> str:
    """What growth_table prints for ``points``."""
    import io

    from rich.console import Console

    from bench import run

    out = io.StringIO()
    monkeypatch.setattr(run, "console", Console(file=out, width=200))
    run.growth_table(points, main_quotes)
    return out.getvalue()


def test_the_growth_table_checks_peak_rss_of_the_largest_size(monkeypatch) -> None:
    text = _growth_text(monkeypatch, [_point(1_000_000, "Galera: round 1", 40_000, 50.0),
                                      _point(5_000_000, "Galera: round 1", 41_000, 59.0),
                                      _point(1_000_000, "Galera: verify", 120_000, 50.0),
                                      _point(5_000_000, "Galera: verify", 110_000, 61.0)],
                        1_000_000)
    assert "40,000 (50)" in text and "41,000 (59)" in text
    assert "Galera: round 1: 5,000,000 / 1,000,000 quotes = 1.18 (flat" in text
    assert "Galera: verify: 5,000,000 / 1,000,000 quotes = 1.22 (GROWS" in text


def test_below_the_main_size_the_growth_table_gives_no_verdict(monkeypatch) -> None:
    text = _growth_text(monkeypatch, [_point(100_000, "Cassandra: verify", 97_000, 95.0),
                                      _point(1_000_000, "Cassandra: verify", 161_000, 240.0)],
                        1_000_000)
    assert "Cassandra: verify: 1,000,000 / 100,000 quotes = 2.53 (the goal is set" in text
    assert "GROWS" not in text and "flat" not in text


def test_a_verify_measure_is_the_median_run_with_every_runs_seconds(monkeypatch) -> None:
    from bench import run

    runs = iter([(22.4, 98.0), (17.1, 237.0), (20.4, 100.0)])

    def once(flow: str, target: str) -> Measure:
        seconds, rss = next(runs)
        return Measure(target, f"furet verify ({flow})", 2_000_000, seconds, "2 tables", rss)

    monkeypatch.setattr(run, "cpu_seconds", lambda: {})
    monkeypatch.setattr(run, "_verify_once", once)
    measure = run.furet_verify("cassandra_prod", "verify Cassandra")
    assert measure.seconds == 20.4 and measure.peak_rss_mib == 237.0
    assert measure.detail == "2 tables; median of 3 runs: 17.1, 20.4, 22.4 s"


def test_a_verify_run_says_how_long_its_tables_took_against_its_own_seconds(
        monkeypatch) -> None:
    """The tables' seconds (each counting its checksums run ahead during the previous
    table's ring scan) next to the verify's: what the overlap saved, in every bench."""
    import json

    from bench import run
    from bench.lab import RemoteRun

    report = {"seconds": 21.04, "tables": [
        {"source_rows": 1_000_000, "missing": 0, "extra": 1, "different": 2,
         "quarantined": 3, "seconds": 12.5},
        {"source_rows": 1_000_000, "missing": 4, "extra": 0, "different": 0,
         "quarantined": 0, "seconds": 13.25}]}
    asked: list[tuple[str, ...]] = []

    def remote(*args: str, ok_exits: tuple[int, ...] = (0,)) -> RemoteRun:
        asked.append(args)
        return RemoteRun(list(args), json.dumps(report), 21.9, 240.1)

    monkeypatch.setattr(run, "furet_on_etl1", remote)
    measure = run._verify_once("cassandra_prod", "verify Cassandra")
    assert asked == [("verify", "--flow", "cassandra_prod", "--json")]
    assert (measure.rows, measure.seconds, measure.peak_rss_mib) == (2_000_000, 21.9, 240.1)
    assert measure.detail == ("2 tables, 7 differing, 3 quarantined rows, the tables' "
                              "25.8 s in 21.0 s")


def test_skip_baselines_runs_furets_measures_at_each_size_and_no_baseline(
        monkeypatch, tmp_path) -> None:
    """make bench BENCH_OPTS=--skip-baselines (the 5 M point without the hour of dump tools):
    furet's measures at the main size and at each growth size, the growth table, no
    baseline and no composite-key rounds."""
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from bench import run

    calls: list[str] = []
    monkeypatch.setattr(run, "console", Console(file=io.StringIO(), width=200))
    monkeypatch.setattr(run, "endpoints", lambda: None)
    monkeypatch.setattr(run, "prepare", lambda q, reseed: calls.append(f"prepare {q}") or {})

    def measures(galera: bool, cassandra: bool) -> list[Measure]:
        calls.append("furet")
        return [Measure("Galera", "furet round 1 (runtime)", 10, 1.0, "", 50.0)]

    monkeypatch.setattr(run, "furet_measures", measures)
    for name in ("mysqldump_into_galera", "mydumper_into_galera", "pt_table_sync",
                 "dsbulk_into_cassandra"):
        monkeypatch.setattr(run.baselines, name, lambda *a, n=name: calls.append(n))
    monkeypatch.setattr(run, "composite_rounds", lambda lines: calls.append("composite") or [])
    monkeypatch.setattr(run, "REPO", tmp_path)
    monkeypatch.setattr(run, "draw_with_own_python", lambda report, png: None)
    result = CliRunner().invoke(run.main, ["--quotes", "1000", "--growth", "5000",
                                           "--skip-baselines"])
    assert result.exit_code == 0, result.output
    assert calls == ["prepare 1000", "furet", "prepare 5000", "furet"]
    report = json.loads((tmp_path / "reports" / "bench.json").read_text())
    assert [p["quotes"] for p in report["growth"]] == [1000, 5000] and not report["ratios"]


def _stat(tid: int, name: str, utime: int, stime: int) -> str:
    """A /proc stat line of thread or process ``tid`` (fields 3-13 as the kernel fills
    them, then utime and stime in clock ticks, then the rest)."""
    return (f"{tid} ({name}) S 1 {tid} {tid} 0 -1 4194560 255343 5884 37 0 {utime} {stime} "
            "2 1 20 0 142 0 7410 4294967295 1234")


def test_a_jvms_stat_gives_its_cpu_and_its_jit_compilers(monkeypatch) -> None:
    """The process's own line first (its threads' CPU, exited ones included), then each
    thread's: the C1 and C2 compiler threads are told from the others by name, even one
    whose name holds a space, parentheses or a digit."""
    from bench.lab import parse_jvm_stat

    text = "\n".join([_stat(4985, "java", 4213, 765),
                      _stat(4985, "java", 1, 0),
                      _stat(5001, "C2 CompilerThre", 900, 40),
                      _stat(5002, "C1 CompilerThre", 150, 10),
                      _stat(5010, "MutationStage-1", 700, 30),
                      _stat(5011, "a (b) 2", 5, 5)]) + "\n"
    jvm = parse_jvm_stat(text, 100.0)
    assert jvm.pid == 4985 and jvm.seconds == pytest.approx(49.78)
    assert jvm.compilers == pytest.approx({5001: 9.4, 5002: 1.6})


def test_jit_seconds_counts_each_compiler_thread_and_a_restarted_jvm_from_zero() -> None:
    from bench.lab import JvmCpu, jit_seconds

    before = {"cassandra1": JvmCpu(10, 100.0, {11: 20.0, 12: 5.0}),
              "cassandra2": JvmCpu(20, 80.0, {21: 30.0})}
    after = {"cassandra1": JvmCpu(10, 110.0, {11: 26.0, 12: 5.5, 13: 0.5}),  # 13: new thread
             "cassandra2": JvmCpu(22, 9.0, {23: 4.0})}                       # restarted
    jit, total = jit_seconds(before, after)
    assert jit == pytest.approx(6.0 + 0.5 + 0.5 + 4.0)
    assert total == pytest.approx(10.0 + 9.0)


def _one_percent(monkeypatch, shares: list[float], seconds: list[float],
                 cassandra: bool = True) -> list[Measure]:
    """one_percent_rounds with Cassandra rounds of ``seconds`` whose ring JIT shares are
    ``shares`` (Galera rounds of 1.0 s), with no lab; ``cassandra=False``: Galera only
    (the ring never read)."""
    from bench import run

    ring_rounds = iter(zip(shares, seconds, strict=True))
    readings = iter(range(1000))
    current: dict[str, float] = {}

    def incremental(flow: str, target: str, changed: int) -> Measure:
        if target == "Cassandra":
            current["share"], s = next(ring_rounds)
            return Measure(target, "furet 1 % round", changed, s, "10,000 written", 68.0)
        return Measure(target, "furet 1 % round", changed, 1.0, "10,000 written", 43.0)

    monkeypatch.setattr(run, "touch_one_percent", lambda: 10_000)
    monkeypatch.setattr(run, "quiet_ring", lambda: None)
    monkeypatch.setattr(run, "cpu_seconds", lambda: {})
    monkeypatch.setattr(run, "incremental_round", incremental)

    def ring() -> int:
        assert cassandra, "Galera's rounds alone read the ring"
        return next(readings)

    monkeypatch.setattr(run, "ring_jvm_cpu", ring)
    monkeypatch.setattr(run, "jit_seconds",
                        lambda before, after: (10.0 * current["share"], 10.0))
    monkeypatch.setattr(run, "_say", lambda text: None)
    return run.one_percent_rounds(True, cassandra)


def test_one_percent_rounds_go_on_while_the_rings_jit_takes_most_of_its_cpu(
        monkeypatch) -> None:
    """The rounds in which the ring's JIT compilers took half of its CPU or more are
    warm-up: measured are the last three once all three are warm; every round is in the
    detail with its share, and the first round's seconds are kept."""
    galera, cassandra = _one_percent(
        monkeypatch, [0.58, 0.59, 0.56, 0.42, 0.2, 0.3],
        [11.2, 7.3, 5.5, 3.8, 3.2, 3.3])
    assert cassandra.seconds == 3.3 and cassandra.first_seconds == 11.2
    assert cassandra.detail == (
        "10,000 written; median of the last 3 of the runs in order: 11.2 (58% JIT), "
        "7.3 (59% JIT), 5.5 (56% JIT), 3.8 (42% JIT), 3.2 (20% JIT), 3.3 (30% JIT) s")
    assert galera.seconds == 1.0 and "of the runs in order: 1.0, 1.0, 1.0, 1.0, 1.0, 1.0 s" \
        in galera.detail


def test_one_percent_rounds_stop_at_the_most_rounds_even_if_the_jit_never_settles(
        monkeypatch) -> None:
    from bench import run

    rounds = run.ONE_PERCENT_MAX_RUNS
    _, cassandra = _one_percent(monkeypatch, [0.6] * rounds,
                                [float(s) for s in range(rounds, 0, -1)])
    assert cassandra.seconds == 2.0 and cassandra.first_seconds == float(rounds)
    assert cassandra.detail.count("60% JIT") == rounds


def test_a_warm_ring_is_measured_in_three_rounds(monkeypatch) -> None:
    _, cassandra = _one_percent(monkeypatch, [0.3, 0.2, 0.1], [3.0, 2.0, 4.0])
    assert cassandra.seconds == 3.0 and cassandra.first_seconds == 3.0


def test_galera_alone_is_measured_in_three_rounds_without_reading_the_ring(
        monkeypatch) -> None:
    (galera,) = _one_percent(monkeypatch, [], [], cassandra=False)
    assert galera.seconds == 1.0 and galera.detail.endswith("runs in order: 1.0, 1.0, 1.0 s")
