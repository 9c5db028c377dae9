"""`fab rehearsal`: the whole migration on the lab, from an empty legacy to a frozen final
round, with web-app traffic running until the freeze (what ``make demo`` shows).

Steps, each a ``furet`` command on the ETL host over SSH (see fabric_tasks.execute):

1. legacy writable again (a previous rehearsal ended frozen), legacy schemas re-created and
   seeded with ``quotes`` quotes; target schemas and Cassandra tables emptied, ledger
   forgotten;
2. ``furet legacy traffic`` started on its own SSH connection (the web app's account);
3. rounds 1..``rounds`` of every flow (runtime, cassandra_prod, then rt_bo, which reads the
   target runtime), under that traffic;
4. ``furet legacy freeze`` (traffic stops: the legacy is read-only), then the final round of
   every flow, then ``furet status``.

The legacy stays read-only at the end, as after a real cutover (``fab unfreeze`` undoes
it). If a step fails, the legacy is frozen and unfrozen once to stop the traffic, and the
rehearsal stops there with the failed step named.

Destructive (it drops the legacy schemas): it runs only where the ETL host's inventory
sets ``furet_rehearsal_allowed: true`` (the lab does; production must not).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from migration import fabric_tasks
from migration.contract import argv
from migration.errors import FuretError
from migration.inventory import InventoryHost

FLOWS = ("runtime", "cassandra_prod", "rt_bo")
ALLOW_VAR = "furet_rehearsal_allowed"
TRAFFIC_MAX_S = 3600  # the freeze stops it long before; a bound if the controller dies


@dataclass(frozen=True)
class Step:
    title: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class RehearsalPlan:
    setup: tuple[Step, ...]
    traffic: Step
    rounds: tuple[Step, ...]
    freeze: Step
    final: tuple[Step, ...]
    report: Step

    def all_steps(self) -> list[Step]:
        return [*self.setup, self.traffic, *self.rounds, self.freeze, *self.final, self.report]


def plan(quotes: int, rounds: int = 3, traffic_rate: float = 30.0,
         flows: Sequence[str] = FLOWS, seed: int = 42) -> RehearsalPlan:
    if quotes < 1:
        raise FuretError("--quotes must be 1 or more")
    if rounds < 1:
        raise FuretError("--rounds must be 1 or more (round 1 is the bulk copy)")
    if traffic_rate <= 0:
        raise FuretError("--rate must be above 0 transactions per second")
    setup = (
        Step("legacy writable", tuple(argv("unfreeze"))),
        Step("legacy schemas re-created", ("legacy", "init", "--drop")),
        Step(f"legacy seeded with {quotes:,} quotes",
             ("legacy", "seed", "--quotes", str(quotes), "--seed", str(seed))),
        Step("target schemas re-created, ledger emptied", ("target", "init", "--drop")),
        Step("Cassandra query tables emptied", ("cassandra", "init", "--truncate")),
    )
    traffic = Step(f"web-app traffic at {traffic_rate:g} tx/s until the freeze",
                   ("legacy", "traffic", "--rate", f"{traffic_rate:g}",
                    "--duration", str(TRAFFIC_MAX_S)))
    round_steps = tuple(Step(f"round {n} of {flow}", tuple(argv("round", {"flow": flow})))
                        for n in range(1, rounds + 1) for flow in flows)
    final = tuple(Step(f"final round of {flow}",
                       tuple(argv("round", {"flow": flow, "final": True})))
                  for flow in flows)
    return RehearsalPlan(setup, traffic, round_steps,
                         Step("legacy frozen", tuple(argv("freeze"))), final,
                         Step("ledger", tuple(argv("status"))))


def check_allowed(host: InventoryHost) -> None:
    if host.variables.get(ALLOW_VAR) is not True:
        raise FuretError(f"host {host.name}: the rehearsal drops and re-seeds the legacy "
                         f"schemas; it runs only where the inventory sets {ALLOW_VAR}: true "
                         "(the lab does)")


Runner = Callable[[str, Sequence[str]], fabric_tasks.TaskReport]


@dataclass
class RehearsalReport:
    steps: list[tuple[str, float, bool]] = field(default_factory=list)
    traffic_ok: bool | None = None
    seconds: float = 0.0
    failed_step: str = ""

    def lines(self) -> list[str]:
        out = [f"fab rehearsal: {title}: {'ok' if ok else 'FAILED'} ({seconds:.1f}s)"
               for title, seconds, ok in self.steps]
        verdict = (f"FAILED at '{self.failed_step}'" if self.failed_step
                   else "legacy frozen after the final round; `fab unfreeze` to write again")
        out.append(f"fab rehearsal: {len(self.steps)} steps in {self.seconds:.1f}s, {verdict}")
        return out


class Rehearsal:
    """Runs a :class:`RehearsalPlan` with ``run(task, args)`` (one ``furet`` command on the
    ETL host, output streamed) and the traffic on a thread of its own."""

    def __init__(self, steps: RehearsalPlan, run: Runner, out: TextIO | None = None) -> None:
        self.plan = steps
        self.run = run
        self.out = out or sys.stderr
        self.report = RehearsalReport()
        self._traffic: threading.Thread | None = None
        self._traffic_report: list[fabric_tasks.TaskReport] = []

    def _say(self, text: str) -> None:
        print(f"== rehearsal: {text}", file=self.out, flush=True)

    def _step(self, step: Step) -> None:
        self._say(step.title)
        started = time.monotonic()
        result = self.run(step.args[0], step.args)
        ok = not result.failed
        self.report.steps.append((step.title, time.monotonic() - started, ok))
        if not ok:
            self.report.failed_step = step.title
            reason = result.failed[0].reason
            raise FuretError(f"rehearsal step '{step.title}' failed: {reason}")

    def _start_traffic(self) -> None:
        self._say(self.plan.traffic.title)
        self._traffic = threading.Thread(
            target=lambda: self._traffic_report.append(self.run("traffic",
                                                                self.plan.traffic.args)),
            name="furet-rehearsal-traffic", daemon=True)
        self._traffic.start()

    def _stop_traffic(self, timeout_s: float = 90.0) -> None:
        if self._traffic is None:
            return
        self._traffic.join(timeout_s)
        if self._traffic.is_alive():
            raise FuretError(f"the traffic did not stop within {timeout_s:.0f}s of the freeze")
        self.report.traffic_ok = bool(self._traffic_report) and not self._traffic_report[0].failed

    def execute(self) -> RehearsalReport:
        started = time.monotonic()
        try:
            for step in self.plan.setup:
                self._step(step)
            self._start_traffic()
            for step in self.plan.rounds:
                self._step(step)
            self._step(self.plan.freeze)
            self._stop_traffic()
            if not self.report.traffic_ok:
                raise FuretError("the traffic generator failed (see its [traffic] lines)")
            for step in self.plan.final:
                self._step(step)
            self._step(self.plan.report)
        except FuretError:
            self._abort_traffic()
            raise
        finally:
            self.report.seconds = time.monotonic() - started
        return self.report

    def _abort_traffic(self) -> None:
        """After a failure: a freeze stops the traffic, an unfreeze gives the legacy back."""
        if self._traffic is None or not self._traffic.is_alive():
            return
        self._say("stopping the traffic after the failure (freeze, then unfreeze)")
        self.run("freeze", tuple(argv("freeze")))
        self._traffic.join(90)
        self.run("unfreeze", tuple(argv("unfreeze")))


def run_rehearsal(inventory: str, patterns: Sequence[str], steps: RehearsalPlan,
                  out: TextIO | None = None, err: TextIO | None = None) -> RehearsalReport:
    """Pick the one ETL host, check it allows rehearsals, run the plan on it."""
    host = fabric_tasks.select("rehearsal", inventory, patterns)[0]
    check_allowed(host)
    out = out or sys.stdout
    err = err or sys.stderr

    def run(task: str, args: Sequence[str]) -> fabric_tasks.TaskReport:
        prefix = "[traffic] " if task == "traffic" else ""
        return fabric_tasks.run_on_hosts(
            task, [host], list(args),
            out=fabric_tasks.LinePrefixer(out, prefix) if prefix else out,
            err=fabric_tasks.LinePrefixer(err, prefix) if prefix else err)

    return Rehearsal(steps, run, err).execute()
