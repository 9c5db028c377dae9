"""The platform hold (migration/hold.py, `furet hold take|show|release`), on real MariaDB
servers: while it is there, rounds and schema changes are refused naming it; it is refused
while a round runs; taking it again for the same reason and releasing twice change nothing."""

from __future__ import annotations

import json
import subprocess

import pytest

from migration.db import connection, query
from migration.engine import ledger
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.seed import seed
from migration.target.ddl import target_schema
from tests.helpers import BIN, REPO

from .conftest import furet_env, make_config

REASON = "galera upgrade to 10.11.19"


def _furet(fresh: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "furet"), *args], cwd=REPO, env=furet_env(fresh),
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_hold_stops_rounds_and_schema_changes_until_it_is_released(fresh: dict) -> None:
    seed(fresh["legacy"].settings(), 200)
    config = make_config(fresh)
    assert run_round(config, RoundOptions("runtime")).status == "done"

    took = _furet(fresh, "hold", "take", "--reason", REASON)
    assert took.returncode == 0, took.stdout + took.stderr
    assert f"on hold for `{REASON}`" in took.stdout
    again = _furet(fresh, "hold", "take", "--reason", REASON)      # a re-run: no change
    assert again.returncode == 0 and ", as it was since " in again.stdout, again.stdout

    with pytest.raises(FuretError) as refused:
        run_round(config, RoundOptions("runtime"))
    assert f"furet is on hold for `{REASON}` (taken on host " in str(refused.value)
    with pytest.raises(FuretError, match=f"furet is on hold for `{REASON}`"):
        target_schema(config, "runtime", apply=True)
    cli = _furet(fresh, "round", "--flow", "runtime")
    assert cli.returncode == 2 and "furet is on hold for" in cli.stdout + cli.stderr
    assert len((cli.stdout + cli.stderr).strip().splitlines()) == 1

    other = _furet(fresh, "hold", "take", "--reason", "os update")
    assert other.returncode == 2 and f"furet is on hold for `{REASON}`" in other.stdout + \
        other.stderr
    wrong = _furet(fresh, "hold", "release", "--reason", "os update")
    assert wrong.returncode == 2 and "left as it is" in wrong.stdout + wrong.stderr
    shown = _furet(fresh, "hold", "show", "--json")
    assert json.loads(shown.stdout)["reason"] == REASON

    released = _furet(fresh, "hold", "release", "--reason", REASON)
    assert released.returncode == 0 and "released" in released.stdout, released.stdout
    twice = _furet(fresh, "hold", "release")
    assert twice.returncode == 0 and "not on hold" in twice.stdout
    assert json.loads(_furet(fresh, "hold", "show", "--json").stdout) is None
    assert run_round(config, RoundOptions("runtime")).status == "done"


def test_a_hold_is_refused_while_a_round_runs_and_is_not_left_behind(fresh: dict) -> None:
    seed(fresh["legacy"].settings(), 50)
    config = make_config(fresh)
    assert run_round(config, RoundOptions("runtime")).status == "done"   # the ledger exists
    with connection(config.target) as conn:
        query(conn, "INSERT INTO furet.locks (flow, token, host, pid, command) VALUES "
                    "('runtime', 'x', 'etl9.elsewhere', 1, 'furet round --flow runtime')")
    refused = _furet(fresh, "hold", "take", "--reason", REASON)
    assert refused.returncode == 2
    assert ("flow runtime is run by `furet round --flow runtime` on host etl9.elsewhere pid 1 "
            "since ") in refused.stdout + refused.stderr
    assert json.loads(_furet(fresh, "hold", "show", "--json").stdout) is None
    with connection(config.target) as conn:   # a holder gone quiet does not block a hold
        query(conn, "UPDATE furet.locks SET heartbeat_at = NOW(3) - INTERVAL %s SECOND "
                    "WHERE flow = 'runtime'", (ledger.LOCK_STALE_S + 1,))
    assert _furet(fresh, "hold", "take", "--reason", REASON).returncode == 0
    assert _furet(fresh, "hold", "release").returncode == 0
