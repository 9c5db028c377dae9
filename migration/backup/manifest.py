"""A backup directory's table of contents: ``manifest.json``, written last.

A directory holds a finished backup only when its manifest is there: the backup writes its
files under ``.part`` names, renames them, then writes the manifest (to a temporary name,
renamed), so a backup that stopped half-way has no manifest and a restore test refuses it.
The manifest lists every file with its size and sha256 (the dump's or the archive's taken
in the pipe that wrote it), the binary log coordinates of the backup's point and the sha256
of the checksums file, which is how the restore test knows it compares with what was
recorded. ``kind`` says which backup it is and so which files it must hold
(:data:`REQUIRED_FILES`): ``legacy`` (a logical dump) or ``galera`` (a mariadb-backup
archive, whose manifest adds a ``mariabackup`` section: :class:`Physical`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from migration.backup.checksums import Coordinates
from migration.backup.pipe import sync_directory
from migration.errors import FuretError

FORMAT = "furet-backup/1"
MANIFEST_FILE = "manifest.json"
DUMP_FILE = "legacy.sql.zst"
ARCHIVE_FILE = "galera.xbstream.zst"
CHECKSUMS_FILE = "checksums.json"
REQUIRED_FILES = {"legacy": (DUMP_FILE, CHECKSUMS_FILE),
                  "galera": (ARCHIVE_FILE, CHECKSUMS_FILE)}
BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> FileEntry:
        return cls(str(raw["name"]), int(raw["size"]), str(raw["sha256"]))


@dataclass(frozen=True)
class RoundMark:
    """A flow's latest round in the ledger (``round_no`` 0: none yet)."""

    round_no: int
    status: str = ""
    invocations: int = 0
    rows_written: int = 0

    @property
    def label(self) -> str:
        if not self.round_no:
            return "no round"
        return (f"round {self.round_no} {self.status} ({self.invocations} invocations, "
                f"{self.rows_written} rows written)")

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round_no, "status": self.status,
                "invocations": self.invocations, "rows_written": self.rows_written}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> RoundMark:
        return cls(int(raw["round"]), str(raw["status"]), int(raw["invocations"]),
                   int(raw["rows_written"]))


@dataclass(frozen=True)
class Physical:
    """What a mariadb-backup (Galera) backup adds to its manifest."""

    stream_command: str            # as given to --stream-command
    galera_position: str           # uuid:seqno; "" when the node was not a Galera node
    info: dict[str, str]           # mariadb-backup's info files, as prepared: name -> text
    rounds: dict[str, RoundMark]   # the locked flows' latest rounds (unchanged throughout)
    lock_wait_seconds: float       # waited for the flow locks (a round was running)
    datadir_bytes: int             # the prepared datadir: the disk a restore test needs

    def to_dict(self) -> dict[str, Any]:
        return {"stream_command": self.stream_command,
                "galera_position": self.galera_position, "info": dict(self.info),
                "rounds": {flow: mark.to_dict() for flow, mark in sorted(self.rounds.items())},
                "lock_wait_seconds": round(self.lock_wait_seconds, 3),
                "datadir_bytes": self.datadir_bytes}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Physical:
        return cls(str(raw["stream_command"]), str(raw["galera_position"]),
                   {str(k): str(v) for k, v in raw["info"].items()},
                   {str(f): RoundMark.of(m) for f, m in raw["rounds"].items()},
                   float(raw["lock_wait_seconds"]), int(raw["datadir_bytes"]))


@dataclass(frozen=True)
class Manifest:
    kind: str                     # legacy | galera
    server: str                   # legacy 10.0.0.11:3306
    server_version: str
    databases: tuple[str, ...]
    created_at: str               # ISO, UTC
    coordinates: Coordinates | None  # None: a Galera node without a binary log
    files: tuple[FileEntry, ...]
    checksums_sha256: str
    dump_tool: str = ""           # mariadb-dump's (mariadb-backup's) --version line
    # legacy: writes stalled this long (FLUSH TABLES WITH READ LOCK); galera: furet's flow
    # locks held this long (the rounds of those flows wait meanwhile)
    lock_seconds: float = 0.0
    physical: Physical | None = None  # galera only

    def file(self, name: str) -> FileEntry:
        for entry in self.files:
            if entry.name == name:
                return entry
        raise FuretError(f"{MANIFEST_FILE}: lists no file {name}")

    def to_json(self) -> str:
        coordinates = None if self.coordinates is None else {
            "file": self.coordinates.file, "position": self.coordinates.position}
        document: dict[str, Any] = {
            "format": FORMAT, "kind": self.kind, "server": self.server,
            "server_version": self.server_version, "databases": list(self.databases),
            "created_at": self.created_at, "coordinates": coordinates,
            "files": [f.to_dict() for f in self.files],
            "checksums": {"file": CHECKSUMS_FILE, "sha256": self.checksums_sha256},
            "dump_tool": self.dump_tool, "lock_seconds": round(self.lock_seconds, 3),
        }
        if self.physical is not None:
            document["mariabackup"] = self.physical.to_dict()
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST_FILE) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw.get("format") != FORMAT:
                raise FuretError(f"{where}: format {raw.get('format')!r}, expected {FORMAT!r}")
            coordinates = raw["coordinates"]
            physical = raw.get("mariabackup")
            return cls(
                str(raw["kind"]), str(raw["server"]), str(raw.get("server_version", "")),
                tuple(str(d) for d in raw["databases"]), str(raw["created_at"]),
                None if coordinates is None else
                Coordinates(str(coordinates["file"]), int(coordinates["position"])),
                tuple(FileEntry.of(f) for f in raw["files"]),
                str(raw["checksums"]["sha256"]), str(raw.get("dump_tool", "")),
                float(raw.get("lock_seconds", 0.0)),
                None if physical is None else Physical.of(physical))
        except (ValueError, KeyError, TypeError) as exc:
            raise FuretError(f"{where}: not a furet backup manifest ({exc})") from None


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary name: a reader sees all of it or nothing."""
    part = path.with_name(path.name + ".part")
    with part.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    part.replace(path)


def now_iso() -> str:
    """Now, UTC, to the second: a backup's ``created_at`` / ``taken_at``."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_listed(directory: Path, name: str, data: bytes) -> FileEntry:
    """``data`` written as ``directory/name`` (:func:`write_atomic`): its manifest entry."""
    write_atomic(directory / name, data)
    return FileEntry(name, len(data), hashlib.sha256(data).hexdigest())


def keep_part(directory: Path, name: str, size: int, sha256: str) -> FileEntry:
    """A file written under ``name.part`` (its ``size`` and ``sha256`` taken as it was
    written) renamed to ``name``: its manifest entry."""
    (directory / (name + ".part")).replace(directory / name)
    return FileEntry(name, size, sha256)


class Contents(Protocol):
    """A backup's table of contents: :class:`Manifest`, or a Cassandra backup's."""

    def to_json(self) -> str: ...


def write_manifest(directory: Path, manifest: Contents) -> None:
    """``manifest.json``, last (every file it lists is in place): from here ``directory``
    holds a finished backup."""
    write_atomic(directory / MANIFEST_FILE, manifest.to_json().encode())
    sync_directory(directory)


def manifest_path(directory: Path) -> Path:
    """``directory``'s manifest, or a FuretError: without one it is no finished backup."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise FuretError(f"{directory}: no {MANIFEST_FILE}, not a finished furet backup "
                         "(a backup writes it last)")
    return path


def read_manifest(directory: Path) -> Manifest:
    path = manifest_path(directory)
    return Manifest.from_json(path.read_text(encoding="utf-8"), str(path))
