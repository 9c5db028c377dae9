"""A Cassandra backup directory's two kinds of table of contents.

::

    DIR/manifest.json              kind "cassandra", written last: the tag, the keyspaces,
                                   the nodes, every file below with its size and sha256
    DIR/checksums.json             the bucket checksums (migration.backup.cassandra_checksums)
    DIR/cassandra/NODE.tar.zst     the node's snapshot files (paths KS/TABLE-ID/snapshots/TAG/F)
    DIR/cassandra/NODE.json        the node's manifest: host id, dc, rack, tokens, release
                                   version, each table's schema.cql, and every file of the
                                   archive with the size and sha256 taken on the node

``manifest.json`` has the format and the ``kind``/``files``/``checksums`` keys of
:mod:`migration.backup.manifest`'s, so ``furet backup restore-test`` tells the kinds apart
by ``kind``. As there, a directory without ``manifest.json`` is not a finished backup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migration.backup.cassandra_node import NodeInfo, SnapshotFile, SnapshotTable
from migration.backup.manifest import (
    CHECKSUMS_FILE,
    FORMAT,
    MANIFEST_FILE,
    FileEntry,
    manifest_path,
)
from migration.errors import FuretError

KIND = "cassandra"
NODE_FORMAT = "furet-backup-cassandra-node/1"
NODES_DIR = "cassandra"

def archive_name(node: str) -> str:
    return f"{NODES_DIR}/{node}.tar.zst"


def node_manifest_name(node: str) -> str:
    return f"{NODES_DIR}/{node}.json"


def listed_names(nodes: Iterable[str]) -> list[str]:
    """What ``manifest.json`` lists for a backup of ``nodes``."""
    return [CHECKSUMS_FILE, *(name for node in nodes
                              for name in (archive_name(node), node_manifest_name(node)))]


@dataclass(frozen=True)
class TableSchema:
    table: SnapshotTable
    schema_cql: str


@dataclass(frozen=True)
class NodeManifest:
    node: str
    info: NodeInfo
    tag: str
    tables: tuple[TableSchema, ...]
    files: tuple[SnapshotFile, ...]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        return json.dumps({
            "format": NODE_FORMAT, "node": self.node, "host_id": self.info.host_id,
            "dc": self.info.dc, "rack": self.info.rack, "tokens": list(self.info.tokens),
            "release_version": self.info.release_version, "tag": self.tag,
            "archive": archive_name(self.node).split("/", 1)[1],
            "tables": [{"keyspace": t.table.keyspace, "table": t.table.table,
                        "directory": t.table.directory, "schema_cql": t.schema_cql}
                       for t in self.tables],
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> NodeManifest:
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw.get("format") != NODE_FORMAT:
                raise FuretError(f"{where}: format {raw.get('format')!r}, expected "
                                 f"{NODE_FORMAT!r}")
            info = NodeInfo(str(raw["host_id"]), str(raw["dc"]), str(raw["rack"]),
                            tuple(int(t) for t in raw["tokens"]), str(raw["release_version"]))
            tables = tuple(TableSchema(SnapshotTable(str(t["keyspace"]), str(t["table"]),
                                                     str(t["directory"])), str(t["schema_cql"]))
                           for t in raw["tables"])
            files = tuple(SnapshotFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                          for f in raw["files"])
            return cls(str(raw["node"]), info, str(raw["tag"]), tables, files)
        except (ValueError, KeyError, TypeError) as exc:
            raise FuretError(f"{where}: not a furet Cassandra node manifest ({exc!r})") from None


@dataclass(frozen=True)
class CassandraManifest:
    cluster: str                   # cassandra 10.0.0.21,10.0.0.22:9042
    release_versions: tuple[str, ...]
    keyspaces: tuple[str, ...]
    created_at: str
    tag: str
    flows: tuple[str, ...]         # whose locks were held during snapshot and checksums
    nodes: tuple[str, ...]
    files: tuple[FileEntry, ...]
    checksums_sha256: str
    lock_seconds: float = 0.0      # rounds held off this long

    kind = KIND

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "kind": KIND, "server": self.cluster,
            "server_version": ", ".join(self.release_versions),
            "keyspaces": list(self.keyspaces), "created_at": self.created_at,
            "tag": self.tag, "flows": list(self.flows), "nodes": list(self.nodes),
            "files": [f.to_dict() for f in self.files],
            "checksums": {"file": CHECKSUMS_FILE, "sha256": self.checksums_sha256},
            "lock_seconds": round(self.lock_seconds, 3),
        }, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST_FILE) -> CassandraManifest:
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw.get("format") != FORMAT or raw.get("kind") != KIND:
                raise FuretError(f"{where}: format {raw.get('format')!r} kind "
                                 f"{raw.get('kind')!r}, expected {FORMAT!r} kind {KIND!r}")
            return cls(
                str(raw["server"]),
                tuple(v.strip() for v in str(raw.get("server_version", "")).split(",")
                      if v.strip()),
                tuple(str(k) for k in raw["keyspaces"]), str(raw["created_at"]),
                str(raw["tag"]), tuple(str(f) for f in raw["flows"]),
                tuple(str(n) for n in raw["nodes"]),
                tuple(FileEntry.of(f) for f in raw["files"]),
                str(raw["checksums"]["sha256"]), float(raw.get("lock_seconds", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise FuretError(f"{where}: not a furet Cassandra backup manifest ({exc!r})") \
                from None

    def file(self, name: str) -> FileEntry | None:
        for entry in self.files:
            if entry.name == name:
                return entry
        return None

    def expected_files(self) -> Sequence[str]:
        """What a complete backup of these nodes lists."""
        return listed_names(self.nodes)


def manifest_kind(directory: Path) -> str:
    """The ``kind`` of the backup in ``directory`` ("" when its manifest is unreadable: the
    reader of that kind says why)."""
    try:
        raw = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(raw.get("kind", "")) if isinstance(raw, dict) else ""


def read_cassandra_manifest(directory: Path) -> CassandraManifest:
    path = manifest_path(directory)
    return CassandraManifest.from_json(path.read_text(encoding="utf-8"), str(path))
