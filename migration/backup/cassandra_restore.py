"""`furet backup restore-test DIR` for a Cassandra backup: prove it restores to what was
backed up (design issue 13, section 4).

1. every file ``manifest.json`` lists is checked against its size and sha256 (a flipped
   byte names the file), before anything is unpacked or started;
2. each node's ``.tar.zst`` is unpacked into a private work directory, every file checked
   against the size and sha256 the node took before streaming (its manifest); a missing,
   extra or different file is named with its archive;
3. a scratch single-node Cassandra (:mod:`migration.backup.scratch_cassandra`; or a node
   the caller owns, whose backed-up keyspaces are dropped first) gets each keyspace with
   SimpleStrategy RF 1, each table's ``schema.cql`` replayed, then ``nodetool import`` of
   every node's table directory: the replicas merge as a CL ALL read merges them;
   ``import`` verifies each SSTable's digest, and a failure is named with the server's
   reason (the corrupted file);
4. the node is read with the recorded token buckets and compared with the checksums: a
   mismatch names the keyspace, the table and the token range;
5. the scratch node is stopped and the work directory removed, whatever happened.

The result is :class:`~migration.backup.restore.RestoreResult` (its chunks are the token
buckets); only what keeps the test from running at all (no manifest, no distribution)
raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from migration.backup.cassandra_checksums import (
    WORKERS,
    CassandraChecksums,
    compare_with_node,
    quote_cql,
)
from migration.backup.cassandra_manifest import (
    CassandraManifest,
    NodeManifest,
    archive_name,
    node_manifest_name,
    read_cassandra_manifest,
)
from migration.backup.cassandra_node import check_path, reason
from migration.backup.manifest import CHECKSUMS_FILE, sha256_file
from migration.backup.restore import RestoreResult, failed
from migration.backup.scratch_cassandra import DEFAULT_DIST, CassandraNode, scratch_cassandra
from migration.errors import FuretError

BLOCK = 1 << 20
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def check_files(directory: Path, manifest: CassandraManifest) -> list[str]:
    """The files the manifest lists (and must list) that are missing or differ."""
    problems = []
    for name in manifest.expected_files():
        if manifest.file(name) is None:
            problems.append(f"file {name}: not listed in the manifest")
    for entry in manifest.files:
        path = directory / entry.name
        if not path.is_file():
            problems.append(f"file {entry.name}: missing")
            continue
        size = path.stat().st_size
        actual = sha256_file(path)
        if size != entry.size or actual != entry.sha256:
            problems.append(f"file {entry.name}: {size} bytes sha256 {actual} differs from the "
                            f"manifest's {entry.size} bytes sha256 {entry.sha256}")
    checksums = manifest.file(CHECKSUMS_FILE)
    if checksums is not None and checksums.sha256 != manifest.checksums_sha256:
        problems.append(f"file {CHECKSUMS_FILE}: the manifest gives it two sha256")
    return problems


def unpack(archive: Path, into: Path, node: NodeManifest, label: str) -> list[str]:
    """``archive`` (tar.zst) into ``into``, each file checked against ``node``'s list."""
    zstd = shutil.which("zstd")
    if zstd is None:
        raise FuretError("zstd not found: install the zstd package (lab/apt-packages.txt)")
    expected = {f.path: f for f in node.files}
    problems: list[str] = []
    seen: set[str] = set()
    proc = subprocess.Popen([zstd, "-dc", str(archive)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.isdir():
                        continue
                    try:
                        path = check_path(member.name, node.tag, label)
                    except FuretError as exc:
                        problems.append(str(exc))
                        break
                    if not member.isfile():
                        problems.append(f"{label}: {path}: not a regular file")
                        continue
                    seen.add(path)
                    reader = tar.extractfile(member)
                    assert reader is not None
                    target = into / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest, size = hashlib.sha256(), 0
                    with target.open("wb") as out:
                        while block := reader.read(BLOCK):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
                    entry = expected.get(path)
                    if entry is None:
                        problems.append(f"{label}: {path}: not in {node_manifest_name(node.node)}")
                    elif (size, digest.hexdigest()) != (entry.size, entry.sha256):
                        problems.append(f"{label}: {path}: {size} bytes sha256 "
                                        f"{digest.hexdigest()} differs from the node's "
                                        f"{entry.size} bytes sha256 {entry.sha256}")
        except (tarfile.TarError, EOFError) as exc:
            problems.append(f"{label}: not a complete tar ({exc})")
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    if proc.returncode not in (0, -9) and not problems:
        problems.append(f"{label}: zstd -dc exited {proc.returncode}: "
                        f"{reason(err.decode(errors='replace'))}")
    problems += [f"{label}: {path}: in {node_manifest_name(node.node)}, not in the archive"
                 for path in sorted(set(expected) - seen)]
    return problems


def split_cql(text: str) -> list[str]:
    """The statements of a CQL script (``;``-terminated; quotes, ``$$`` strings and
    comments respected), without their ``;``; comment-only pieces dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        two = text[i:i + 2]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if text[end + 1:end + 2] == ch:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            current.append(text[i:end + 1])
            i = end + 1
        elif two == "$$":
            end = text.find("$$", i + 2)
            end = n if end < 0 else end + 2
            current.append(text[i:end])
            i = end
        elif two in ("--", "//"):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif two == "/*":
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def _log_size(node: CassandraNode) -> int:
    try:
        return (node.logs / "system.log").stat().st_size
    except OSError:
        return 0


def import_failure(node: CassandraNode, since: int, directory: Path, done: str) -> str:
    """Why ``nodetool import`` of ``directory`` failed: the server log's line about it
    (``Corrupted file: ... for <file>``), paths made relative to the work directory."""
    try:
        with (node.logs / "system.log").open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        lines = []
    found = ""
    for line in lines:
        if str(directory) in line and ("Corrupt" in line or "Exception" in line
                                        or "ERROR" in line or "failed" in line.lower()):
            found = line.strip()
            if "Corrupt" in line:
                break
    text = found or reason("", done) or "no reason in the server log"
    text = text.split(" - ", 1)[1] if " - " in text and text.startswith(("ERROR", "WARN",
                                                                          "INFO")) else text
    return text.replace(str(directory) + "/", "")[:400]


@contextlib.contextmanager
def _node(given: CassandraNode | None, dist: Path | str, workdir: Path | None
          ) -> Iterator[CassandraNode]:
    if given is not None:
        yield given
        return
    with scratch_cassandra(dist, workdir=workdir) as node:
        yield node


def restore_into(node: CassandraNode, manifests: Sequence[NodeManifest], unpacked: Path,
                 keyspaces: Sequence[str], session: object) -> list[str]:
    """Keyspaces (dropped first), schemas and ``nodetool import`` of every node's tables."""
    problems: list[str] = []
    execute = session.execute  # type: ignore[attr-defined]
    for ks in keyspaces:
        execute(f"DROP KEYSPACE IF EXISTS {quote_cql(ks)}", timeout=120)
        execute(f"CREATE KEYSPACE {quote_cql(ks)} WITH replication = {REPLICATION}",
                timeout=120)
    for manifest in manifests:
        for table in manifest.tables:
            for statement in split_cql(table.schema_cql):
                try:
                    execute(statement, timeout=120)
                except Exception as exc:  # the driver's InvalidRequest and others
                    problems.append(f"{table.table.name} of node {manifest.node}: schema.cql: "
                                    f"{type(exc).__name__}: {str(exc)[:300]}")
    if problems:
        return problems
    for manifest in manifests:
        for table in manifest.tables:
            directory = unpacked / manifest.node / table.table.directory
            if not any(directory.glob("*-Data.db")):
                continue  # an empty table: only its schema.cql and manifest.json
            since = _log_size(node)
            done = node.nodetool("import", table.table.keyspace, table.table.table,
                                 str(directory))
            if done.returncode != 0:
                problems.append(f"nodetool import of {table.table.name} from "
                                f"{archive_name(manifest.node)} failed: "
                                f"{import_failure(node, since, directory, done.stdout)}")
    return problems


def restore_test_cassandra(directory: Path | str, *, dist: Path | str = DEFAULT_DIST,
                           workdir: Path | str | None = None,
                           node: CassandraNode | None = None,
                           workers: int = WORKERS) -> RestoreResult:
    """Check, restore and compare the Cassandra backup in ``directory``; see the module
    docstring. ``node``: a running node to restore into (its backed-up keyspaces are
    dropped and made again), else a scratch one is started from ``dist``."""
    from migration.cassandra_session import cassandra_session

    started = time.monotonic()
    directory = Path(directory)
    manifest = read_cassandra_manifest(directory)
    result = RestoreResult(directory, True, "", kind="cassandra")
    problems = check_files(directory, manifest)
    if problems:
        return failed(result, problems, started)
    manifests = [NodeManifest.from_json((directory / node_manifest_name(n)).read_text(
        encoding="utf-8"), str(directory / node_manifest_name(n))) for n in manifest.nodes]
    recorded = CassandraChecksums.from_json(
        (directory / CHECKSUMS_FILE).read_text(encoding="utf-8"), str(directory / CHECKSUMS_FILE))
    result = dataclasses.replace(result, tables=len(recorded.tables), chunks=recorded.buckets,
                                 rows=recorded.rows)
    names = {t.table.name for t in recorded.tables}
    problems = [f"{t.table.name}: in the snapshot of node {m.node}, not in {CHECKSUMS_FILE}"
                for m in manifests for t in m.tables if t.table.name not in names]
    if problems:
        return failed(result, problems, started)
    base = Path(workdir) if workdir is not None else None
    work = Path(tempfile.mkdtemp(prefix="furet-restore-cassandra-", dir=base))
    try:
        for m in manifests:
            problems += unpack(directory / archive_name(m.node), work / m.node, m,
                               archive_name(m.node))
        if problems:
            return failed(result, problems, started)
        with _node(node, dist, base) as target:
            cluster, session = cassandra_session(target.settings)
            try:
                loading = time.monotonic()
                problems = restore_into(target, manifests, work, recorded.keyspaces, session)
                result = dataclasses.replace(result, load_seconds=time.monotonic() - loading)
                if not problems:
                    problems = compare_with_node(recorded, session, cluster,
                                                 where=target.where, workers=workers)
            finally:
                cluster.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        return failed(result, problems, started)
    return dataclasses.replace(result, seconds=time.monotonic() - started)
