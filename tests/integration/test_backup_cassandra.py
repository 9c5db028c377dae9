"""`furet backup cassandra` and its restore test against the suite's loopback node.

The ring is the suite's node on 127.0.0.22, filled by a `cassandra_prod` round; its node-side
command (roles/cassandra/files/usr/local/bin/furet-cassandra-backup) runs locally against the
node's data directory and JMX, as ssh would run it on a node. Restore tests run on scratch
nodes (migration.backup.scratch_cassandra): the CLI's own, and one of this module reused by
the corruption checks (each restore drops and makes the keyspace again).

- a backup restores equal to its checksums through the CLI; the snapshot is cleared, the
  flow lock released, the scratch node stopped and its files removed;
- a flipped byte fails on the archive's sha256, before any node starts;
- a truncated SSTable (every sha256 rewritten) fails: import's digest check names the file;
- an SSTable removed (every sha256 rewritten) fails on the checksums, naming the table and
  the token range; the intact backup then passes on the same reused node;
- a snapshot that fails, or that nodetool listsnapshots does not list, is one line naming
  the node and the tag; the snapshot is cleared and no backup is left;
- a round holding the flow lock keeps the backup from starting (nothing snapshotted);
- a flow keyspace without tables is one line naming it and its flow (nothing snapshotted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migration.backup.cassandra import backup_cassandra
from migration.backup.cassandra_checksums import CassandraChecksums
from migration.backup.cassandra_node import parse_info
from migration.backup.cassandra_restore import restore_test_cassandra
from migration.backup.manifest import sha256_file
from migration.backup.scratch_cassandra import CassandraNode, scratch_cassandra
from migration.config import FuretConfig
from migration.db import connection
from migration.engine import ledger
from migration.engine.flow_lock import flow_lock
from migration.engine.round import RoundOptions, run_round
from migration.errors import FuretError
from migration.legacy.seed import seed
from tests.helpers import REPO

from .backup_helpers import copy_backup, flip_byte, furet, processes_naming, relist
from .conftest import Server, empty_schemas, fresh_prod_keyspace, furet_env, make_config

pytestmark = pytest.mark.integration

SCRIPT = REPO / "roles" / "cassandra" / "files" / "usr" / "local" / "bin" / "furet-cassandra-backup"
DIST = REPO / ".cache" / "cassandra" / "current"
QUOTES = 3000
SPLITS = 64
NODE = "cassandra1"


def node_spec(node: CassandraNode, nodetool: Path | None = None) -> str:
    """``--node cassandra1=COMMAND``: the node-side command run here, on the node's files."""
    return f"{NODE}=" + shlex.join([
        "env", f"FURET_CASSANDRA_DATA={node.data}", f"JMX_HOST={node.address}",
        f"JMX_PORT={node.ports.jmx}", f"CASSANDRA_CONF={node.conf}",
        f"NODETOOL={nodetool or node.nodetool_path}", "bash", str(SCRIPT)])


def snapshots_left(node: CassandraNode) -> tuple[list[Path], str]:
    """furet's snapshot directories on the node, and what nodetool lists."""
    listed = node.nodetool("listsnapshots").stdout
    return sorted(node.data.glob("*/*/snapshots/furet-*")), listed


def lock_holder(config: FuretConfig) -> Any:
    with connection(config.target) as conn:
        return ledger.lock_holder(conn, "cassandra_prod")


@pytest.fixture(scope="module")
def filled(servers: dict[str, Server], cassandra_instance: CassandraNode) -> FuretConfig:
    """Empty schemas and ledger, QUOTES legacy quotes copied to prod by a round."""
    empty_schemas(servers)
    settings = fresh_prod_keyspace(cassandra_instance.address)
    seed(servers["legacy"].settings(), QUOTES)
    config = dataclasses.replace(make_config(servers), cassandra=settings)
    assert run_round(config, RoundOptions("cassandra_prod")).status == "done"
    return config


