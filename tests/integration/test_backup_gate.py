"""The cutover's backup gate on real servers: a legacy backup recorded in the ledger, its
restore test recorded against its manifest, and the preflight that refuses a backup never
tested, tested and failed (a corrupted file), or too old, naming it.

The master is a binlog-enabled loopback MariaDB of this module (127.0.0.14); the ledger is
the suite's target server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration.backup.manifest import DUMP_FILE
from migration.config import FuretConfig
from migration.cutover.actions import preflight
from migration.errors import FuretError
from migration.legacy.schema import init_legacy
from migration.legacy.seed import seed

from .backup_helpers import flip_byte, furet
from .conftest import PASSWORD, USER, Server, _start, _stop, make_config

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.14"


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start("legacy", ADDRESS, 3306, tmp_path_factory.mktemp("gate") / "master",
                    "NO_ENGINE_SUBSTITUTION",
                    extra=("--log-bin=mysql-bin", "--server-id=1", "--binlog-format=ROW"))
    try:
        init_legacy(server.settings(), drop=True)
        seed(server.settings(), 1000)
        yield server
    finally:
        _stop(server)


def _env(master: Server, target: Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FURET_")}
    for role, server in (("LEGACY", master), ("TARGET", target)):
        env.update({f"FURET_{role}_HOST": server.address, f"FURET_{role}_PORT": str(server.port),
                    f"FURET_{role}_USER": USER, f"FURET_{role}_PASSWORD": PASSWORD})
    return env


def _config(master: Server, fresh: dict) -> FuretConfig:
    config = make_config(fresh)
    return FuretConfig(legacy=master.settings(), target=config.target, rounds=config.rounds)


def _preflight(config: FuretConfig, max_age_s: float = 3600) -> dict:
    return preflight(config, {"flows": ["runtime"], "backups": ["legacy"],
                              "max_backup_age_s": max_age_s})


def test_the_preflight_wants_a_recent_backup_whose_restore_test_passed(
        master: Server, fresh: dict, tmp_path: Path) -> None:
    env, config = _env(master, fresh["target"]), _config(master, fresh)
    with pytest.raises(FuretError, match=r"no legacy backup recorded in the ledger on "
                                         r"target .*\(playbooks/backup.yml\)"):
        _preflight(config)

    backup = tmp_path / "b1"
    taken = furet(env, "backup", "legacy", "--to", str(backup), "--record")
    assert taken.returncode == 0, taken.stderr
    assert "recorded legacy backup b1 in the ledger" in taken.stdout
    with pytest.raises(FuretError, match=r"legacy backup b1 \(.*\) has no restore test"):
        _preflight(config)

    tested = furet(env, "backup", "restore-test", str(backup), "--workdir", str(tmp_path),
                   "--record")
    assert tested.returncode == 0, tested.stderr
    assert "recorded its restore test (passed)" in tested.stdout
    passed = _preflight(config)
    assert passed["backups"][0]["id"] == "b1" and passed["backups"][0]["restore_test"] == "passed"
    # too old: one line with the age and the limit
    with pytest.raises(FuretError, match=r"legacy backup b1 .* old, --max-backup-age 0 min"):
        _preflight(config, max_age_s=0.001)

    # a corrupted file: the restore test fails, is recorded, and the preflight names the backup
    flip_byte(backup / DUMP_FILE)
    failed = furet(env, "backup", "restore-test", str(backup), "--workdir", str(tmp_path),
                   "--record")
    assert failed.returncode == 2 and DUMP_FILE in failed.stderr
    assert "recorded its restore test (failed)" in failed.stdout
    with pytest.raises(FuretError) as refused:
        _preflight(config)
    message = str(refused.value)
    assert re.search(r"restore test of legacy backup b1 \(.*/b1\) failed: .*" +
                     re.escape(DUMP_FILE), message), message
    assert "\n" not in message

    # a newer backup, tested, is what the gate looks at
    newer = tmp_path / "b2"
    assert furet(env, "backup", "legacy", "--to", str(newer), "--record").returncode == 0
    assert furet(env, "backup", "restore-test", str(newer), "--workdir", str(tmp_path),
                 "--record").returncode == 0
    assert _preflight(config)["backups"][0]["id"] == "b2"


def test_a_restore_test_is_recorded_only_against_the_manifest_it_read(
        master: Server, fresh: dict, tmp_path: Path) -> None:
    env = _env(master, fresh["target"])
    backup = tmp_path / "b3"
    assert furet(env, "backup", "legacy", "--to", str(backup)).returncode == 0  # not recorded
    run = furet(env, "backup", "restore-test", str(backup), "--workdir", str(tmp_path),
                "--record")
    assert run.returncode == 2
    assert "not recorded in the ledger with this manifest" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_new_cluster_cutover_gates_on_the_backups_in_the_old_clusters_ledger(
        master: Server, fresh: dict, tmp_path: Path) -> None:
    """Runbook galera-next: the source is the old cluster, whose ledger playbooks/backup.yml
    kept recording into (it was the target); the gate reads them there, the new target's
    ledger has none, and a ledger that is neither is one line naming the argument."""
    old = tmp_path / "old"
    recorded_as_target = _env(master, master)  # the master was the platform's target then
    assert furet(recorded_as_target, "backup", "legacy", "--to", str(old),
                 "--record").returncode == 0
    assert furet(recorded_as_target, "backup", "restore-test", str(old), "--workdir",
                 str(tmp_path), "--record").returncode == 0
    config = _config(master, fresh)
    args = {"flows": ["runtime"], "backups": ["legacy"], "max_backup_age_s": 3600,
            "backups_ledger": "legacy"}
    assert preflight(config, args)["backups"][0]["id"] == "old"
    target = re.escape(config.target.where)
    with pytest.raises(FuretError, match=rf"no legacy backup recorded in the ledger on {target}"):
        preflight(config, {**args, "backups_ledger": "target"})
    with pytest.raises(FuretError, match="backups_ledger 'source' is not one of target, legacy"):
        preflight(config, {**args, "backups_ledger": "source"})
