"""How `furet backup cassandra` reaches a Cassandra node: a command prefix per node, given as
``--node NAME=COMMAND``, to which furet appends the verb of the node-side command
``furet-cassandra-backup`` (``roles/cassandra/files/usr/local/bin/furet-cassandra-backup``,
installed on every node by the cassandra role) and its arguments:

- ``COMMAND info``: ``nodetool info -T`` and ``nodetool version``;
- ``COMMAND snapshot TAG KEYSPACE...``: ``nodetool snapshot -t TAG -- KEYSPACE...``, then
  ``nodetool listsnapshots``, which furet checks lists every table under TAG;
- ``COMMAND files TAG``: each file of the snapshot with its sha256 and size, hashed on the
  node before it is streamed;
- ``COMMAND stream TAG``: those files as a tar on stdout;
- ``COMMAND clear TAG``: ``nodetool clearsnapshot -t TAG``.

On the lab and in production COMMAND is ``ssh -i KEY root@cassandra1``, the key restricted on
the node to the forced command ``furet-cassandra-backup`` (which reads its arguments from
``SSH_ORIGINAL_COMMAND`` and accepts only ``furet-*`` tags and plain keyspace names); in the
tests it runs the script locally against a loopback node. COMMAND is split like a shell
would (:func:`shlex.split`), never run through one.

The parsers of the three outputs are here too, pure, so they are tested without a node.
A failing command is one line naming the node, the verb, the tag and the last line of
nodetool's stderr that says why (not its Java stack trace).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from migration.errors import FuretError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
TAG = re.compile(r"^furet-[A-Za-z0-9_.-]{1,80}$")
COMMAND_TIMEOUT_S = 900     # a snapshot flushes every memtable first
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class NodeInfo:
    host_id: str
    dc: str
    rack: str
    tokens: tuple[int, ...]
    release_version: str


@dataclass(frozen=True)
class SnapshotFile:
    path: str      # relative to the node's data directory: KS/TABLE-ID/snapshots/TAG/FILE
    size: int
    sha256: str


@dataclass(frozen=True)
class SnapshotTable:
    keyspace: str
    table: str
    directory: str  # KS/TABLE-ID/snapshots/TAG

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"


def reason(stderr: str, stdout: str = "") -> str:
    """The line of a failed command's output that says why: nodetool's ``error: ...`` or
    ``nodetool: ...``, the script's own, else the last non-blank line."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("error:", "nodetool:", "furet-cassandra-backup:")):
            return line[:400]
    lines = [ln for ln in lines if not ln.startswith(("at ", "-- StackTrace", "See '"))]
    if lines:
        return lines[-1][:400]
    out = [ln.strip() for ln in (stdout or "").splitlines() if ln.strip()]
    return out[-1][:400] if out else "no output"


