"""`furet backup legacy` and `furet backup restore-test` against a real legacy master.

The master is a loopback mariadbd of this module (127.0.0.13) started like the suite's
legacy server but with its binary log on: a master is what the dump's coordinates
(``--master-data``) come from, and the suite's legacy server runs ``--skip-log-bin``.

- a backup taken while the web-app traffic writes restores equal to its checksums: the
  checksums and the dump are at one point (the traffic wrote between the point and the end
  of the backup, and the master no longer equals them);
- a byte flipped in the compressed dump fails the restore test on the file's sha256;
- one row edited inside the dump (its sha256 rewritten in the manifest) fails it on the
  chunk checksums, naming the database, the table and the chunk range;
- a MyISAM table refuses the backup, naming it, and leaves nothing in the directory.

Every scratch mariadbd of a restore test is the restore test's own and stopped by it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from migration.backup.checksums import Checksums, compare_with_server
from migration.backup.legacy import BackupResult, backup_legacy
from migration.backup.manifest import CHECKSUMS_FILE, DUMP_FILE, MANIFEST_FILE, sha256_file
from migration.backup.restore import restore_test
from migration.config import FuretConfig
from migration.db import connection, query
from migration.errors import FuretError
from migration.legacy.schema import init_legacy
from migration.legacy.seed import seed
from migration.legacy.traffic import TrafficReport, run_traffic

from .backup_helpers import (
    assert_flipped_byte_fails,
    assert_restore_fails_on,
    copy_backup,
    furet,
    recorded_quote,
    relist,
)
from .conftest import APP_USER, PASSWORD, USER, Server, _start, _stop

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.13"  # the suite's legacy and target are .11 and .12
QUOTES = 10_000         # `furet legacy seed`'s default data set


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _start("legacy", ADDRESS, 3306, tmp_path_factory.mktemp("master") / "master",
                    "NO_ENGINE_SUBSTITUTION",
                    extra=("--log-bin=mysql-bin", "--server-id=1", "--binlog-format=ROW"))
    try:
        settings = server.settings()
        init_legacy(settings, drop=True)
        seed(settings, QUOTES)
        with connection(settings) as conn, conn.cursor() as cur:
            # a table without a primary key: one whole-table checksum
            cur.execute("CREATE TABLE lf_bo.import_log (line VARCHAR(80), at BIGINT) "
                        "ENGINE=InnoDB")
            cur.execute("INSERT INTO lf_bo.import_log VALUES ('a', 1), ('b', 2), ('a', 1)")
        yield server
    finally:
        _stop(server)


def _position(server: Server) -> tuple[str, int]:
    with contextlib.closing(server.root()) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


@dataclass
class Taken:
    result: BackupResult
    directory: Path
    traffic: TrafficReport
    samples: list[tuple[float, str, int]]  # (epoch s, binlog file, position) every 20 ms
    seconds: float


@pytest.fixture(scope="module")
def taken(master: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Taken]:
    """One backup taken while the web app writes, and the binlog position seen meanwhile."""
    directory = tmp_path_factory.mktemp("backups") / "legacy-1"
    stop = threading.Event()
    reports: list[TrafficReport] = []
    samples: list[tuple[float, str, int]] = []

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.time(), *_position(master)))
            time.sleep(0.02)

    traffic = threading.Thread(target=lambda: reports.append(run_traffic(
        master.settings(APP_USER, PASSWORD), rate=150, duration=300, seed=13, late_share=0.2,
        late_ms=(100, 800), stop=stop)))
    sampler = threading.Thread(target=sample)
    traffic.start()
    sampler.start()
    try:
        time.sleep(1.5)  # the app is writing before the backup starts
        started = time.monotonic()
        result = backup_legacy(FuretConfig(legacy=master.settings()), directory)
        seconds = time.monotonic() - started
        time.sleep(0.5)
    finally:
        stop.set()
        traffic.join(60)
        sampler.join(10)
    assert not traffic.is_alive()
    yield Taken(result, directory, reports[0], samples, seconds)


def test_backup_under_traffic_restores_equal_to_its_checksums(
        master: Server, taken: Taken, tmp_path: Path, figures: Any) -> None:
    result, directory = taken.result, taken.directory
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [CHECKSUMS_FILE, DUMP_FILE, MANIFEST_FILE])
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    files = {f["name"]: f for f in manifest["files"]}
    assert files[DUMP_FILE]["sha256"] == sha256_file(directory / DUMP_FILE) == result.sha256
    assert files[DUMP_FILE]["size"] == (directory / DUMP_FILE).stat().st_size
    assert manifest["checksums"]["sha256"] == sha256_file(directory / CHECKSUMS_FILE)
    point = (result.coordinates.file, result.coordinates.position)
    assert manifest["coordinates"] == {"file": point[0], "position": point[1]}
    recorded = Checksums.from_json((directory / CHECKSUMS_FILE).read_text())
    assert recorded.coordinates == result.coordinates
    keyless = next(t for t in recorded.tables if t.table == "import_log")
    assert keyless.keys == () and len(keyless.chunks) == 1 and keyless.chunks[0].count == 3

    # the web app really wrote while the dump and the checksums ran: the binary log moved
    # past the backup's point between the unlock and the end of the backup
    assert taken.traffic.committed > 100, taken.traffic
    during = [pos for t, f, pos in taken.samples
              if result.unlocked_at < t < result.finished_at and f == point[0]]
    assert during and max(during) > point[1], (point, during[-5:])
    # ... so the master no longer equals the checksums: the restore test below compares
    # with the backup's point, not with now
    assert compare_with_server(recorded, master.settings()), "traffic changed no chunk?"

    started = time.monotonic()
    check = restore_test(directory, workdir=tmp_path)
    restore_seconds = time.monotonic() - started
    assert check.passed, check.reason
    assert check.reason == ""
    assert (check.tables, check.chunks, check.rows) == (7, recorded.chunks, recorded.rows)
    assert list(tmp_path.iterdir()) == []  # the scratch datadir is gone
    figures(quotes=QUOTES, rows=check.rows, dump_bytes=files[DUMP_FILE]["size"],
            chunks=check.chunks, backup_s=round(taken.seconds, 2),
            lock_s=round(result.lock_seconds, 3), restore_test_s=round(restore_seconds, 2),
            traffic_committed=taken.traffic.committed)


def _env(master: Server) -> dict[str, str]:
    """`furet`'s environment: the master as the legacy server, nothing else of furet's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FURET_")}
    env.update({"FURET_LEGACY_HOST": master.address, "FURET_LEGACY_PORT": str(master.port),
                "FURET_LEGACY_USER": USER, "FURET_LEGACY_PASSWORD": PASSWORD})
    return env


