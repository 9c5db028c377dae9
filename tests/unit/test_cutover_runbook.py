"""migration/cutover/runbook.py: the shipped runbook and the user's hook steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.cutover.runbook import load_runbook, runbook_path
from migration.errors import FuretError


def test_the_shipped_runbook_freezes_verifies_then_switches() -> None:
    runbook = load_runbook()
    ids = [s.id for s in runbook.steps]
    assert ids == ["preflight", "catch-up", "freeze", "final-rounds", "verify-gate", "switch",
                   "reverse-rounds"]
    assert [s.id for s in runbook.frozen] == ["freeze", "final-rounds", "verify-gate", "switch"]


def test_the_galera_next_runbook_switches_to_the_new_cluster_and_back_on_rollback(
        tmp_path: Path) -> None:
    runbook = load_runbook(shipped=runbook_path("galera-next"))
    switches = {s.id: s.args["to"] for s in (*runbook.steps, *runbook.rollback)
                if s.action == "switch_endpoint"}
    assert switches == {"switch": "galera-next", "refuse-writes": "refused",
                        "switch-back": "galera"}
    assert [s.id for s in runbook.frozen] == ["freeze", "final-rounds", "verify-gate", "switch"]
    assert runbook.sha256 != load_runbook().sha256  # a run is resumed by the same runbook
    own = tmp_path / "mine.yml"
    own.write_bytes(runbook_path("galera-next").read_bytes())
    assert runbook_path(str(own)) == own and runbook_path(None) == runbook_path("")
    with pytest.raises(FuretError, match="--runbook galera-nxt: neither a shipped runbook "
                                         r"\(galera-next\) nor a file"):
        runbook_path("galera-nxt")


def test_hooks_go_before_or_after_a_step_and_inside_the_freeze_when_placed_there(
        tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.yml"
    hooks.write_text("""steps:
  - id: stop-cron
    before: freeze
    action: command
    args: {hosts: app, run: systemctl stop cron}
  - id: notify
    after: final-rounds
    action: command
    args: {hosts: local, run: echo final rounds done}
  - id: start-cron
    after: switch
    action: command
    args: {hosts: app, run: systemctl start cron}
""")
    runbook = load_runbook(hooks)
    ids = [s.id for s in runbook.steps]
    assert ids == ["preflight", "catch-up", "stop-cron", "freeze", "final-rounds", "notify",
                   "verify-gate", "switch", "start-cron", "reverse-rounds"]
    assert runbook.step("notify").downtime == "inside" and runbook.step("notify").hook
    assert runbook.step("stop-cron").downtime == "" == runbook.step("start-cron").downtime


@pytest.mark.parametrize(("text", "message"), [
    ("steps:\n  - {id: x, action: command, args: {hosts: local, run: 'true'}}\n",
     "step x: a hook step says `before: <id>` or `after: <id>` (exactly one)"),
    ("steps:\n  - {id: x, after: nowhere, action: command, args: {hosts: local, run: 'true'}}\n",
     "step x: no step 'nowhere' to go after (steps: preflight, catch-up,"),
    ("steps:\n  - {id: freeze, after: switch, action: command, args: {hosts: a, run: b}}\n",
     "step freeze: the id is already taken"),
    ("steps:\n  - {id: x, after: switch, action: switch_endpoint}\n",
     "step x: action 'switch_endpoint' is not one of command"),
    ("steps:\n  - {id: x, after: switch, action: command, args: {run: b}}\n",
     "step x: a command needs args `run:` (the shell command) and `hosts:`"),
    ("steps:\n  - {id: x, after: switch, action: command, args: {hosts: a, run: b}, when: 1}\n",
     "step x: unknown key(s) when; a step has action, after, args, before, downtime, id"),
    ("steps:\n  - {id: x, after: switch, action: command, args: {hosts: a, run: b},"
     " downtime: start}\n",
     "the write freeze needs one step with downtime: start before one with downtime: end"),
    ("steps: nope\n", "expected a mapping with a list `steps:`"),
    ("steps: [\n", "not YAML"),
])
def test_a_bad_hook_file_is_one_line_naming_the_file_and_step(tmp_path: Path, text: str,
                                                               message: str) -> None:
    hooks = tmp_path / "hooks.yml"
    hooks.write_text(text)
    with pytest.raises(FuretError) as caught:
        load_runbook(hooks)
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"runbook {hooks}") and message in line


def test_a_runbook_that_would_switch_before_verifying_is_refused(tmp_path: Path) -> None:
    shipped = tmp_path / "runbook.yml"
    shipped.write_text("""steps:
  - {id: freeze, action: freeze, downtime: start}
  - {id: switch, action: switch_endpoint, downtime: end}
  - {id: verify, action: verify_gate}
""")
    with pytest.raises(FuretError, match="the endpoint switch must come after a verify_gate"):
        load_runbook(shipped=shipped)


def test_the_rollback_steps_are_data_too_and_hooks_may_join_them(tmp_path: Path) -> None:
    runbook = load_runbook()
    assert [(s.id, s.action, s.downtime) for s in runbook.rollback] == [
        ("refuse-writes", "switch_endpoint", "start"), ("reverse-final", "reverse_final", "inside"),
        ("reverse-verify", "reverse_verify", "inside"), ("unfreeze-legacy", "unfreeze", "inside"),
        ("switch-back", "switch_endpoint", "end")]
    assert runbook.rollback[0].args == {"to": "refused"}
    hooks = tmp_path / "hooks.yml"
    hooks.write_text("steps:\n  - {id: page-oncall, after: switch-back, action: command, "
                     "args: {hosts: local, run: 'true'}}\n")
    with_hook = load_runbook(hooks)
    assert [s.id for s in with_hook.rollback][-1] == "page-oncall"
    assert [s.id for s in with_hook.steps] == [s.id for s in runbook.steps]
    # `resume` refuses a run whose runbook changed: the hooks file is part of the digest
    assert with_hook.sha256 != runbook.sha256 and len(runbook.sha256) == 64
    assert load_runbook().sha256 == runbook.sha256
