"""Test-wide plumbing: figures that tests measure are printed at the end of the run."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO

_FIGURES: list[tuple[str, dict]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest):
    """Call ``figures(**values)`` to report measurements (durations, counts) of a test."""

    def record(**values) -> None:
        _FIGURES.append((request.node.nodeid, values))

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("figures measured by the tests")
    for nodeid, values in _FIGURES:
        terminalreporter.write_line(f"{nodeid}: {json.dumps(values)}")
    out = REPO / "reports"
    out.mkdir(exist_ok=True)
    (out / "test-figures.json").write_text(
        json.dumps([{"test": n, **v} for n, v in _FIGURES], indent=2))
