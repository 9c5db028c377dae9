"""`furet backup restore-test DIR`: prove a backup restores to what was backed up.

1. every file the manifest lists is checked against its sha256 (a mismatch or a missing
   file names the file): a flipped byte fails here, before any server starts;
2. the backup is restored, as the manifest's ``kind`` says:

   - ``legacy``: a scratch mariadbd (:mod:`migration.backup.scratch`) loads the dump
     (``zstd -dc | mariadb``);
   - ``galera``: the archive itself (never a copy the backup kept: it keeps none) is
     extracted and prepared into a scratch datadir (:mod:`migration.backup.mariabackup`),
     whose galera position must be the manifest's, and a scratch mariadbd starts on it
     (:func:`~migration.backup.scratch.restored_mariadb`: ``--wsrep-on=OFF``, the source's
     grant tables skipped, its private socket the only way in). An archive that does not
     extract or prepare fails the test, naming the step;

3. the restored databases are compared with the recorded checksums
   (:func:`migration.backup.checksums.compare_with_server`): a missing or extra table, or a
   chunk whose count or BIT_XOR differs, named as ``lf_runtime.quote chunk (5000, 10000]``;
4. the scratch server is stopped and its datadir removed, whatever happened. Disk: a
   Galera restore test needs the backed-up datadir's full size (``datadir_bytes`` in the
   manifest) free in ``--workdir``.

The result is data (:class:`RestoreResult`), passed or failed with the first reason; only
what keeps the test from running at all (no manifest, no server binaries) raises.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from migration.backup import mariabackup
from migration.backup.checksums import Checksums, Coordinates, compare_with_server
from migration.backup.manifest import (
    ARCHIVE_FILE,
    CHECKSUMS_FILE,
    DUMP_FILE,
    MANIFEST_FILE,
    REQUIRED_FILES,
    Manifest,
    read_manifest,
    sha256_file,
)
from migration.backup.scratch import Scratch, restored_mariadb, scratch_mariadb
from migration.errors import FuretError


@dataclass(frozen=True)
class RestoreResult:
    directory: Path
    passed: bool
    reason: str                       # "" when passed, else the first problem
    problems: tuple[str, ...] = ()
    coordinates: Coordinates | None = None
    tables: int = 0
    chunks: int = 0
    rows: int = 0
    load_seconds: float = 0.0         # legacy: the load; galera: extract and prepare
    seconds: float = 0.0
    kind: str = "legacy"
    point: str = ""                   # galera: its position (else binlog, else LSN)

    @property
    def line(self) -> str:
        if not self.passed:
            return f"restore test of {self.directory} failed: {self.reason}"
        label = self.point or (self.coordinates.label if self.coordinates else "")
        point = f" at {label}" if label else ""
        load = "extract and prepare" if self.kind == "galera" else "load"
        return (f"restore test of {self.directory} passed: {self.tables} tables, "
                f"{self.rows:,} rows in {self.chunks} chunks equal to the backup's "
                f"checksums{point} ({load} {self.load_seconds:.1f}s, {self.seconds:.1f}s)")


def failed(result: RestoreResult, problems: Sequence[str], started: float) -> RestoreResult:
    """``result`` failed: its first problem as the reason (and how many more)."""
    reason = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    return replace(result, passed=False, reason=reason, problems=tuple(problems),
                   seconds=time.monotonic() - started)


def check_files(directory: Path) -> list[str]:
    """The manifest's files that are missing or whose sha256 differs, one line each."""
    manifest = read_manifest(directory)
    problems = []
    for entry in manifest.files:
        path = directory / entry.name
        if not path.is_file():
            problems.append(f"file {entry.name}: missing")
            continue
        actual = sha256_file(path)
        if actual != entry.sha256:
            problems.append(f"file {entry.name}: sha256 {actual} differs from the manifest's "
                            f"{entry.sha256}")
    names = {e.name for e in manifest.files}
    if manifest.kind not in REQUIRED_FILES:
        problems.append(f"{MANIFEST_FILE}: kind {manifest.kind!r} is not one of "
                        f"{', '.join(REQUIRED_FILES)}")
    for name in REQUIRED_FILES.get(manifest.kind, ()):
        if name not in names:
            problems.append(f"file {name}: not listed in the manifest")
    if CHECKSUMS_FILE in names and manifest.file(CHECKSUMS_FILE).sha256 != \
            manifest.checksums_sha256:
        problems.append(f"file {CHECKSUMS_FILE}: the manifest gives it two sha256")
    return problems


