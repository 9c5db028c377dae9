"""`furet backup cassandra` without a ring: the node-side script against a fake data
directory and a stub nodetool, the stream checked as it passes, the parsers of nodetool's
outputs, the ring check, the manifests and checksums documents, the CQL splitter and the
comparison lines of the restore test."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from migration.backup.cassandra import arrival_problem, check_ring, new_tag, stream_node
from migration.backup.cassandra_checksums import (
    CassandraChecksums,
    CqlTable,
    TableSums,
    cell_text,
    compare_sums,
)
from migration.backup.cassandra_manifest import (
    CassandraManifest,
    NodeManifest,
    TableSchema,
    manifest_kind,
)
from migration.backup.cassandra_node import (
    NodeCommand,
    NodeInfo,
    SnapshotFile,
    check_path,
    parse_files,
    parse_info,
    parse_listsnapshots,
    parse_nodes,
    reason,
    snapshot_tables,
)
from migration.backup.cassandra_restore import split_cql, unpack
from migration.backup.manifest import FileEntry
from migration.errors import FuretError
from migration.verify.cassandra_checksum import token_ranges
from tests.helpers import REPO

SCRIPT = REPO / "roles" / "cassandra" / "files" / "usr" / "local" / "bin" / "furet-cassandra-backup"
TAG = "furet-20261130T000000Z-abcdef"
TABLE_DIR = "prod/quotes_by_day-47230a70ec9f11f1a8b80fba4995744b"

INFO = """ID                     : d47231ed-6998-4fde-9613-0c5e2f704f64
Gossip active          : true
Load                   : 116.79 KiB
Data Center            : rbx
Rack                   : rack1
Key Cache              : entries 8, size 640 bytes, capacity 25 MiB, 68 hits
Token                  : -947431488234188243
Token                  : 9182081198925786433
Bootstrap state        : COMPLETED
ReleaseVersion: 5.0.9
"""

LISTSNAPSHOTS = f"""Snapshot Details:
Snapshot name Keyspace name Column family name True size Size on disk Creation time
{TAG}      prod          quotes_by_day      1.29 KiB  1.29 KiB     2026-11-30T09:22:27.030Z
{TAG}      prod          quotes_by_customer 1.33 KiB  109 KiB      2026-11-30T09:22:27.030Z
furet-other   prod          quotes_by_day      1.29 KiB  1.29 KiB     2026-11-30T09:22:27.030Z

