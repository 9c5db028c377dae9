"""`make bench`: furet's round 1 on the lab next to the tools a DBA would reach for.

    python -m bench.run [--quotes 1000000] [--growth 100000] [--skip-cassandra] [--reseed]

1. legacy1 seeded with ``--quotes`` quotes (and their customers and offers) unless it
   already holds exactly that many (``--reseed`` forces it); target and Cassandra emptied;
2. Galera: ``furet round --flow runtime`` (round 1, on etl1 through HAProxy) next to
   ``mysqldump | mysql`` and mydumper + myloader of the same three tables into the same
   cluster; ``furet verify`` next to ``pt-table-sync --print``;
3. Cassandra: ``furet round --flow cassandra_prod`` (round 1: both query tables) next to a
   TSV export loaded with DataStax Bulk Loader (``dsbulk load``) into twin tables; ``furet
   verify`` of the flow;
4. 1 % of the quotes updated, then each flow's next round (its time against round 1's),
   round after round as a migration's catch-up runs them, until the ring's JIT compilers no
   longer take most of its CPU; the median of the last three kept, the first one's ratio
   printed too;
5. a schema furet did not write: ``shop.bench_line``, ``--lines`` rows (default 1 M) with a
   composite key (order_id, line_no) and a DATETIME(0) version; its flow generated on etl1
   by ``furet flow init``, its target table by ``furet target schema --apply``; round 1,
   then a round after 1 % of the rows were updated;
6. one table with rows, seconds, rows/s, furet's ratio to each baseline and furet's peak
   RSS (the furet process on etl1, measured by the kernel), and where the CPU went during
   each (seconds per lab host, as podman counts them), also written to reports/bench.json;
7. how the cost grows: furet's own measures of 2-4 again at each ``--growth`` size
   (legacy1 re-seeded at that size), a table of rows/s and peak RSS per size, the peak RSS
   of the largest size against ``--quotes``' (goal: within 20 %), and the chart
   reports/bench.png (:mod:`bench.chart`).

Everything runs in the same invocation on the same lab, one after the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import click
from rich.console import Console
from rich.table import Table

from bench import baselines
from bench.chart import draw_with_own_python
from bench.lab import (
    REPO,
    cpu_seconds,
    endpoints,
    furet_on_etl1,
    jit_seconds,
    put_text,
    ring_jvm_cpu,
    settle_cassandra,
)
from migration.db import connection, query
from migration.engine import ledger

console = Console()


@dataclass
class Measure:
    target: str
    tool: str
    rows: int
    seconds: float
    detail: str = ""
    peak_rss_mib: float | None = None   # furet's (a baseline's is not measured)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per lab host
    first_seconds: float | None = None  # a 1 % round: the first run's, before warm-up

    def profile(self) -> str:
        """Where the CPU went: total, then the hosts that used the most."""
        top = sorted(self.cpu_s.items(), key=lambda kv: -kv[1])
        return (f"{sum(self.cpu_s.values()):.0f} s CPU: " +
                ", ".join(f"{h} {s:.0f}" for h, s in top[:6] if s >= 1))

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _say(text: str) -> None:
    console.print(f"[bold]bench[/] {text}", highlight=False)


def prepare(quotes: int, reseed: bool) -> dict[str, int]:
    lab = endpoints()
    furet_on_etl1("legacy", "unfreeze")
    with connection(lab.legacy) as conn:
        try:
            held = int(query(conn, "SELECT COUNT(*) FROM lf_runtime.quote")[0][0])
        except Exception:  # no schema yet
            held = -1
    if reseed or held != quotes:
        _say(f"seeding legacy1 with {quotes:,} quotes (it holds {max(held, 0):,})")
        furet_on_etl1("legacy", "init", "--drop")
        seeded = furet_on_etl1("legacy", "seed", "--quotes", str(quotes), "--json")
        _say(f"seeded in {seeded.seconds:.0f} s: {seeded.json()}")
    else:
        _say(f"legacy1 already holds {quotes:,} quotes: not re-seeded")
    furet_on_etl1("target", "init", "--drop")
    furet_on_etl1("cassandra", "init", "--truncate")
    with connection(lab.legacy) as conn:
        return {t: int(query(conn, f"SELECT COUNT(*) FROM lf_runtime.{t}")[0][0])
                for t in baselines.RUNTIME_TABLES}


def profiled(make: Callable[[], Measure]) -> Measure:
    """``make()``'s measure with the CPU seconds each lab host (and the controller's client
    tools) used meanwhile: the 2 cores are shared by all of them."""
    before = cpu_seconds()
    measure = make()
    after = cpu_seconds()
    measure.cpu_s = {h: round(after[h] - before.get(h, 0.0), 1) for h in sorted(after)
                     if after[h] - before.get(h, 0.0) >= 0.05}
    return measure


def furet_round(flow: str, target: str) -> Measure:
    _say(f"furet round 1 of {flow} on etl1")
    run = furet_on_etl1("round", "--flow", flow, "--json")
    summary = run.json()
    assert summary["round_no"] == 1 and summary["status"] == "done", summary
    rows = int(summary["rows_read"])
    return Measure(target, f"furet round 1 ({flow})", rows, run.seconds,
                   f"{summary['rows_written']:,} written, {summary['rows_quarantined']:,} "
                   f"quarantined; engine {float(summary['seconds']):.1f} s", run.peak_rss_mib)


def baseline(target: str, run: Callable[[], baselines.BaselineResult],
             rows: int | None = None) -> Measure:
    """A baseline's measure; one that fails is reported as failed, the bench goes on."""
    try:
        base = run()
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - the table says what failed
        return Measure(target, "baseline FAILED", 0, 0.0, str(exc).splitlines()[0][:300])
    return Measure(target, base.name, base.rows if rows is None else rows, base.seconds,
                   base.detail)