@dataclass(frozen=True)
class NodeCommand:
    """``--node NAME=COMMAND``: the node's name (its files' names) and command prefix."""

    name: str
    prefix: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> NodeCommand:
        name, sep, command = spec.partition("=")
        name = name.strip()
        if not sep or not command.strip():
            raise FuretError(f"--node {spec!r}: expected NAME=COMMAND, e.g. "
                             "cassandra1='ssh -i KEY root@cassandra1'")
        if not NAME.match(name):
            raise FuretError(f"--node {spec!r}: the name {name!r} must be letters, digits, "
                             "'.', '_' or '-' (it names the node's files)")
        try:
            prefix = tuple(shlex.split(command))
        except ValueError as exc:
            raise FuretError(f"--node {name}: cannot split its command ({exc})") from None
        return cls(name, prefix)

    def argv(self, verb: str, *args: str) -> list[str]:
        return [*self.prefix, verb, *args]

    def run(self, verb: str, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """``COMMAND VERB ARGS``: its stdout, or one line naming the node and why."""
        what = " ".join((verb, *args))
        try:
            done = subprocess.run(self.argv(verb, *args), capture_output=True, text=True,
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise FuretError(f"cassandra node {self.name}: `{what}`: {self.prefix[0]} not "
                             "found") from None
        except subprocess.TimeoutExpired:
            raise FuretError(f"cassandra node {self.name}: `{what}` took more than "
                             f"{timeout:.0f}s") from None
        if done.returncode != 0:
            raise FuretError(f"cassandra node {self.name}: `{what}` exited {done.returncode}: "
                             f"{reason(done.stderr, done.stdout)}")
        return done.stdout


def parse_nodes(specs: Sequence[str | NodeCommand]) -> tuple[NodeCommand, ...]:
    """``--node`` values (or nodes already parsed): at least one, each name once."""
    nodes = tuple(s if isinstance(s, NodeCommand) else NodeCommand.parse(s) for s in specs)
    if not nodes:
        raise FuretError("backup cassandra: no --node NAME=COMMAND given (one per node of "
                         "the ring)")
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise FuretError(f"--node {node.name}: given twice")
        seen.add(node.name)
    return nodes


def parse_info(text: str, node: str) -> NodeInfo:
    """``nodetool info -T`` then ``nodetool version``."""
    fields: dict[str, str] = {}
    tokens: list[int] = []
    release = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Token":
            try:
                tokens.append(int(value))
            except ValueError:
                raise FuretError(f"cassandra node {node}: nodetool info: token {value!r} is "
                                 "not an integer (Murmur3Partitioner expected)") from None
        elif key == "ReleaseVersion":
            release = value
        else:
            fields.setdefault(key, value)
    missing = [k for k in ("ID", "Data Center", "Rack") if not fields.get(k)]
    if missing or not tokens or not release:
        what = ", ".join(missing + ([] if tokens else ["Token"])
                         + ([] if release else ["ReleaseVersion"]))
        raise FuretError(f"cassandra node {node}: `info` printed no {what} (nodetool info -T "
                         "and nodetool version expected)")
    return NodeInfo(fields["ID"], fields["Data Center"], fields["Rack"], tuple(tokens), release)


def parse_listsnapshots(text: str, tag: str) -> set[tuple[str, str]]:
    """(keyspace, table) listed under ``tag`` by ``nodetool listsnapshots``."""
    found = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == tag:
            found.add((words[1], words[2]))
    return found


def parse_files(text: str, node: str, tag: str) -> tuple[SnapshotFile, ...]:
    """``SHA256 SIZE PATH`` lines; every path must be a file of snapshot ``tag``."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or not SHA256.match(parts[0]) or not parts[1].isdigit():
            raise FuretError(f"cassandra node {node}: `files {tag}` printed {line[:120]!r} "
                             "(SHA256 SIZE PATH expected)")
        path = check_path(parts[2], tag, f"cassandra node {node}")
        out.append(SnapshotFile(path, int(parts[1]), parts[0]))
    if not out:
        raise FuretError(f"cassandra node {node}: snapshot {tag} has no file")
    return tuple(out)


def check_path(path: str, tag: str, where: str) -> str:
    """A snapshot file's relative path, normalised (no ``./``); refused unless it is
    ``KS/TABLE-ID/snapshots/TAG/...`` without ``..``."""
    parts = PurePosixPath(path).parts
    if parts and parts[0] == ".":
        parts = parts[1:]
    if (len(parts) < 5 or ".." in parts or PurePosixPath(path).is_absolute()
            or parts[2] != "snapshots" or parts[3] != tag or "-" not in parts[1]):
        raise FuretError(f"{where}: {path!r} is not a file of snapshot {tag} "
                         "(KEYSPACE/TABLE-ID/snapshots/TAG/FILE expected)")
    return "/".join(parts)


def snapshot_tables(files: Sequence[SnapshotFile]) -> tuple[SnapshotTable, ...]:
    """The tables the snapshot's files belong to (``KS/TABLE-ID/snapshots/TAG``)."""
    seen: dict[str, SnapshotTable] = {}
    for f in files:
        ks, table_dir, _, tag = f.path.split("/")[:4]
        directory = f"{ks}/{table_dir}/snapshots/{tag}"
        if directory not in seen:
            seen[directory] = SnapshotTable(ks, table_dir.rsplit("-", 1)[0], directory)
    return tuple(seen.values())
