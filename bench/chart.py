"""`make bench`'s chart of how furet's cost grows: reports/bench.json -> reports/bench.png.

Drawn with matplotlib (the plotting library everyone reads), installed only for the bench,
in a venv of its own under .cache/bench (``ensure_python``): the project's venv and
`make test` never carry it. This module imports nothing of furet (bench.steps is the
standard library only), so that venv's python runs it as ``python -m bench.chart JSON PNG``.

Two panels over the table size (quotes, log scale): rows/s of each furet measure, and
furet's peak RSS for the same measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.steps import run_or_exit

MATPLOTLIB = "matplotlib==3.10.8"
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "bench" / "chart-venv"


def ensure_python() -> Path:
    """The chart venv's python, with matplotlib (installed once per pinned version)."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".{MATPLOTLIB}"
    if not stamp.exists():
        run_or_exit([sys.executable, "-m", "venv", "--clear", str(VENV)], "the chart venv")
        run_or_exit([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     MATPLOTLIB], f"installing {MATPLOTLIB}")
        stamp.touch()
    return python


def draw_with_own_python(report: Path, png: Path) -> None:
    """Draw ``png`` from ``report`` in the chart venv (from the project's python)."""
    run_or_exit([str(ensure_python()), "-m", "bench.chart", str(report), str(png)],
                f"drawing {png.name}", cwd=REPO)


def series(growth: list[dict]) -> dict[str, list[tuple[int, float, float | None]]]:
    """measure -> [(quotes, rows/s, peak RSS MiB)] in size order."""
    out: dict[str, list[tuple[int, float, float | None]]] = {}
    for point in sorted(growth, key=lambda p: p["quotes"]):
        out.setdefault(point["measure"], []).append(
            (int(point["quotes"]), float(point["rows_per_second"]), point.get("peak_rss_mib")))
    return out


def draw(report: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    data = json.loads(report.read_text())
    lines = series(data.get("growth", []))
    if not lines:
        raise SystemExit(f"bench: {report} has no growth points to draw")
    fig, (rate, rss) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for measure, points in lines.items():
        rate.plot([q for q, _, _ in points], [r for _, r, _ in points], marker="o",
                  label=measure)
        measured = [(q, m) for q, _, m in points if m is not None]  # a baseline has none
        rss.plot([q for q, _ in measured], [m for _, m in measured], marker="o", label=measure)
    for axis, title, unit in ((rate, "furet throughput", "rows/s"),
                              (rss, "furet peak RSS", "MiB")):
        axis.set_xscale("log")
        axis.set_xlabel("quotes in legacy1 (log scale)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    rate.legend(fontsize="small")
    fig.suptitle("make bench on the lab: how furet's cost grows")
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    draw(Path(sys.argv[1]), Path(sys.argv[2]))