VERIFY_RUNS = 3   # a verify takes 10-30 s on the shared 2 cores: its median of 3 is kept


def furet_verify(flow: str, target: str, runs: int = VERIFY_RUNS) -> Measure:
    """The median of ``runs`` verifies (its CPU profile), the runs' seconds in its detail;
    the peak RSS is the largest of the runs'."""
    done = sorted((profiled(lambda: _verify_once(flow, target)) for _ in range(runs)),
                  key=lambda m: m.seconds)
    median = done[len(done) // 2]
    median.peak_rss_mib = max((m.peak_rss_mib for m in done if m.peak_rss_mib is not None),
                              default=None)
    if runs > 1:
        median.detail += (f"; median of {runs} runs: "
                          + ", ".join(f"{m.seconds:.1f}" for m in done) + " s")
    return median


def _verify_once(flow: str, target: str) -> Measure:
    _say(f"furet verify --flow {flow} on etl1")
    run = furet_on_etl1("verify", "--flow", flow, "--json", ok_exits=(0, 1))
    report = run.json()
    rows = sum(int(t["source_rows"]) for t in report["tables"])
    differing = sum(int(t["missing"]) + int(t["extra"]) + int(t["different"])
                    for t in report["tables"])
    quarantined = sum(int(t["quarantined"]) for t in report["tables"])
    # each table's seconds count the time its checksums ran ahead, during the previous
    # table's ring scan: their sum over the verify's own seconds shows that overlap
    tables_s = sum(float(t["seconds"]) for t in report["tables"])
    return Measure(target, f"furet verify ({flow})", rows, run.seconds,
                   f"{len(report['tables'])} tables, {differing:,} differing, "
                   f"{quarantined:,} quarantined rows, the tables' {tables_s:.1f} s in "
                   f"{float(report['seconds']):.1f} s", run.peak_rss_mib)


BENCH_LINE = """CREATE TABLE shop.bench_line (
  order_id INT UNSIGNED NOT NULL, line_no SMALLINT UNSIGNED NOT NULL,
  sku VARCHAR(20) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL,
  updated_at DATETIME NOT NULL, PRIMARY KEY (order_id, line_no), KEY (updated_at))"""
BENCH_FLOW = "/tmp/furet-bench-shop.yml"


def composite_rounds(lines: int) -> list[Measure]:
    """Round 1 and a round after 1 % updates of a composite-key, DATETIME(0) table."""
    lab = endpoints()
    _say(f"shop.bench_line: {lines:,} rows, key (order_id, line_no), DATETIME(0) version")
    with connection(lab.legacy) as conn:
        query(conn, "DROP TABLE IF EXISTS shop.bench_line")
        query(conn, BENCH_LINE)
        query(conn, "INSERT INTO shop.bench_line SELECT seq DIV 4 + 1, seq MOD 4 + 1, "
                    "CONCAT('SKU-', seq MOD 997), 1 + seq MOD 7, (seq MOD 10000) / 100, "
                    "UTC_TIMESTAMP() - INTERVAL 1 HOUR - INTERVAL (seq MOD 3600) SECOND "
                    f"FROM shop.seq_0_to_{lines - 1}")
    with connection(lab.target) as conn:
        query(conn, "DROP TABLE IF EXISTS shop.bench_line")
        ledger.forget(conn)  # the flow's round 1 again (the bench's other flows are done)
    flow = furet_on_etl1("flow", "init", "--source-db", "shop", "--tables", "bench_line",
                         "--target", "mariadb:shop", "--name", "shop_bench")
    put_text("etl1", BENCH_FLOW, flow.stdout)
    furet_on_etl1("target", "schema", "--flow", BENCH_FLOW, "--apply")
    first = furet_round(BENCH_FLOW, "composite key")
    first.tool = "furet round 1 (shop.bench_line)"
    changed = update_legacy("UPDATE shop.bench_line SET qty = qty + 1, "
                            "updated_at = UTC_TIMESTAMP() WHERE order_id % 100 = 0")
    _say(f"furet round 2 of {BENCH_FLOW} after {changed:,} updated rows")
    run = furet_on_etl1("round", "--flow", BENCH_FLOW, "--json")
    summary = run.json()
    second = Measure("composite key", "furet round 2 (1 % updated)",
                     int(summary["rows_written"]), run.seconds,
                     f"{summary['rows_read']:,} read in the window, {changed:,} updated; "
                     f"engine {float(summary['seconds']):.1f} s", run.peak_rss_mib)
    return [first, second]


SAFETY_LAG_S = 5.0  # rounds.safety_lag_ms of etl1's furet.yml (the default, 5,000)


def update_legacy(sql: str) -> int:
    """``sql`` (an UPDATE) run on legacy1, then a wait past the rounds' safety lag so that
    the next round's window holds the rows it changed; how many it changed."""
    with connection(endpoints().legacy) as conn:
        query(conn, sql)
        changed = int(query(conn, "SELECT ROW_COUNT()")[0][0])
    time.sleep(SAFETY_LAG_S + 1)
    return changed


def touch_one_percent() -> int:
    """1 % of the quotes updated on legacy1: a new premium, a newer version."""
    return update_legacy(
        "UPDATE lf_runtime.quote SET premium_cents = IFNULL(premium_cents, 0) + 1, "
        "updated_ts = GREATEST(updated_ts + 1, UNIX_TIMESTAMP(NOW(3)) * 1000) "
        "WHERE id % 100 = 0")


def incremental_round(flow: str, target: str, changed: int) -> Measure:
    """The round after ``touch_one_percent``: its time against round 1's is the goal."""
    _say(f"furet round of {flow} after {changed:,} updated quotes (1 %)")
    run = furet_on_etl1("round", "--flow", flow, "--json")
    summary = run.json()
    return Measure(target, f"furet 1 % round ({flow})", int(summary["rows_read"]), run.seconds,
                   f"{summary['rows_written']:,} written; engine "
                   f"{float(summary['seconds']):.1f} s", run.peak_rss_mib)


def furet_measures(galera: bool, cassandra: bool) -> list[Measure]:
    """furet's own measures at the size legacy1 holds: round 1, verify and a 1 % round,
    into Galera and into Cassandra (the growth table's points)."""
    out = []
    if galera:
        out.append(profiled(lambda: furet_round("runtime", "Galera")))
        out.append(furet_verify("runtime", "verify Galera"))
    if cassandra:
        quiet_ring()
        out.append(profiled(cassandra_round))
        quiet_ring()
        out.append(furet_verify("cassandra_prod", "verify Cassandra"))
    return out + one_percent_rounds(galera, cassandra)


ONE_PERCENT_RUNS = 3       # the measured 1 % rounds: the median of the last 3 is kept
ONE_PERCENT_MAX_RUNS = 10  # catch-up rounds at most before those, while the ring warms up
# A round into Cassandra is warm once the ring's JIT compilers no longer take most of its
# JVMs' CPU during it (on the lab: 49-61 % in the first four rounds after the SSTable
# round 1, 17-42 % in the next ones).
JIT_WARM_SHARE = 0.5


def one_percent_rounds(galera: bool, cassandra: bool) -> list[Measure]:
    """Catch-up rounds as a migration runs them, one after the other, 1 % of the quotes
    updated before each; the median of the last ``ONE_PERCENT_RUNS`` is kept, every run's
    seconds in its detail. A round into Cassandra after an SSTable round 1 is the ring's
    first CQL write since it started: its JVMs' JIT compilers then compile the write path,
    which on the lab's shared cores takes more of the ring's CPU than the writes. The
    rounds go on (at most ``ONE_PERCENT_MAX_RUNS``) until the last ``ONE_PERCENT_RUNS``
    were warm (``JIT_WARM_SHARE``); each run's compiler share is in the detail, and the
    first round's seconds are kept with the measure (``first_seconds``)."""
    runs: dict[str, list[Measure]] = {"Galera": [], "Cassandra": []}
    shares: list[float] = []
    for count in range(1, ONE_PERCENT_MAX_RUNS + 1):
        changed = touch_one_percent()
        if galera:
            runs["Galera"].append(
                profiled(partial(incremental_round, "runtime", "Galera", changed)))
        if cassandra:
            quiet_ring()
            before = ring_jvm_cpu()
            runs["Cassandra"].append(profiled(partial(
                incremental_round, "cassandra_prod", "Cassandra", changed)))
            jit, jvm = jit_seconds(before, ring_jvm_cpu())
            shares.append(jit / jvm if jvm > 0 else 0.0)
            _say(f"the ring's JIT compilers: {jit:.1f} s of its JVMs' {jvm:.1f} s of CPU")
        warm = all(s < JIT_WARM_SHARE for s in shares[-ONE_PERCENT_RUNS:])
        if count >= ONE_PERCENT_RUNS and warm:
            break
    out = []
    for target, done in runs.items():
        if not done:
            continue
        kept = done[-ONE_PERCENT_RUNS:]
        median = sorted(kept, key=lambda m: m.seconds)[len(kept) // 2]
        median.peak_rss_mib = max((m.peak_rss_mib for m in done if m.peak_rss_mib is not None),
                                  default=None)
        median.first_seconds = done[0].seconds
        notes = [f" ({share:.0%} JIT)" for share in shares] if target == "Cassandra" \
            else [""] * len(done)
        in_order = ", ".join(f"{m.seconds:.1f}{note}"
                             for m, note in zip(done, notes, strict=True))
        median.detail += (f"; median of the last {len(kept)} of the runs in order: "
                          f"{in_order} s")
        out.append(median)
    return out


def quiet_ring() -> None:
    """Each Cassandra measure starts once the ring has compacted what the one before wrote."""
    waited = settle_cassandra()
    if waited >= 1:
        _say(f"waited {waited:.0f} s for the ring's pending compactions")


def cassandra_round() -> Measure:
    measure = furet_round("cassandra_prod", "Cassandra")
    # Each quote is one row in each of the two query tables.
    measure.rows *= 2
    measure.detail = "2 CQL rows per quote; " + measure.detail
    return measure


GROWTH_SHARE = 0.20   # peak RSS at the largest size within 20 % of the reference size's
# The main table's rows, grouped by what is measured (furet's measure first in each).
TARGETS = ("Galera", "verify Galera", "Cassandra", "verify Cassandra", "composite key")


def growth_table(points: list[dict], main_quotes: int) -> None:
    """rows/s and peak RSS of each furet measure at each size, and the RSS check: the
    largest size against ``main_quotes`` (the 5 M run: against 1 M); when ``main_quotes``
    is the largest, its ratio to the smallest is shown without a verdict (at 100,000
    quotes a scan's pages and the SSTable helper's heap are not full yet)."""
    sizes = sorted({p["quotes"] for p in points})
    table = Table("measure", *[f"{q:,} quotes" for q in sizes],
                  title="how furet's cost grows: rows/s (peak RSS MiB)")
    by = {(p["measure"], p["quotes"]): p for p in points}
    for name in dict.fromkeys(p["measure"] for p in points):
        cells = []
        for q in sizes:
            p = by.get((name, q))
            cells.append("" if p is None else
                         f"{p['rows_per_second']:,} ({p['peak_rss_mib'] or 0:,.0f})")
        table.add_row(name, *cells)
    console.print(table)
    largest = max(sizes)
    reference = main_quotes if largest > main_quotes else min(sizes)
    if largest > reference:
        for name in dict.fromkeys(p["measure"] for p in points):
            base, big = by.get((name, reference)), by.get((name, largest))
            if base and big and base["peak_rss_mib"] and big["peak_rss_mib"]:
                ratio = big["peak_rss_mib"] / base["peak_rss_mib"]
                if reference == main_quotes:
                    verdict = "flat" if ratio <= 1 + GROWTH_SHARE else "GROWS"
                    said = f"{verdict}: goal within {GROWTH_SHARE:.0%}"
                else:  # below the main size a reader's page or a JVM's heap still fills
                    said = "the goal is set above the main size: BENCH_GROWTH=...,5000000"
                console.print(f"  peak RSS {name}: {largest:,} / {reference:,} quotes = "
                              f"{ratio:.2f} ({said})", highlight=False)


def _points(measures: list[Measure], quotes: int) -> list[dict]:
    return [{"quotes": quotes, "measure": f"{m.target}: {m.tool}", "rows": m.rows,
             "seconds": round(m.seconds, 1), "rows_per_second": round(m.rate),
             "peak_rss_mib": m.peak_rss_mib}
            for m in measures if m.tool.startswith("furet") and m.target != "composite key"]


@click.command()
@click.option("--quotes", type=click.IntRange(1000), default=1_000_000, show_default=True)
@click.option("--reseed", is_flag=True, help="Seed legacy1 again even if it holds --quotes.")
@click.option("--skip-cassandra", is_flag=True, help="Galera only.")
@click.option("--skip-galera", is_flag=True, help="Cassandra only.")
@click.option("--lines", type=click.IntRange(1000), default=1_000_000, show_default=True,
              help="Rows of the composite-key table (shop.bench_line).")
@click.option("--growth", default="100000", show_default=True,
              help="Other sizes (quotes, comma-separated; '' = none) at which furet's own "
                   "measures run again, for the growth table and chart.")
@click.option("--skip-baselines", is_flag=True,
              help="furet's own measures only (no dump tools, dsbulk, pt-table-sync or "
                   "composite-key table): the growth table's points, e.g. the 5 M point.")
def main(quotes: int, reseed: bool, skip_cassandra: bool, skip_galera: bool,
         lines: int, growth: str, skip_baselines: bool = False) -> None:
    started = time.monotonic()
    try:
        sizes = sorted({int(q) for q in growth.replace(" ", "").split(",") if q} - {quotes})
    except ValueError:
        sizes = [0]
    if any(size < 1000 for size in sizes):
        raise click.BadParameter(f"{growth!r}: sizes are whole numbers of quotes, 1000 or "
                                 "more", param_hint="--growth")
    lab = endpoints()
    counts = prepare(quotes, reseed)
    _say(f"legacy rows: {counts}")
    # furet's measures first, as at the growth sizes (no baseline's load before them)
    measures = furet_measures(not skip_galera, not skip_cassandra)
    if skip_baselines:
        skip_galera_baselines = skip_cassandra_baselines = True
    else:
        skip_galera_baselines, skip_cassandra_baselines = skip_galera, skip_cassandra
    if not skip_galera_baselines:
        _say("mysqldump | mysql into the same Galera cluster")
        measures.append(profiled(lambda: baseline(
            "Galera", lambda: baselines.mysqldump_into_galera(lab))))
        _say("mydumper, then myloader into the same Galera cluster")
        measures.append(profiled(lambda: baseline(
            "Galera", lambda: baselines.mydumper_into_galera(lab))))
        _say("pt-table-sync --print over the same tables")
        verify = next(m for m in measures if m.target == "verify Galera")
        measures.append(profiled(lambda: baseline(
            verify.target, lambda: baselines.pt_table_sync(lab), verify.rows)))
    if not skip_cassandra_baselines:
        _say("TSV export + dsbulk load into twin tables")
        quiet_ring()
        measures.append(profiled(lambda: baseline(
            "Cassandra", lambda: baselines.dsbulk_into_cassandra(lab))))
    if not skip_galera_baselines:
        measures.extend(composite_rounds(lines))
    measures.sort(key=lambda m: TARGETS.index(m.target))
    points = _points(measures, quotes)
    for size in sizes:
        prepare(size, reseed=False)
        _say(f"furet's own measures at {size:,} quotes (growth)")
        points += _points(furet_measures(not skip_galera, not skip_cassandra), size)
    table = Table("target", "tool", "rows", "seconds", "rows/s", "furet / baseline",
                  "peak RSS MiB",
                  title=f"make bench: {quotes:,} quotes on the lab")
    report: dict = {"quotes": quotes, "legacy_rows": counts, "measures": [], "ratios": {},
                    "growth": points}
    for m in measures:
        furet = next(x for x in measures if x.target == m.target and x.tool.startswith("furet"))
        ratio = ("" if m.tool.startswith("furet") or not m.rate
                 else f"{furet.rate / m.rate:.2f}x")
        if ratio:
            report["ratios"][f"{m.target}: furet vs {m.tool}"] = round(furet.rate / m.rate, 3)
        table.add_row(m.target, m.tool, f"{m.rows:,}", f"{m.seconds:.1f}", f"{m.rate:,.0f}",
                      ratio, "" if m.peak_rss_mib is None else f"{m.peak_rss_mib:,.0f}")
        report["measures"].append({**asdict(m), "rows_per_second": round(m.rate)})
    console.print(table)
    for m in measures:
        console.print(f"  {m.tool}: {m.detail}", highlight=False)
    for target in ("Galera", "Cassandra"):
        first = next((m for m in measures if m.target == target
                      and m.tool.startswith("furet round 1")), None)
        inc = next((m for m in measures if m.target == target
                    and m.tool.startswith("furet 1 %")), None)
        if first and inc and first.seconds:
            share = inc.seconds / first.seconds
            report["ratios"][f"{target}: 1 % round / round 1"] = round(share, 4)
            console.print(f"  {target}: the 1 % round took {share:.1%} of round 1's time "
                          f"(goal under 5 %)", highlight=False)
            if inc.first_seconds is not None:
                cold = inc.first_seconds / first.seconds
                report["ratios"][f"{target}: first 1 % round / round 1"] = round(cold, 4)
                console.print(f"  {target}: the first 1 % round after round 1 took "
                              f"{cold:.1%}", highlight=False)
    _say("where the CPU went (seconds per lab host; controller: the baselines' clients)")
    for m in measures:
        if m.cpu_s:
            console.print(f"  {m.target}, {m.tool}, {m.seconds:.0f} s: {m.profile()}",
                          highlight=False)
    growth_table(points, quotes)
    report["seconds"] = round(time.monotonic() - started, 1)
    out = REPO / "reports" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    png = out.with_suffix(".png")
    draw_with_own_python(out, png)
    _say(f"done in {report['seconds']:.0f} s; {out.relative_to(REPO)}, {png.relative_to(REPO)}")


if __name__ == "__main__":
    main()
