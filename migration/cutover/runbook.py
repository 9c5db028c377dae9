"""The cutover runbook as data: the steps furet ships (``runbook.yml`` beside this module:
legacy master to Galera; ``runbook-galera-next.yml``: an old Galera cluster to a new one,
``--runbook galera-next``) and the user's hook steps, merged into one ordered list and
checked before anything runs.

A hook file holds steps of its own, each placed ``before:`` or ``after:`` a step of the
shipped runbook (or of an earlier hook). A hook's action is ``command``: a shell command on
the hosts of an inventory group (``hosts: group``) or on the controller (``hosts: local``), e.g.
stop the cron jobs that write to the legacy master before the freeze. Every problem is one
:class:`~migration.errors.FuretError` line naming the file and the step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migration.errors import FuretError

SHIPPED = Path(__file__).resolve().parent / "runbook.yml"
# `--runbook NAME`: the runbooks furet ships besides the default (else a path to your own)
NAMED = {"galera-next": SHIPPED.with_name("runbook-galera-next.yml")}
# The actions furet knows; `command` is the hooks' own.
ACTIONS = ("preflight", "catch_up", "freeze", "final_rounds", "verify_gate",
           "switch_endpoint", "reverse_rounds", "reverse_final", "reverse_verify", "unfreeze",
           "command")
DOWNTIME = ("start", "inside", "end")
STEP_KEYS = frozenset({"id", "action", "args", "downtime"})
HOOK_KEYS = STEP_KEYS | {"before", "after"}


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    downtime: str = ""
    hook: bool = False


@dataclass(frozen=True)
class Runbook:
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...] = ()
    sha256: str = ""   # of the shipped file and the hooks file: `resume` checks it

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    @property
    def frozen(self) -> tuple[Step, ...]:
        """The steps inside the write freeze, from its start to its end."""
        start = next(i for i, s in enumerate(self.steps) if s.downtime == "start")
        end = next(i for i, s in enumerate(self.steps) if s.downtime == "end")
        return self.steps[start:end + 1]


def _load(path: Path) -> dict[str, list[Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FuretError(f"runbook {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise FuretError(f"runbook {path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise FuretError(f"runbook {path}: expected a mapping with a list `steps:`")
    if not isinstance(data.get("rollback", []), list):
        raise FuretError(f"runbook {path}: `rollback:` must be a list of steps")
    return {"steps": data["steps"], "rollback": data.get("rollback", [])}


def _step(path: Path, index: int, raw: Any, hook: bool) -> tuple[Step, str, str]:
    where = f"runbook {path} step {index + 1}"
    if not isinstance(raw, dict):
        raise FuretError(f"{where}: expected a mapping (id, action, ...)")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not step_id:
        raise FuretError(f"{where}: `id` is required (a name the journal keys on)")
    where = f"runbook {path} step {step_id}"
    unknown = sorted(set(raw) - (HOOK_KEYS if hook else STEP_KEYS))
    if unknown:
        raise FuretError(f"{where}: unknown key(s) {', '.join(unknown)}; a step has "
                         f"{', '.join(sorted(HOOK_KEYS if hook else STEP_KEYS))}")
    action = raw.get("action")
    allowed = ("command",) if hook else ACTIONS
    if action not in allowed:
        raise FuretError(f"{where}: action {action!r} is not one of {', '.join(allowed)}")
    args = raw.get("args") or {}
    if not isinstance(args, dict):
        raise FuretError(f"{where}: `args` must be a mapping")
    if action == "command" and (not isinstance(args.get("run"), str) or not args.get("hosts")):
        raise FuretError(f"{where}: a command needs args `run:` (the shell command) and "
                         "`hosts:` (an inventory group, or local)")
    downtime = raw.get("downtime", "")
    if downtime and downtime not in DOWNTIME:
        raise FuretError(f"{where}: downtime {downtime!r} is not one of {', '.join(DOWNTIME)}")
    before, after = raw.get("before", ""), raw.get("after", "")
    if hook and bool(before) == bool(after):
        raise FuretError(f"{where}: a hook step says `before: <id>` or `after: <id>` "
                         "(exactly one)")
    return Step(step_id, str(action), dict(args), downtime, hook), before, after


def runbook_path(name: str | None) -> Path:
    """The runbook ``--runbook`` names: the default (none), a shipped one by name, or a
    file of your own."""
    if not name:
        return SHIPPED
    path = NAMED.get(name) or Path(name)
    if not path.is_file():
        raise FuretError(f"--runbook {name}: neither a shipped runbook "
                         f"({', '.join(NAMED)}) nor a file")
    return path


def load_runbook(hooks: Path | None = None, shipped: Path = SHIPPED) -> Runbook:
    """The shipped steps (and rollback steps) with the hook steps of ``hooks`` placed among
    them."""
    data = _load(shipped)
    lists = {name: [_step(shipped, i, raw, hook=False)[0] for i, raw in enumerate(data[name])]
             for name in ("steps", "rollback")}
    digest = hashlib.sha256(shipped.read_bytes())
    hook_steps = _load(hooks)["steps"] if hooks else []
    if hooks:
        digest.update(hooks.read_bytes())
    for i, raw in enumerate(hook_steps):
        assert hooks is not None
        step, before, after = _step(hooks, i, raw, hook=True)
        anchor = before or after
        every = [s.id for steps in lists.values() for s in steps]
        if step.id in every:
            raise FuretError(f"runbook {hooks} step {step.id}: the id is already taken")
        if anchor not in every:
            raise FuretError(f"runbook {hooks} step {step.id}: no step {anchor!r} to go "
                             f"{'before' if before else 'after'} (steps: {', '.join(every)})")
        steps = next(steps for steps in lists.values() if anchor in [s.id for s in steps])
        at = [s.id for s in steps].index(anchor) + (0 if before else 1)
        # a hook right after the freeze's start is inside the freeze
        if step.downtime == "" and _inside(steps, at):
            step = Step(step.id, step.action, step.args, "inside", True)
        steps.insert(at, step)
    runbook = Runbook(tuple(lists["steps"]), tuple(lists["rollback"]), digest.hexdigest())
    return _checked(runbook, hooks or shipped)


def _inside(steps: Sequence[Step], at: int) -> bool:
    before = [s.downtime for s in steps[:at]]
    return "start" in before and "end" not in before


def _checked(runbook: Runbook, path: Path) -> Runbook:
    ids = [s.id for s in (*runbook.steps, *runbook.rollback)]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise FuretError(f"runbook {path}: step id(s) used twice: {', '.join(twice)}")
    marks = [s.downtime for s in runbook.steps if s.downtime in ("start", "end")]
    if marks != ["start", "end"]:
        raise FuretError(f"runbook {path}: the write freeze needs one step with downtime: "
                         f"start before one with downtime: end (found {marks or 'none'})")
    switch = [i for i, s in enumerate(runbook.steps) if s.action == "switch_endpoint"]
    verify = [i for i, s in enumerate(runbook.steps) if s.action == "verify_gate"]
    if switch and (not verify or verify[-1] > switch[0]):
        raise FuretError(f"runbook {path}: the endpoint switch must come after a verify_gate "
                         "step (never switch what was not verified)")
    return runbook
