"""make bench's CPU profile: podman's CPU times (Go durations) and the line it prints."""

from __future__ import annotations

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
