"""tests/lab/timeline.py: each host's turn read from a rolling playbook's output, and the
longest write pause inside it (the soak tests' per-node figures)."""

from __future__ import annotations

import datetime

from tests.lab.timeline import longest_pause, pauses_per_host, task_windows

OUTPUT = """\
TASK [mariadb_galera : Rolling | Drain from HAProxy: galera1] ******************
Tuesday 01 December 2026  08:00:00 +0000 (0:00:00.100)       0:00:01.000 ******
ok: [galera1]

TASK [mariadb_galera : Rolling | Put back into HAProxy: galera1] ***************
Tuesday 01 December 2026  08:00:30 +0000 (0:00:30.000)       0:00:31.000 ******
ok: [galera1]

TASK [mariadb_galera : Rolling | Drain from HAProxy: galera2] ******************
Tuesday 01 December 2026  08:00:40 +0000 (0:00:10.000)       0:00:41.000 ******
"""


def _at(hh_mm_ss: str) -> float:
    return datetime.datetime.fromisoformat(f"2026-12-01T{hh_mm_ss}+00:00").timestamp()


def test_a_turn_runs_from_the_hosts_first_task_to_the_task_after_its_last() -> None:
    windows = task_windows(OUTPUT, ["galera1", "galera2", "galera3"])
    assert windows["galera1"] == (_at("08:00:00"), _at("08:00:41"))
    assert windows["galera2"][0] == _at("08:00:40")
    assert "galera3" not in windows


def test_the_longest_pause_is_the_longest_that_overlaps_the_turn() -> None:
    windows = {"galera1": (_at("08:00:00"), _at("08:00:41"))}
    pauses = [(_at("07:59:59"), 2.5), (_at("08:00:10"), 1.2), (_at("08:01:00"), 9.0)]
    assert longest_pause(pauses, windows["galera1"]) == 2.5
    assert pauses_per_host(pauses, windows) == {"galera1": 2.5}
    assert longest_pause([], windows["galera1"]) == 0.0
