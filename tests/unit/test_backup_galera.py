"""`furet backup galera` without servers: which flows' locks a backup holds, what it reads
from mariadb-backup's info files, the manifest of a physical backup, and what it refuses
before any server or command is reached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migration.backup.checksums import Coordinates
from migration.backup.galera import backup_galera, flows_writing, source_settings
from migration.backup.manifest import (
    ARCHIVE_FILE,
    CHECKSUMS_FILE,
    DUMP_FILE,
    FileEntry,
    Manifest,
    Physical,
    RoundMark,
    read_manifest,
    write_atomic,
)
from migration.backup.mariabackup import (
    XBSTREAM_MAGIC,
    Prepared,
    check_same_line,
    parse_binlog_info,
    parse_galera_info,
    read_info,
)
from migration.backup.restore import check_files
from migration.config import DbSettings, FuretConfig
from migration.errors import FuretError

FLOW = """name: {name}
source: {{server: legacy, database: lf_runtime}}
target: {target}
tables:
  - source: quote
    key: id
    version: updated_ts
    targets:
      - table: quote
        columns: {{id: id, uid: uid, updated_ts: updated_ts}}
"""


def _deploy(directory: Path, name: str, target: str) -> None:
    (directory / f"{name}.yml").write_text(FLOW.format(name=name, target=target))


def test_the_flows_locked_are_those_that_write_a_backed_up_database(tmp_path: Path) -> None:
    # shipped: runtime writes target lf_runtime, rt_bo target lf_bo, cassandra_prod Cassandra
    assert flows_writing(("lf_runtime",), "") == ["runtime"]
    assert flows_writing(("lf_bo",), "") == ["rt_bo"]
    assert flows_writing(("lf_runtime", "lf_bo"), "") == ["rt_bo", "runtime"]
    assert flows_writing(("lf_other",), "") == []
    # deployed flows count too; a flow into the legacy (a reverse-like one) or Cassandra not
    _deploy(tmp_path, "bo_extra", "{kind: mariadb, server: target, database: lf_bo}")
    _deploy(tmp_path, "back_home", "{kind: mariadb, server: legacy, database: lf_bo}")
    _deploy(tmp_path, "to_ks", "{kind: cassandra, keyspace: lf_bo}")
    assert flows_writing(("lf_bo",), str(tmp_path)) == ["bo_extra", "rt_bo"]
    # a deployed flow furet cannot read: whether it writes the database is unknown
    (tmp_path / "broken.yml").write_text("name: broken\ntarget: [\n")
    with pytest.raises(FuretError, match=r"broken\.yml: not valid YAML"):
        flows_writing(("lf_bo",), str(tmp_path))


def test_the_ledger_database_and_an_empty_list_are_refused_before_anything_runs(
        tmp_path: Path) -> None:
    # 127.0.0.1:9 (discard) is never a MariaDB: refused before any connection
    config = FuretConfig(target=DbSettings("target", "127.0.0.1", 9))
    with pytest.raises(FuretError) as err:
        backup_galera(config, tmp_path / "b", "false", ("lf_bo", "furet"))
    assert str(err.value).startswith("backup galera: database furet is furet's ledger, which "
                                     "the backup itself writes (its flow locks)")
    with pytest.raises(FuretError, match="no database to back up"):
        backup_galera(config, tmp_path / "b", "false", ())
    with pytest.raises(FuretError, match="--stream-command is empty"):
        backup_galera(config, tmp_path / "b", "  ", ("lf_bo",))
    assert not (tmp_path / "b").exists()


def test_the_source_node_defaults_to_the_target_settings() -> None:
    config = FuretConfig(target=DbSettings("target", "10.0.0.40", 3306, "furet", "pw"))
    assert source_settings(config, None, None) == DbSettings("galera", "10.0.0.40", 3306,
                                                             "furet", "pw")
    node = source_settings(config, "10.0.0.43", 3307)
    assert (node.where, node.user, node.password) == ("galera 10.0.0.43:3307", "furet", "pw")


def test_mariadb_backups_info_files_are_read() -> None:
    uuid = "8f3b1c2e-4a5d-11ef-9c1b-0242ac120002"
    assert parse_galera_info(f"{uuid}:1234\n") == f"{uuid}:1234"
    assert parse_galera_info(f"{uuid}:1234 0-1-1230\n") == f"{uuid}:1234"
    with pytest.raises(FuretError, match="xtrabackup_galera_info: not uuid:seqno"):
        parse_galera_info("garbage\n")
    assert parse_binlog_info("mysql-bin.000003\t385\t0-1-12\n") == Coordinates(
        "mysql-bin.000003", 385)
    assert parse_binlog_info("mysql-bin.000003\t385\n") == Coordinates("mysql-bin.000003", 385)
    assert parse_binlog_info("") is None
    assert XBSTREAM_MAGIC == b"XBSTCK01"


@pytest.mark.parametrize("prefix", ["xtrabackup", "mariadb_backup"])
def test_the_info_files_of_either_line_are_read(tmp_path: Path, prefix: str) -> None:
    # 10.11's mariadb-backup writes xtrabackup_*, 11.8's mariadb_backup_* (the names
    # in 11.8.9's binary)
    uuid = "8f3b1c2e-4a5d-11ef-9c1b-0242ac120002"
    (tmp_path / f"{prefix}_checkpoints").write_text("backup_type = log-applied\nto_lsn = 44878\n")
    (tmp_path / f"{prefix}_galera_info").write_text(f"{uuid}:1234\n")
    (tmp_path / f"{prefix}_binlog_info").write_text("mysql-bin.000003\t385\n")
    info, position, coordinates = read_info(tmp_path)
    assert position == f"{uuid}:1234"
    assert coordinates == Coordinates("mysql-bin.000003", 385)
    assert sorted(info) == sorted(f"{prefix}_{n}" for n in ("checkpoints", "galera_info",
                                                            "binlog_info"))
    (tmp_path / f"{prefix}_galera_info").unlink()
    (tmp_path / f"{prefix}_binlog_info").unlink()
    info, position, coordinates = read_info(tmp_path)
    assert Prepared(tmp_path, info, position, coordinates, 0, 0.0, 0.0).point == "LSN 44878"


def test_a_prepare_tool_of_another_line_than_the_server_is_refused() -> None:
    tool = "mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)"
    check_same_line("10.11.6-MariaDB-0+deb12u1-log", tool, "galera 10.0.0.43:3306")
    with pytest.raises(FuretError) as err:
        check_same_line("11.4.2-MariaDB", tool, "galera 10.0.0.43:3306")
    assert str(err.value) == (
        "galera 10.0.0.43:3306: the server is MariaDB 11.4 but this host's mariadb-backup is "
        "10.11: a backup is prepared by the same line; install mariadb-backup 11.4 here")


def _galera_manifest(files: tuple[FileEntry, ...]) -> Manifest:
    return Manifest(
        "galera", "galera 10.0.0.43:3306", "10.11.6-MariaDB", ("lf_runtime", "lf_bo"),
        "2026-11-30T09:00:00+00:00", None, files, "ab" * 32,
        "mariadb-backup based on MariaDB server 10.11.19-MariaDB", 12.5,
        Physical("ssh -i key root@galera3", "8f3b1c2e-4a5d-11ef-9c1b-0242ac120002:1234",
                 {"xtrabackup_checkpoints": "backup_type = log-applied\nto_lsn = 44878"},
                 {"runtime": RoundMark(4, "done", 1, 120), "rt_bo": RoundMark(0)},
                 3.25, 123_456_789))


def test_a_galera_manifest_round_trips_and_a_legacy_one_reads_as_before(
        tmp_path: Path) -> None:
    manifest = _galera_manifest((FileEntry(ARCHIVE_FILE, 10, "cd" * 32),
                                 FileEntry(CHECKSUMS_FILE, 5, "ab" * 32)))
    assert Manifest.from_json(manifest.to_json()) == manifest
    raw = json.loads(manifest.to_json())
    assert raw["kind"] == "galera" and raw["coordinates"] is None
    assert raw["mariabackup"]["galera_position"].endswith(":1234")
    assert raw["mariabackup"]["rounds"]["rt_bo"] == {"round": 0, "status": "",
                                                     "invocations": 0, "rows_written": 0}
    assert RoundMark(0).label == "no round"
    assert RoundMark(4, "done", 1, 120).label == "round 4 done (1 invocations, 120 rows written)"
    # a legacy manifest as the legacy backup writes it: no mariabackup section
    legacy = Manifest("legacy", "legacy 127.0.0.13:3306", "10.11.6-MariaDB", ("lf_bo",),
                      "2026-11-30T09:00:00+00:00", Coordinates("mysql-bin.000002", 4711),
                      (FileEntry(DUMP_FILE, 10, "cd" * 32),), "ab" * 32)
    assert "mariabackup" not in json.loads(legacy.to_json())
    assert Manifest.from_json(legacy.to_json()) == legacy


def test_a_galera_backup_without_its_archive_listed_fails_the_file_check(
        tmp_path: Path) -> None:
    manifest = _galera_manifest((FileEntry(CHECKSUMS_FILE, 5, "ab" * 32),))
    (tmp_path / CHECKSUMS_FILE).write_bytes(b"12345")
    write_atomic(tmp_path / "manifest.json", manifest.to_json().encode())
    assert read_manifest(tmp_path).kind == "galera"
    problems = check_files(tmp_path)
    assert f"file {ARCHIVE_FILE}: not listed in the manifest" in problems
    assert f"file {DUMP_FILE}: not listed in the manifest" not in problems
