"""`furet backup cassandra --to DIR --node NAME=COMMAND ...`: the ring's snapshots and their
checksums, run on the backup host (design issue 13, sections 1 and 4; why not
cassandra-medusa: its failed snapshot is a "successful" empty backup, and its local
verification compares sizes only).

Before the cutover only furet's rounds write the ring, so furet holds the locks of every
Cassandra flow (:mod:`migration.engine.flow_lock`, in the ledger on ``config.target``) from
the first snapshot to the last checksum:

1. ``info`` on every node (:mod:`migration.backup.cassandra_node`): host id, dc, rack,
   tokens, release version. The nodes named must be the ring, every node of it (the
   driver's view): a node left out would leave its replicas out;
2. under the locks: ``snapshot furet-<id> KEYSPACE...`` on each node, checked against
   ``nodetool listsnapshots`` (every table of the keyspaces listed under the tag, else one
   line naming the node and the tag); then every table read at CL ALL into fixed token
   buckets (:mod:`migration.backup.cassandra_checksums`). The locks are released;
3. per node: ``files`` (each snapshot file's size and sha256, taken on the node), then
   ``stream``: the tar goes through ``zstd`` into ``cassandra/NODE.tar.zst``, its sha256
   taken as it is written, and furet reads the tar as it passes: every file must arrive
   with the size and sha256 the node listed, and each table's ``schema.cql`` is kept for
   the node's manifest;
4. ``clear`` the snapshot on every node it was asked of, whatever happened (a clear that
   fails is reported: on success as a leftover to remove, on failure in the error line).

Files are written under ``.part`` names and renamed; ``checksums.json``, the node
manifests and last ``manifest.json`` (:mod:`migration.backup.cassandra_manifest`) follow.
A backup that fails removes what it wrote (and the directory if it made it): a directory
without a manifest is never taken for a backup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from migration.backup.cassandra_checksums import (
    SPLITS,
    WORKERS,
    CassandraChecksums,
    keyspaces_present,
    read_tables,
    take_checksums,
)
from migration.backup.cassandra_manifest import (
    NODES_DIR,
    CassandraManifest,
    NodeManifest,
    TableSchema,
    archive_name,
    listed_names,
    node_manifest_name,
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
    snapshot_tables,
)
from migration.backup.manifest import (
    CHECKSUMS_FILE,
    MANIFEST_FILE,
    FileEntry,
    keep_part,
    now_iso,
    write_listed,
    write_manifest,
)
from migration.backup.pipe import CompressPipe, backup_directory, refuse_used, sync_directory, tool
from migration.config import FuretConfig
from migration.engine.flow_lock import hold_all
from migration.errors import FuretError
from migration.flows.locate import SHIPPED_DIR, flow_names
from migration.flows.mapping import Flow, load_flow

BLOCK = 1 << 20
SCHEMA_FILE = "schema.cql"
LOCK_WAIT_S = 300.0     # a running round ends well within it (as backup galera)


@dataclass(frozen=True)
class CassandraBackupResult:
    directory: Path
    cluster: str
    tag: str
    nodes: tuple[str, ...]
    keyspaces: tuple[str, ...]
    tables: int
    rows: int
    buckets: int
    files: int
    data_bytes: int            # the snapshot files, as on the nodes
    archive_bytes: int         # the .tar.zst files
    lock_seconds: float        # rounds held off (snapshots and checksums)
    lock_wait_seconds: float   # waited for the locks (a round was running)
    seconds: float
    leftovers: tuple[str, ...] = ()   # snapshots a clear could not remove, one line each

    @property
    def line(self) -> str:
        return (f"{self.cluster}: backup {self.directory} tag {self.tag} of "
                f"{', '.join(self.keyspaces)} from {len(self.nodes)} nodes: {self.tables} "
                f"tables, {self.rows:,} rows in {self.buckets} checksummed token ranges, "
                f"{self.files} files {self.data_bytes:,} bytes as {self.archive_bytes:,} bytes "
                f"of tar.zst, rounds held off {self.lock_seconds:.1f}s (waited "
                f"{self.lock_wait_seconds:.1f}s for them), {self.seconds:.1f}s")


# --- what to back up --------------------------------------------------------------------


def cassandra_flows(config: FuretConfig, names: Sequence[str] = ()) -> list[Flow]:
    """The flows whose target is Cassandra: ``names``, or every shipped and deployed one."""
    if names:
        flows = [load_flow(n, flows_dir=config.flows.dir) for n in dict.fromkeys(names)]
        for flow in flows:
            if flow.target_kind != "cassandra":
                raise FuretError(f"flow {flow.name}: its target is {flow.target_kind}, not "
                                 "cassandra")
        return flows
    found = dict.fromkeys([*flow_names(SHIPPED_DIR), *flow_names(config.flows.dir)])
    flows = [load_flow(n, flows_dir=config.flows.dir) for n in found]
    flows = [f for f in flows if f.target_kind == "cassandra"]
    if not flows:
        raise FuretError("backup cassandra: no flow targets Cassandra (shipped or in "
                         f"flows.dir {config.flows.dir or '(unset)'}): nothing to back up")
    return flows


def new_tag(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"furet-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def check_ring(hosts: Iterable[Any], infos: Mapping[str, NodeInfo], where: str) -> None:
    """The nodes named are the ring: each host of ``hosts`` (the driver's Host objects:
    host_id, address, datacenter, rack) is one of them, once."""
    by_id: dict[str, str] = {}
    for name, info in infos.items():
        if info.host_id in by_id:
            raise FuretError(f"--node {by_id[info.host_id]} and --node {name} are the same "
                             f"Cassandra node (host id {info.host_id})")
        by_id[info.host_id] = name
    ring = {str(h.host_id): h for h in hosts}
    for host_id, host in sorted(ring.items()):
        if host_id not in by_id:
            raise FuretError(f"{where}: the ring has node {host.address} (host id {host_id}, "
                             f"dc {host.datacenter}, rack {host.rack}) that no --node names: "
                             "its replicas would be missing from the backup")
    for host_id, name in by_id.items():
        if host_id not in ring:
            raise FuretError(f"--node {name}: host id {host_id} is not a node of {where}")


# --- streaming a node's snapshot --------------------------------------------------------


@dataclass(frozen=True)
class Streamed:
    size: int                    # bytes of the .tar.zst
    sha256: str
    schemas: dict[str, str]      # table directory -> its schema.cql


class SnapshotStream(CompressPipe):
    """``COMMAND stream TAG | zstd > part``, the tar read as it passes (a thread parses the
    blocks the pipe sees): each file's size and sha256 as it arrived, each table's
    ``schema.cql``. A tar that does not parse is remembered and the rest drained, so the
    pipe never waits on the parser."""

    def __init__(self, node: NodeCommand, tag: str, zstd: str, part: Path,
                 errors: Path) -> None:
        self.tag = tag
        self.where = f"cassandra node {node.name}"
        self.arrived: dict[str, tuple[int, str]] = {}
        self.schemas: dict[str, str] = {}
        self.problem = ""
        read_end, write_end = os.pipe()
        self._source = os.fdopen(read_end, "rb")
        self._sink: IO[bytes] | None = os.fdopen(write_end, "wb")
        self._sink_lock = threading.Lock()
        self.parser = threading.Thread(target=self._parse, name=f"furet-tar-{node.name}",
                                       daemon=True)
        self.parser.start()
        try:
            super().__init__(node.argv("stream", tag), zstd, part, errors, "",
                             f"`stream {tag}`")
        except BaseException:
            self.stopped()
            self.parser.join()
            raise

    def seen(self, block: bytes) -> None:
        with self._sink_lock:
            if self._sink is not None:
                self._sink.write(block)

    def stopped(self) -> None:
        with self._sink_lock:
            if self._sink is not None:
                with contextlib.suppress(OSError):
                    self._sink.close()
                self._sink = None

    def _parse(self) -> None:
        try:
            with tarfile.open(fileobj=self._source, mode="r|") as tar:
                for member in tar:
                    if member.isdir():
                        continue
                    path = check_path(member.name, self.tag, self.where)
                    if not member.isfile():
                        raise FuretError(f"{path} is not a regular file")
                    reader = tar.extractfile(member)
                    assert reader is not None
                    digest, size, kept = hashlib.sha256(), 0, []
                    schema = path.endswith("/" + SCHEMA_FILE)
                    while block := reader.read(BLOCK):
                        digest.update(block)
                        size += len(block)
                        if schema:
                            kept.append(block)
                    self.arrived[path] = (size, digest.hexdigest())
                    if schema:
                        self.schemas[path.rsplit("/", 1)[0]] = \
                            b"".join(kept).decode("utf-8", "replace")
        except (tarfile.TarError, EOFError) as exc:
            self.problem = f"`stream {self.tag}` is not a complete tar ({exc})"
        except FuretError as exc:
            self.problem = str(exc).removeprefix(self.where + ": ")
        finally:
            with contextlib.suppress(OSError):
                while self._source.read(BLOCK):  # the rest: the pipe never waits on us
                    pass
                self._source.close()

    def result(self, listed: Sequence[SnapshotFile]) -> Streamed:
        """After :meth:`finish`: the archive, or one line naming the node and the file that
        did not arrive as the node listed it."""
        self.parser.join()
        problem = self.problem or arrival_problem({f.path: f for f in listed}, self.arrived)
        if problem:
            raise FuretError(f"{self.where}: {problem}")
        return Streamed(self.size, self.digest.hexdigest(), dict(self.schemas))


def stream_node(node: NodeCommand, tag: str, listed: Sequence[SnapshotFile], part: Path,
                zstd: str, errors: Path) -> Streamed:
    """``COMMAND stream TAG | zstd > part``, every file checked against ``listed``."""
    stream = SnapshotStream(node, tag, zstd, part, errors)
    try:
        stream.finish(stream.where)
    except BaseException:
        stream.abort()
        stream.stopped()
        stream.parser.join(10)
        raise
    return stream.result(listed)


def arrival_problem(listed: Mapping[str, SnapshotFile],
                    arrived: Mapping[str, tuple[int, str]]) -> str:
    """The first difference between the files the node listed and those that arrived
    (``path -> (size, sha256)``), "" when none."""
    for path, entry in sorted(listed.items()):
        got = arrived.get(path)
        if got is None:
            return f"{path}: listed by the node, not in its stream"
        if got != (entry.size, entry.sha256):
            return (f"{path}: arrived with {got[0]} bytes sha256 {got[1]}, the node listed "
                    f"{entry.size} bytes sha256 {entry.sha256}")
    extra = sorted(set(arrived) - set(listed))
    if extra:
        return f"{extra[0]}: in the stream, not listed by the node"
    return ""


# --- the backup -------------------------------------------------------------------------


def backup_cassandra(config: FuretConfig, to: Path | str, nodes: Sequence[str | NodeCommand],
                     *, flows: Sequence[str] = (), splits: int = SPLITS,
                     workers: int = WORKERS, lock_wait_s: float = LOCK_WAIT_S,
                     tag: str | None = None) -> CassandraBackupResult:
    """Snapshot, checksum and copy the Cassandra flows' keyspaces into ``to``; see the
    module docstring. ``nodes``: ``NAME=COMMAND`` specs (or parsed)."""
    from migration.cassandra_session import cassandra_session

    started = time.monotonic()
    directory = Path(to)
    commands = parse_nodes(nodes)
    chosen = cassandra_flows(config, flows)
    keyspaces = tuple(sorted({f.target_database for f in chosen}))
    tag = tag or new_tag()
    refuse_used(directory)
    zstd = tool("zstd")
    where = config.cassandra.where
    cluster, session = cassandra_session(config.cassandra)
    try:
        infos = {n.name: parse_info(n.run("info"), n.name) for n in commands}
        check_ring(cluster.metadata.all_hosts(), infos, where)
        missing = sorted(set(keyspaces) - keyspaces_present(session, keyspaces))
        if missing:
            raise FuretError(f"{where}: no keyspace {missing[0]} (target of flow "
                             f"{next(f.name for f in chosen if f.target_database == missing[0])})")
        empty = [ks for ks in keyspaces if not read_tables(session, (ks,))]
        if empty:
            raise FuretError(f"{where}: keyspace {empty[0]} has no table (target of flow "
                             f"{next(f.name for f in chosen if f.target_database == empty[0])}): "
                             "nothing to back up; `furet cassandra init` creates the flows' tables")
        snapshotted: list[NodeCommand] = []
        written = [*listed_names(n.name for n in commands), MANIFEST_FILE]
        try:
            with backup_directory(directory, written, (NODES_DIR,)) as private:
                result = _take(config, cluster, session, commands, infos, chosen, keyspaces,
                               tag, directory, private, zstd, splits, workers, lock_wait_s,
                               snapshotted, started)
        except BaseException as exc:  # its files are removed by now; then the snapshots
            left = _clear(snapshotted, tag)
            if left and isinstance(exc, FuretError):
                raise FuretError(f"{exc}; and {'; '.join(left)}") from None
            raise
        return dataclasses.replace(result, leftovers=tuple(_clear(snapshotted, tag)))
    finally:
        cluster.shutdown()


def _clear(nodes: Sequence[NodeCommand], tag: str) -> list[str]:
    """``clear TAG`` on each node; what could not be cleared, one line each."""
    left = []
    for node in nodes:
        try:
            node.run("clear", tag)
        except FuretError as exc:
            left.append(f"snapshot {tag} left on node {node.name} ({exc}): nodetool "
                        f"clearsnapshot -t {tag} there")
    return left


def _take(config: FuretConfig, cluster: Any, session: Any, nodes: Sequence[NodeCommand],
          infos: Mapping[str, NodeInfo], flows: Sequence[Flow], keyspaces: tuple[str, ...],
          tag: str, directory: Path, private: Path, zstd: str, splits: int, workers: int,
          lock_wait_s: float, snapshotted: list[NodeCommand],
          started: float) -> CassandraBackupResult:
    where = config.cassandra.where
    command = f"furet backup cassandra --to {directory}"
    with contextlib.ExitStack() as locks:
        _, waited = hold_all(locks, config.target, sorted(f.name for f in flows), command,
                             lock_wait_s, "backup cassandra")
        locked = time.monotonic()
        tables = read_tables(session, keyspaces)
        for node in nodes:
            snapshotted.append(node)
            listed = parse_listsnapshots(node.run("snapshot", tag, *keyspaces), tag)
            absent = [t.name for t in tables if (t.keyspace, t.table) not in listed]
            if absent:
                more = f" (and {len(absent) - 1} more tables)" if len(absent) > 1 else ""
                raise FuretError(f"cassandra node {node.name}: snapshot {tag}: nodetool "
                                 f"listsnapshots does not list {absent[0]}{more}: the snapshot "
                                 "failed there")
        sums = take_checksums(session, cluster, tables, consistency="ALL", splits=splits,
                              workers=workers, local_dc=config.cassandra.local_dc, where=where)
        taken_at = now_iso()
        lock_seconds = time.monotonic() - locked
    (directory / NODES_DIR).mkdir(exist_ok=True)
    entries: list[FileEntry] = []
    manifests: list[NodeManifest] = []
    for node in nodes:
        listed_files = parse_files(node.run("files", tag), node.name, tag)
        part = directory / (archive_name(node.name) + ".part")
        streamed = stream_node(node, tag, listed_files, part, zstd,
                               private / f"{node.name}.err")
        entries.append(keep_part(directory, archive_name(node.name), streamed.size,
                                 streamed.sha256))
        schemas = []
        for table in snapshot_tables(listed_files):
            if table.directory not in streamed.schemas:
                raise FuretError(f"cassandra node {node.name}: snapshot {tag} has no "
                                 f"{SCHEMA_FILE} for {table.name} ({table.directory})")
            schemas.append(TableSchema(table, streamed.schemas[table.directory]))
        manifests.append(NodeManifest(node.name, infos[node.name], tag, tuple(schemas),
                                      listed_files))
    document = CassandraChecksums(where, taken_at, "ALL", splits, keyspaces, sums)
    checksums = write_listed(directory, CHECKSUMS_FILE, document.to_json().encode())
    entries.append(checksums)
    entries += [write_listed(directory, node_manifest_name(m.node), m.to_json().encode())
                for m in manifests]
    sync_directory(directory / NODES_DIR)
    versions = tuple(sorted({i.release_version for i in infos.values()}))
    write_manifest(directory, CassandraManifest(
        where, versions, keyspaces, taken_at, tag, tuple(sorted(f.name for f in flows)),
        tuple(n.name for n in nodes), tuple(entries), checksums.sha256, lock_seconds))
    return CassandraBackupResult(
        directory, where, tag, tuple(n.name for n in nodes), keyspaces, len(sums),
        document.rows, document.buckets, sum(len(m.files) for m in manifests),
        sum(m.bytes for m in manifests),
        sum(e.size for e in entries if e.name.endswith(".tar.zst")), lock_seconds, waited,
        time.monotonic() - started)