Total TrueDiskSpaceUsed: 0 bytes
"""


# --- the node-side script -------------------------------------------------------------


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    """A data directory holding snapshot TAG of one table (and another snapshot), and a
    stub nodetool that logs its arguments."""
    data = tmp_path / "data"
    snap = data / TABLE_DIR / "snapshots" / TAG
    snap.mkdir(parents=True)
    (snap / "oa-1-big-Data.db").write_bytes(os.urandom(70_000))
    (snap / "oa-1-big-TOC.txt").write_text("Data.db\nTOC.txt\n")
    (snap / "schema.cql").write_text("CREATE TABLE IF NOT EXISTS prod.quotes_by_day (a int "
                                     "PRIMARY KEY) WITH comment = 'a;b';\n")
    other = data / TABLE_DIR / "snapshots" / "furet-other"
    other.mkdir(parents=True)
    (other / "oa-9-big-Data.db").write_text("not ours")
    (data / TABLE_DIR / "oa-1-big-Data.db").write_text("live, not in the snapshot")
    stub = tmp_path / "nodetool"
    stub.write_text(f'#!/bin/sh\necho "nodetool $*" >> {tmp_path}/calls\n'
                    'case "$1" in version) echo "ReleaseVersion: 5.0.9" ;; esac\n')
    stub.chmod(0o755)
    return tmp_path


def _node(base: Path) -> NodeCommand:
    return NodeCommand("c1", ("env", f"FURET_CASSANDRA_DATA={base / 'data'}",
                              f"NODETOOL={base / 'nodetool'}", "bash", str(SCRIPT)))


def _script(base: Path, *args: str, ssh: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FURET_CASSANDRA_DATA=str(base / "data"),
               NODETOOL=str(base / "nodetool"))
    if ssh is not None:
        env["SSH_ORIGINAL_COMMAND"] = ssh
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, check=False)


def test_files_lists_the_snapshot_only_with_sizes_and_sha256(node_dir: Path) -> None:
    files = parse_files(_node(node_dir).run("files", TAG), "c1", TAG)
    snap = node_dir / "data" / TABLE_DIR / "snapshots" / TAG
    assert [f.path for f in files] == [f"{TABLE_DIR}/snapshots/{TAG}/{n}" for n in
                                       ("oa-1-big-Data.db", "oa-1-big-TOC.txt", "schema.cql")]
    data = (snap / "oa-1-big-Data.db").read_bytes()
    assert (files[0].size, files[0].sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert [t.name for t in snapshot_tables(files)] == ["prod.quotes_by_day"]


def test_snapshot_and_clear_call_nodetool_with_the_tag(node_dir: Path) -> None:
    _node(node_dir).run("snapshot", TAG, "prod")
    _node(node_dir).run("clear", TAG)
    assert (node_dir / "calls").read_text().splitlines() == [
        f"nodetool snapshot -t {TAG} -- prod", "nodetool listsnapshots",
        f"nodetool clearsnapshot -t {TAG}"]


@pytest.mark.parametrize("ssh", [
    "clear x*", "clear furet-a;reboot", "snapshot furet-a prod;rm", "snapshot furet-a ../x",
    "stream ../../etc", "shell furet-a", "files furet-a extra", "clear  ",
])
def test_forced_command_refuses_what_it_does_not_know(node_dir: Path, ssh: str) -> None:
    done = _script(node_dir, ssh=ssh)
    assert done.returncode == 2, done
    assert done.stderr.startswith("furet-cassandra-backup: ")
    assert not (node_dir / "calls").exists()  # nodetool never ran


def test_forced_command_takes_its_arguments_from_ssh(node_dir: Path) -> None:
    done = _script(node_dir, ssh=f"files {TAG}")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 3


def test_files_of_a_missing_snapshot_fail(node_dir: Path) -> None:
    with pytest.raises(FuretError, match=r"^cassandra node c1: `files furet-none` exited 2: "
                                         r"furet-cassandra-backup: no snapshot furet-none"):
        _node(node_dir).run("files", "furet-none")


def test_stream_arrives_as_listed_and_keeps_schema(node_dir: Path, tmp_path: Path) -> None:
    node = _node(node_dir)
    listed = parse_files(node.run("files", TAG), "c1", TAG)
    part = tmp_path / "c1.tar.zst"
    streamed = stream_node(node, TAG, listed, part, "zstd", tmp_path / "c1.err")
    assert streamed.size == part.stat().st_size
    assert streamed.sha256 == hashlib.sha256(part.read_bytes()).hexdigest()
    assert "WITH comment = 'a;b'" in streamed.schemas[f"{TABLE_DIR}/snapshots/{TAG}"]
    # the archive unpacks to the files as listed
    manifest = NodeManifest("c1", NodeInfo("id", "dc", "r", (1,), "5.0.9"), TAG, (), listed)
    assert unpack(part, tmp_path / "out", manifest, "cassandra/c1.tar.zst") == []
    assert (tmp_path / "out" / listed[0].path).read_bytes() == \
        (node_dir / "data" / listed[0].path).read_bytes()


def test_a_file_changed_after_listing_is_named(node_dir: Path, tmp_path: Path) -> None:
    node = _node(node_dir)
    listed = parse_files(node.run("files", TAG), "c1", TAG)
    data = node_dir / "data" / listed[0].path
    raw = bytearray(data.read_bytes())
    raw[1000] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(FuretError, match=rf"^cassandra node c1: {listed[0].path}: arrived with "
                                         r"70000 bytes sha256 [0-9a-f]{64}, the node listed"):
        stream_node(node, TAG, listed, tmp_path / "c1.tar.zst", "zstd", tmp_path / "c1.err")


def test_a_failing_stream_is_one_line(node_dir: Path, tmp_path: Path) -> None:
    node = NodeCommand("c1", ("env", "FURET_CASSANDRA_DATA=/nonexistent", "bash", str(SCRIPT)))
    with pytest.raises(FuretError, match=r"`stream furet-x` exited 2: furet-cassandra-backup: "
                                         r"no data directory /nonexistent"):
        stream_node(node, "furet-x", [], tmp_path / "c1.tar.zst", "zstd", tmp_path / "c1.err")


def test_unpack_names_a_flipped_file(node_dir: Path, tmp_path: Path) -> None:
    node = _node(node_dir)
    listed = parse_files(node.run("files", TAG), "c1", TAG)
    part = tmp_path / "c1.tar.zst"
    stream_node(node, TAG, listed, part, "zstd", tmp_path / "c1.err")
    lying = (SnapshotFile(listed[0].path, listed[0].size, "0" * 64), *listed[1:3])
    gone = SnapshotFile(f"{TABLE_DIR}/snapshots/{TAG}/gone", 1, "0" * 64)
    manifest = NodeManifest("c1", NodeInfo("id", "dc", "r", (1,), "5.0.9"), TAG, (),
                            (*lying, gone))
    problems = unpack(part, tmp_path / "out", manifest, "cassandra/c1.tar.zst")
    assert problems[0].startswith(f"cassandra/c1.tar.zst: {listed[0].path}: 70000 bytes sha256 ")
    assert problems[0].endswith(f"differs from the node's 70000 bytes sha256 {'0' * 64}")
    assert problems[1] == (f"cassandra/c1.tar.zst: {TABLE_DIR}/snapshots/{TAG}/gone: in "
                           "cassandra/c1.json, not in the archive")


# --- parsers ------------------------------------------------------------------------------


def test_parse_info() -> None:
    assert parse_info(INFO, "c1") == NodeInfo("d47231ed-6998-4fde-9613-0c5e2f704f64", "rbx",
                                              "rack1", (-947431488234188243, 9182081198925786433),
                                              "5.0.9")
    with pytest.raises(FuretError, match="^cassandra node c1: `info` printed no Token, "
                                         "ReleaseVersion"):
        parse_info("ID : x\nData Center : a\nRack : b\n", "c1")


def test_parse_listsnapshots_keeps_the_tag_only() -> None:
    assert parse_listsnapshots(LISTSNAPSHOTS, TAG) == {("prod", "quotes_by_day"),
                                                       ("prod", "quotes_by_customer")}
    assert parse_listsnapshots("Snapshot Details: \nThere are no snapshots\n", TAG) == set()


def test_parse_files_refuses_paths_outside_the_snapshot() -> None:
    good = f"{'a' * 64} 12 ./{TABLE_DIR}/snapshots/{TAG}/oa-1-big-Data.db\n"
    assert parse_files(good, "c1", TAG)[0].path == f"{TABLE_DIR}/snapshots/{TAG}/oa-1-big-Data.db"
    for path in (f"{TABLE_DIR}/oa-1-big-Data.db", f"{TABLE_DIR}/snapshots/furet-x/f",
                 f"{TABLE_DIR}/snapshots/{TAG}/../../../etc/passwd", f"/{TABLE_DIR}/snapshots/"
                 f"{TAG}/f"):
        with pytest.raises(FuretError, match="is not a file of snapshot"):
            parse_files(f"{'a' * 64} 1 {path}\n", "c1", TAG)
    with pytest.raises(FuretError, match="SHA256 SIZE PATH expected"):
        parse_files("nonsense\n", "c1", TAG)
    assert check_path(f"./{TABLE_DIR}/snapshots/{TAG}/.idx/f", TAG, "x").endswith(".idx/f")


def test_reason_is_nodetools_line_not_its_stack_trace() -> None:
    stderr = ("error: Snapshot furet-x already exists.\n-- StackTrace --\n"
              "java.io.IOException: Snapshot furet-x already exists.\n"
              "\tat org.apache.X(Y.java:1)\n")
    assert reason(stderr) == "error: Snapshot furet-x already exists."
    assert reason("nodetool: Failed to connect to '127.0.0.1:7199'\n") == \
        "nodetool: Failed to connect to '127.0.0.1:7199'"
    assert reason("", "Some directories failed\n/x\n") == "/x"


def test_node_specs() -> None:
    node = NodeCommand.parse("cassandra1=ssh -i '/root/.ssh/backup key' root@cassandra1")
    assert node.prefix == ("ssh", "-i", "/root/.ssh/backup key", "root@cassandra1")
    assert node.argv("snapshot", TAG, "prod")[-3:] == ["snapshot", TAG, "prod"]
    for bad, match in (("cassandra1", "expected NAME=COMMAND"), ("../x=ssh", "must be letters"),
                       ("c=ssh 'x", "cannot split")):
        with pytest.raises(FuretError, match=match):
            NodeCommand.parse(bad)
    with pytest.raises(FuretError, match="--node c1: given twice"):
        parse_nodes(["c1=a", "c1=b"])
    with pytest.raises(FuretError, match="no --node"):
        parse_nodes([])
    assert new_tag().startswith("furet-") and new_tag() != new_tag()


def test_check_ring_wants_every_node_once() -> None:
    def host(host_id: str) -> SimpleNamespace:
        return SimpleNamespace(host_id=host_id, address=f"10.0.0.{host_id}", datacenter="rbx",
                               rack="r1")

    def info(host_id: str) -> NodeInfo:
        return NodeInfo(host_id, "rbx", "r1", (1,), "5.0.9")

    check_ring([host("1"), host("2")], {"a": info("1"), "b": info("2")}, "cassandra x")
    with pytest.raises(FuretError, match=r"the ring has node 10\.0\.0\.2 \(host id 2, dc rbx, "
                                         r"rack r1\) that no --node names"):
        check_ring([host("1"), host("2")], {"a": info("1")}, "cassandra x")
    with pytest.raises(FuretError, match="--node a and --node b are the same Cassandra node"):
        check_ring([host("1")], {"a": info("1"), "b": info("1")}, "cassandra x")
    with pytest.raises(FuretError, match="--node b: host id 3 is not a node of cassandra x"):
        check_ring([host("1")], {"a": info("1"), "b": info("3")}, "cassandra x")


def test_arrival_problem() -> None:
    listed = {"p/a": SnapshotFile("p/a", 3, "x"), "p/b": SnapshotFile("p/b", 1, "y")}
    assert arrival_problem(listed, {"p/a": (3, "x"), "p/b": (1, "y")}) == ""
    assert arrival_problem(listed, {"p/a": (3, "x")}) == \
        "p/b: listed by the node, not in its stream"
    assert arrival_problem(listed, {"p/a": (3, "x"), "p/b": (1, "y"), "p/c": (0, "z")}) == \
        "p/c: in the stream, not listed by the node"


# --- documents ----------------------------------------------------------------------------


def test_checksums_round_trip_and_mismatch_lines() -> None:
    table = CqlTable("prod", "quotes_by_day", (("day", "date"), ("quote_id", "bigint")),
                     ("day",))
    sums = TableSums(table, {0: (3, 0xABC), 200: (1, 7)})
    doc = CassandraChecksums("cassandra 127.0.0.22:9042", "2026-11-30T00:00:00+00:00", "ALL",
                             256, ("prod",), (sums,))
    again = CassandraChecksums.from_json(doc.to_json())
    assert again == doc and again.rows == 4 and again.buckets == 2
    restored = TableSums(table, {0: (3, 0xABC), 200: (1, 6), 201: (2, 9)})
    lines = [m.line for m in compare_sums(sums, restored, 256)]
    lo, hi = token_ranges(256)[200]
    assert lines[0] == (f"prod.quotes_by_day token range ({lo}, {hi}]: restored 1 rows "
                        "(checksum 0000000000000006), backup 1 rows (checksum 0000000000000007)")
    assert lines[1].startswith("prod.quotes_by_day token range (") and "backup 0 rows" in lines[1]
    with pytest.raises(FuretError, match="format 'x', expected"):
        CassandraChecksums.from_json('{"format": "x"}')


def test_blobs_hash_as_hex() -> None:
    assert cell_text(b"\xff\xfe") != cell_text(b"\xfe\xff")   # value_text would give two '??'
    assert cell_text(b"\xff") == "0xff" and cell_text(5) == "5" and cell_text(None) is None


def test_manifests_round_trip(tmp_path: Path) -> None:
    files = (SnapshotFile(f"{TABLE_DIR}/snapshots/{TAG}/schema.cql", 10, "a" * 64),)
    (table,) = snapshot_tables(files)
    node = NodeManifest("c1", NodeInfo("id", "rbx", "r1", (-5, 7), "5.0.9"), TAG,
                        (TableSchema(table, "CREATE TABLE x;"),), files)
    assert NodeManifest.from_json(node.to_json(), "c1.json") == node
    top = CassandraManifest("cassandra x", ("5.0.9",), ("prod",), "now", TAG,
                            ("cassandra_prod",), ("c1",),
                            (FileEntry("cassandra/c1.tar.zst", 5, "b" * 64),), "c" * 64, 1.5)
    assert CassandraManifest.from_json(top.to_json()) == top
    assert json.loads(top.to_json())["kind"] == "cassandra"
    (tmp_path / "manifest.json").write_text(top.to_json())
    assert manifest_kind(tmp_path) == "cassandra"
    assert manifest_kind(tmp_path / "none") == ""
    assert list(top.expected_files()) == ["checksums.json", "cassandra/c1.tar.zst",
                                          "cassandra/c1.json"]


def test_split_cql() -> None:
    script = ("CREATE TYPE IF NOT EXISTS prod.t (a int);\n"
              "-- a comment; with a semicolon\n"
              "CREATE TABLE IF NOT EXISTS prod.x (a int PRIMARY KEY, \"b;c\" text)\n"
              "    WITH comment = 'it''s; fine' AND x = $$a;b$$;\n/* c; */\n")
    assert split_cql(script) == [
        "CREATE TYPE IF NOT EXISTS prod.t (a int)",
        "CREATE TABLE IF NOT EXISTS prod.x (a int PRIMARY KEY, \"b;c\" text)\n"
        "    WITH comment = 'it''s; fine' AND x = $$a;b$$"]


def test_unpack_refuses_a_path_outside_the_snapshot(tmp_path: Path) -> None:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        info = tarfile.TarInfo(f"./{TABLE_DIR}/snapshots/{TAG}/../../../../../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    archive = tmp_path / "c1.tar.zst"
    archive.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=packed.getvalue(),
                                       capture_output=True, check=True).stdout)
    manifest = NodeManifest("c1", NodeInfo("id", "dc", "r", (1,), "5.0.9"), TAG, (), ())
    problems = unpack(archive, tmp_path / "out", manifest, "cassandra/c1.tar.zst")
    assert problems[0].startswith("cassandra/c1.tar.zst: './prod/quotes_by_day-")
    assert "is not a file of snapshot" in problems[0]
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out").exists()