@pytest.fixture(scope="module")
def backup_dir(filled: FuretConfig, cassandra_instance: CassandraNode,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cassandra-backups") / "b1"
    backup_cassandra(filled, directory, [node_spec(cassandra_instance)], splits=SPLITS)
    return directory


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    """One scratch node for the corruption checks (restore tests reset its keyspaces)."""
    with scratch_cassandra(DIST, address="127.0.0.23",
                           workdir=tmp_path_factory.mktemp("scratch")) as node:
        yield node


def test_backup_and_restore_test_by_the_cli(filled: FuretConfig, servers: dict[str, Server],
                                            cassandra_instance: CassandraNode, tmp_path: Path,
                                            figures: Any) -> None:
    node = cassandra_instance
    directory = tmp_path / "backup"
    env = dict(furet_env(servers), FURET_CASSANDRA_HOSTS=node.address)
    started = time.monotonic()
    run = furet(env, "backup", "cassandra", "--to", str(directory), "--node", node_spec(node),
                 "--splits", str(SPLITS))
    backup_s = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("\n") == 1, run.stdout
    assert run.stdout.startswith(f"furet cassandra {node.address}:9042: backup {directory} tag "
                                 f"furet-"), run.stdout
    assert f"of prod from 1 nodes: 2 tables, {2 * QUOTES:,} rows in " in run.stdout

    manifest = json.loads((directory / "manifest.json").read_text())
    assert (manifest["kind"], manifest["keyspaces"], manifest["flows"], manifest["nodes"]) == (
        "cassandra", ["prod"], ["cassandra_prod"], [NODE])
    files = {f["name"]: f for f in manifest["files"]}
    assert sorted(files) == ["cassandra/cassandra1.json", "cassandra/cassandra1.tar.zst",
                             "checksums.json"]
    for name, entry in files.items():
        assert (entry["size"], entry["sha256"]) == (
            (directory / name).stat().st_size, sha256_file(directory / name)), name
    tag = manifest["tag"]
    mine = json.loads((directory / "cassandra" / "cassandra1.json").read_text())
    info = parse_info(node.nodetool("info", "-T").stdout + node.nodetool("version").stdout, NODE)
    assert (mine["host_id"], mine["dc"], mine["rack"], tuple(mine["tokens"]),
            mine["release_version"]) == (info.host_id, "dc1", "rack1", info.tokens,
                                         info.release_version)
    assert len(info.tokens) == 4 and mine["tag"] == tag
    schemas = {t["table"]: t["schema_cql"] for t in mine["tables"]}
    assert sorted(schemas) == ["quotes_by_customer", "quotes_by_day"]
    assert schemas["quotes_by_day"].startswith("CREATE TABLE IF NOT EXISTS prod.quotes_by_day")
    assert all(f["path"].split("/")[3] == tag for f in mine["files"])
    assert any(f["path"].endswith("-Data.db") for f in mine["files"])
    recorded = CassandraChecksums.from_json((directory / "checksums.json").read_text())
    assert (recorded.consistency, recorded.splits, recorded.rows) == ("ALL", SPLITS, 2 * QUOTES)

    # the node keeps no snapshot, the rounds' lock is free again
    assert snapshots_left(node)[0] == []
    assert tag not in snapshots_left(node)[1]
    assert lock_holder(filled) is None

    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    check = furet(env, "backup", "restore-test", str(directory), "--workdir", str(work),
                   "--cassandra-dist", str(DIST))
    restore_s = time.monotonic() - started
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"furet restore test of {directory} passed: 2 tables, "
                                   f"{2 * QUOTES:,} rows in {recorded.buckets} chunks equal "
                                   "to the backup's checksums"), check.stdout
    assert list(work.iterdir()) == []            # scratch node and unpacked files removed
    assert processes_naming(work) == []          # and the scratch node stopped
    figures(quotes=QUOTES, rows=recorded.rows, buckets=recorded.buckets,
            snapshot_bytes=sum(f["size"] for f in mine["files"]),
            archive_bytes=files["cassandra/cassandra1.tar.zst"]["size"],
            files=len(mine["files"]), lock_s=manifest["lock_seconds"],
            backup_s=round(backup_s, 1), restore_test_s=round(restore_s, 1))