def load_dump(scratch: Scratch, dump: Path) -> str:
    """``zstd -dc dump | mariadb`` into the scratch server; "" or why it failed."""
    zstd = shutil.which("zstd")
    client = shutil.which("mariadb") or shutil.which("mysql")
    if zstd is None or client is None:
        raise FuretError("zstd and the mariadb client are needed to load a dump (zstd, "
                         "mariadb-client: lab/apt-packages.txt)")
    settings = scratch.settings
    unpack = subprocess.Popen([zstd, "-dc", str(dump)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        load = subprocess.Popen(
            [client, "--no-defaults", f"--socket={settings.unix_socket}",
             f"--user={settings.user}", "--binary-mode", "--batch",
             "--max-allowed-packet=1G"],
            stdin=unpack.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        assert unpack.stdout is not None
        unpack.stdout.close()  # the client holds the pipe's read end now
    _, load_err = load.communicate()
    _, unpack_err = unpack.communicate()
    if unpack.returncode != 0:
        last = unpack_err.decode(errors="replace").strip().splitlines()[-1:]
        return f"zstd -dc {dump.name} exited {unpack.returncode}: {last[0] if last else ''}"
    if load.returncode != 0:
        last = load_err.decode(errors="replace").strip().splitlines()[-1:]
        return (f"loading {dump.name} into {settings.where} exited {load.returncode}: "
                f"{last[0] if last else ''}")
    return ""


def restore_test(directory: Path | str, *, workdir: Path | str | None = None,
                 workers: int = 2, cassandra_dist: Path | str | None = None) -> RestoreResult:
    """Check, restore and compare the backup in ``directory`` (a legacy dump or a Galera
    archive, as its manifest's kind says); see the module docstring. ``workdir``: where the
    scratch datadir goes (default: the system's temporary directory). A ``cassandra``
    backup is :mod:`migration.backup.cassandra_restore`'s, on a scratch node from
    ``cassandra_dist``."""
    started = time.monotonic()
    directory = Path(directory)
    from migration.backup import cassandra_manifest, cassandra_restore, scratch_cassandra

    if cassandra_manifest.manifest_kind(directory) == cassandra_manifest.KIND:
        return cassandra_restore.restore_test_cassandra(
            directory, dist=cassandra_dist or scratch_cassandra.DEFAULT_DIST, workdir=workdir)
    manifest = read_manifest(directory)
    result = RestoreResult(directory, True, "", kind=manifest.kind)
    problems = check_files(directory)
    if problems:
        return failed(result, problems, started)
    recorded = Checksums.from_json((directory / CHECKSUMS_FILE).read_text(encoding="utf-8"),
                                   str(directory / CHECKSUMS_FILE))
    result = replace(result, coordinates=recorded.coordinates, tables=len(recorded.tables),
                     chunks=recorded.chunks, rows=recorded.rows)
    if manifest.kind == "galera":
        return _restore_archive(directory, manifest, recorded, result,
                                Path(workdir) if workdir is not None else None, workers,
                                started)
    with scratch_mariadb(Path(workdir) if workdir is not None else None) as scratch:
        loading = time.monotonic()
        failure = load_dump(scratch, directory / DUMP_FILE)
        result = replace(result, load_seconds=time.monotonic() - loading)
        problems = [failure] if failure else compare_with_server(recorded, scratch.settings,
                                                                  workers=workers)
    if problems:
        return failed(result, problems, started)
    return replace(result, seconds=time.monotonic() - started)


def _restore_archive(directory: Path, manifest: Manifest, recorded: Checksums,
                     result: RestoreResult, workdir: Path | None, workers: int,
                     started: float) -> RestoreResult:
    """A Galera backup: its archive extracted and prepared into a scratch datadir, a
    scratch server on it compared with the checksums."""
    mariabackup.tools()  # missing tools keep the test from running: raised, not a result
    base = Path(tempfile.mkdtemp(prefix="furet-restore-", dir=workdir))
    try:
        preparing = time.monotonic()
        try:
            prepared = mariabackup.extract_and_prepare(directory / ARCHIVE_FILE, base / "data",
                                                       base)
        except mariabackup.ArchiveError as exc:
            return failed(replace(result, load_seconds=time.monotonic() - preparing),
                           [str(exc)], started)
        result = replace(result, load_seconds=time.monotonic() - preparing,
                         point=prepared.point)
        expected = manifest.physical.galera_position if manifest.physical else ""
        if prepared.galera_position != expected:
            return failed(result, [f"{ARCHIVE_FILE}: galera position "
                                    f"{prepared.galera_position or 'none'}, the manifest "
                                    f"says {expected or 'none'}"], started)
        with restored_mariadb(prepared.datadir, base) as scratch:
            problems = compare_with_server(recorded, scratch.settings, workers=workers)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if problems:
        return failed(result, problems, started)
    return replace(result, seconds=time.monotonic() - started)
