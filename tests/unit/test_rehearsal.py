"""fab rehearsal: the order of its steps, the traffic thread, the stop on a failure."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence

import pytest

from migration import rehearsal
from migration.errors import FuretError
from migration.fabric_tasks import HostOutcome, TaskReport
from migration.inventory import InventoryHost


class FakeEtlHost:
    """Records the furet commands; the traffic runs until a freeze, like the real one."""

    def __init__(self, fail_on: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.frozen = threading.Event()
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, task: str, args: Sequence[str]) -> TaskReport:
        with self.lock:
            self.calls.append(tuple(args))
        if args[:2] == ("legacy", "traffic"):
            assert self.frozen.wait(10), "traffic never stopped"
        if args[:2] == ("legacy", "freeze"):
            self.frozen.set()
        if args[:2] == ("legacy", "unfreeze"):
            self.frozen.clear()
        ok = tuple(args) != self.fail_on
        return TaskReport(task, [HostOutcome("etl1", ok, 0 if ok else 1,
                                             "" if ok else "exit 1: boom")])


def test_steps_run_in_order_with_the_traffic_until_the_freeze() -> None:
    host = FakeEtlHost()
    steps = rehearsal.plan(quotes=500, rounds=2, traffic_rate=5)
    report = rehearsal.Rehearsal(steps, host, io.StringIO()).execute()
    commands = [" ".join(c) for c in host.calls if c[:2] != ("legacy", "traffic")]
    assert commands == [
        "legacy unfreeze", "legacy init --drop", "legacy seed --quotes 500 --seed 42",
        "target init --drop", "cassandra init --truncate",
        "round --flow runtime", "round --flow cassandra_prod", "round --flow rt_bo",
        "round --flow runtime", "round --flow cassandra_prod", "round --flow rt_bo",
        "legacy freeze",
        "round --flow runtime --final", "round --flow cassandra_prod --final",
        "round --flow rt_bo --final", "status"]
    assert ("legacy", "traffic", "--rate", "5", "--duration", "3600") in host.calls
    assert report.traffic_ok is True and not report.failed_step
    assert len(report.steps) == len(commands)
    assert report.lines()[-1].endswith("`fab unfreeze` to write again")


def test_a_failed_round_stops_the_traffic_and_names_the_step() -> None:
    host = FakeEtlHost(fail_on=("round", "--flow", "cassandra_prod"))
    steps = rehearsal.plan(quotes=10, rounds=3)
    with pytest.raises(FuretError, match="step 'round 1 of cassandra_prod' failed: exit 1: boom"):
        rehearsal.Rehearsal(steps, host, io.StringIO()).execute()
    tail = [" ".join(c) for c in host.calls[-2:]]
    assert tail == ["legacy freeze", "legacy unfreeze"]  # traffic stopped, legacy writable
    assert ("round", "--flow", "rt_bo") not in host.calls


def test_only_inventories_that_allow_it_and_sane_numbers() -> None:
    lab = InventoryHost("etl1", "10.213.0.41", "root", 22, None, ("etl",),
                        {"furet_rehearsal_allowed": True})
    prod = InventoryHost("etl1", "10.0.0.41", "deploy", 22, None, ("etl",), {})
    rehearsal.check_allowed(lab)
    with pytest.raises(FuretError, match="host etl1: .*furet_rehearsal_allowed: true"):
        rehearsal.check_allowed(prod)
    for bad in ({"quotes": 0}, {"quotes": 5, "rounds": 0}, {"quotes": 5, "traffic_rate": 0}):
        with pytest.raises(FuretError):
            rehearsal.plan(**bad)