def test_a_flipped_byte_fails_naming_the_file(backup_dir: Path, tmp_path: Path) -> None:
    copy = copy_backup(backup_dir, tmp_path)
    flip_byte(copy / "cassandra" / "cassandra1.tar.zst")
    # no distribution there: the test must fail before it would start a node
    result = restore_test_cassandra(copy, dist=tmp_path / "no-dist", workdir=tmp_path)
    assert not result.passed
    assert result.reason.startswith("file cassandra/cassandra1.tar.zst: "), result.reason
    assert "differs from the manifest's" in result.reason
    assert result.line.count("\n") == 0


def rewrite(directory: Path, change: Callable[[Path], None], tmp: Path) -> None:
    """The node's archive unpacked, edited by ``change``, packed again, and every sha256
    that would give it away rewritten (node manifest, top manifest): only the restore
    itself can tell."""
    archive = directory / "cassandra" / "cassandra1.tar.zst"
    work = tmp / "unpacked"
    work.mkdir()
    raw = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(work, filter="data")
    change(work)
    paths = sorted(p for p in work.rglob("*") if p.is_file())
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for p in paths:
            tar.add(p, arcname="./" + str(p.relative_to(work)))
    archive.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=packed.getvalue(),
                                       capture_output=True, check=True).stdout)
    node_path = directory / "cassandra" / "cassandra1.json"
    node = json.loads(node_path.read_text())
    node["files"] = [{"path": str(p.relative_to(work)), "size": p.stat().st_size,
                      "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]
    node_path.write_text(json.dumps(node))
    relist(directory, "cassandra/cassandra1.tar.zst", "cassandra/cassandra1.json")


def _data_files(work: Path, table: str) -> list[Path]:
    return sorted(work.glob(f"prod/{table}-*/snapshots/*/*-Data.db"))


def test_a_truncated_sstable_fails_the_import_naming_it(backup_dir: Path, scratch: CassandraNode,
                                                        tmp_path: Path) -> None:
    copy = copy_backup(backup_dir, tmp_path)
    names: list[str] = []

    def truncate(work: Path) -> None:
        data = _data_files(work, "quotes_by_customer")[0]
        names.append(data.name)
        os.truncate(data, data.stat().st_size // 2)

    rewrite(copy, truncate, tmp_path)
    result = restore_test_cassandra(copy, node=scratch, workdir=tmp_path)
    assert not result.passed
    assert result.reason.startswith("nodetool import of prod.quotes_by_customer from "
                                    "cassandra/cassandra1.tar.zst failed: "), result.reason
    assert names[0] in result.reason  # the server's reason names the SSTable
    assert result.line.count("\n") == 0


def test_a_removed_sstable_fails_on_the_token_ranges(backup_dir: Path, scratch: CassandraNode,
                                                     tmp_path: Path) -> None:
    copy = copy_backup(backup_dir, tmp_path)

    def remove(work: Path) -> None:
        data = _data_files(work, "quotes_by_day")[0]
        prefix = data.name.removesuffix("Data.db")
        for part in data.parent.glob(prefix + "*"):
            part.unlink()

    rewrite(copy, remove, tmp_path)
    result = restore_test_cassandra(copy, node=scratch, workdir=tmp_path)
    assert not result.passed
    assert result.reason.startswith("prod.quotes_by_day token range ("), result.reason
    assert "]: restored 0 rows (checksum 0000000000000000), backup " in result.reason
    assert "quotes_by_customer" not in " ".join(result.problems)


def test_the_intact_backup_passes_on_the_reused_node(backup_dir: Path, scratch: CassandraNode,
                                                     tmp_path: Path) -> None:
    """After the failed imports above: the reset leaves nothing of them."""
    result = restore_test_cassandra(backup_dir, node=scratch, workdir=tmp_path)
    assert result.passed, result.reason
    assert (result.tables, result.rows) == (2, 2 * QUOTES)
    assert list(tmp_path.iterdir()) == []


def _failing_nodetool(tmp_path: Path, node: CassandraNode, verb: str, action: str) -> Path:
    """A nodetool that runs the real one, then for ``verb`` does ``action`` instead of
    reporting; it logs furet's snapshot directories it saw to ``seen``."""
    wrapper = tmp_path / "nodetool"
    wrapper.write_text(f"""#!/bin/bash
real={shlex.quote(str(node.nodetool_path))}
if [ "$1" = {verb} ]; then
    "$real" "$@" >/dev/null || exit $?
    ls -d {shlex.quote(str(node.data))}/*/*/snapshots/furet-* >> {tmp_path}/seen 2>/dev/null
    {action}
fi
exec "$real" "$@"
""")
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize(("verb", "action", "message"), [
    ("snapshot", 'echo "error: JMX connection closed (injected)" >&2; exit 1',
     "cassandra node cassandra1: `snapshot {tag} prod` exited 1: error: JMX connection "
     "closed (injected)"),
    ("listsnapshots", 'echo "There are no snapshots"; exit 0',
     "cassandra node cassandra1: snapshot {tag}: nodetool listsnapshots does not list "
     "prod.quotes_by_customer (and 1 more tables): the snapshot failed there"),
])
def test_a_failed_snapshot_is_one_line_cleared_and_leaves_no_backup(
        filled: FuretConfig, cassandra_instance: CassandraNode, tmp_path: Path, verb: str,
        action: str, message: str) -> None:
    node = cassandra_instance
    tag = f"furet-it-{verb}"
    directory = tmp_path / "backup"
    wrapper = _failing_nodetool(tmp_path, node, verb, action)
    with pytest.raises(FuretError) as caught:
        backup_cassandra(filled, directory, [node_spec(node, wrapper)], splits=SPLITS, tag=tag)
    assert str(caught.value) == message.format(tag=tag)
    # the snapshot was taken on the node, and furet cleared it
    seen = (tmp_path / "seen").read_text().split()
    assert len(seen) == 2 and all(s.endswith(f"/snapshots/{tag}") for s in seen), seen
    dirs, listed = snapshots_left(node)
    assert dirs == [] and tag not in listed
    assert not directory.exists()            # nothing that looks like a backup
    assert lock_holder(filled) is None


def test_a_running_round_keeps_the_backup_from_starting(
        filled: FuretConfig, cassandra_instance: CassandraNode, tmp_path: Path) -> None:
    directory = tmp_path / "backup"
    with flow_lock(filled.target, "cassandra_prod", "furet round --flow cassandra_prod"), \
            pytest.raises(FuretError) as caught:
        backup_cassandra(filled, directory, [node_spec(cassandra_instance)], splits=SPLITS,
                         lock_wait_s=0, tag="furet-it-locked")
    assert "flow cassandra_prod is locked by `furet round --flow cassandra_prod`" in \
        str(caught.value)
    assert str(caught.value).endswith("backup cassandra waited 0s for the flow locks "
                                      "(--lock-wait)")
    assert snapshots_left(cassandra_instance)[0] == []
    assert not directory.exists()


def test_a_keyspace_without_tables_is_one_line_and_nothing_is_snapshotted(
        filled: FuretConfig, cassandra_instance: CassandraNode, tmp_path: Path) -> None:
    """The flow's keyspace exists but `furet cassandra init` never made its tables (a new
    ring): the backup names the keyspace and the flow instead of failing on the node. Runs
    last: it empties prod (fresh_prod_keyspace gives it back its tables, empty)."""
    from migration.cassandra_session import cassandra_session

    cluster, session = cassandra_session(filled.cassandra)
    try:
        session.execute("DROP KEYSPACE prod", timeout=60)
        session.execute("CREATE KEYSPACE prod WITH replication = "
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}", timeout=60)
    finally:
        cluster.shutdown()
    directory = tmp_path / "backup"
    try:
        with pytest.raises(FuretError) as caught:
            backup_cassandra(filled, directory, [node_spec(cassandra_instance)],
                             splits=SPLITS, tag="furet-it-empty")
        assert str(caught.value).endswith(
            "keyspace prod has no table (target of flow cassandra_prod): nothing to back up; "
            "`furet cassandra init` creates the flows' tables"), str(caught.value)
        assert snapshots_left(cassandra_instance)[0] == []
        assert not directory.exists()
        assert lock_holder(filled) is None
    finally:
        fresh_prod_keyspace(cassandra_instance.address)