def test_a_flipped_byte_in_the_dump_fails_on_its_sha256(master: Server, taken: Taken,
                                                        tmp_path: Path) -> None:
    assert_flipped_byte_fails(taken.directory, DUMP_FILE, tmp_path, _env(master))


def test_a_row_edited_inside_the_dump_fails_naming_table_and_chunk(
        master: Server, taken: Taken, tmp_path: Path) -> None:
    copy = copy_backup(taken.directory, tmp_path)
    dump = copy / DUMP_FILE
    text = subprocess.run(["zstd", "-dc", str(dump)], capture_output=True, check=True).stdout
    # quote (id, uid, customer_id, ...): change the customer of the quote with id 6500
    pattern = re.compile(rb"\((6500),'([^']{16})',(\d+),")
    match = pattern.search(text, text.index(b"INSERT INTO `quote` VALUES"))
    assert match, "quote 6500 not found in the dump"
    edited = (text[:match.start(3)] + str(int(match.group(3)) + 1).encode()
              + text[match.end(3):])
    dump.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=edited, capture_output=True,
                                    check=True).stdout)
    relist(copy, DUMP_FILE)
    _, chunk = recorded_quote(copy, 6500)
    assert_restore_fails_on(copy, chunk, tmp_path)


def test_a_myisam_table_refuses_the_backup_and_leaves_nothing(master: Server,
                                                             tmp_path: Path) -> None:
    with connection(master.settings()) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE lf_bo.audit_trail (id INT PRIMARY KEY, what TEXT) "
                    "ENGINE=MyISAM")
    try:
        target = tmp_path / "legacy-2"
        run = furet(_env(master), "backup", "legacy", "--to", str(target))
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith(f"furet: error: legacy {ADDRESS}:3306 database lf_bo "
                                     "table audit_trail: engine MyISAM, not InnoDB"), run.stderr
        assert not target.exists()
        # an existing empty directory stays empty
        target.mkdir()
        with pytest.raises(FuretError, match="table audit_trail: engine MyISAM"):
            backup_legacy(FuretConfig(legacy=master.settings()), target)
        assert list(target.iterdir()) == []
        # and a refused backup holds no lock: the master takes writes
        with connection(master.settings()) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 5")
            cur.execute("INSERT INTO lf_bo.import_log VALUES ('after', 3)")
            assert query(conn, "SELECT COUNT(*) FROM lf_bo.import_log")[0][0] == 4
    finally:
        with connection(master.settings()) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE lf_bo.audit_trail")


def test_the_commands_print_one_line_each(master: Server, tmp_path: Path) -> None:
    target = tmp_path / "legacy-3"
    run = furet(_env(master), "backup", "legacy", "--to", str(target), "--database", "lf_bo")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1, run.stdout
    assert run.stdout.startswith(f"furet legacy {ADDRESS}:3306: backup {target} at mysql-bin.")
    assert "4 tables" in run.stdout and PASSWORD not in run.stdout + run.stderr
    assert json.loads((target / MANIFEST_FILE).read_text())["databases"] == ["lf_bo"]
    run = furet(_env(master), "backup", "restore-test", str(target), "--workdir", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("\n") == 1, run.stdout
    assert run.stdout.startswith(f"furet restore test of {target} passed: 4 tables, "), run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy-3"]
