"""What the backup tests share (test_backup_legacy, _galera, _cassandra): `furet` run as the
operator runs it, a copy of a backup to damage (a flipped byte; a manifest whose sizes and
sha256 are rewritten so that only the restore itself can tell), the processes a test must not
leave behind, and the one-line failures a damaged backup's restore test must give.

Not a test module: its asserts carry their own messages (pytest rewrites only test modules'
and conftest's)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from migration.backup.checksums import Checksums, RecordedChunk, RecordedTable
from migration.backup.manifest import CHECKSUMS_FILE, MANIFEST_FILE, sha256_file
from migration.backup.restore import RestoreResult, restore_test
from tests.helpers import BIN, REPO

from .conftest import PASSWORD


def furet(env: Mapping[str, str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    """``furet ARGS`` in a subprocess, in ``env`` (None: this process's environment)."""
    return subprocess.run([str(BIN / "furet"), *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=900)


def copy_backup(directory: Path, tmp_path: Path) -> Path:
    """A copy of the backup in ``directory`` (shared by a module) for one test to damage."""
    copy = tmp_path / "backup"
    shutil.copytree(directory, copy)
    return copy


def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def relist(directory: Path, *names: str) -> None:
    """The size and sha256 of ``names`` in ``directory``'s manifest rewritten to the files'
    own: the file check passes, only the restore itself can tell they changed."""
    path = directory / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    for entry in manifest["files"]:
        if entry["name"] in names:
            listed = directory / entry["name"]
            entry["size"], entry["sha256"] = listed.stat().st_size, sha256_file(listed)
    path.write_text(json.dumps(manifest))


def processes_naming(path: Path) -> list[int]:
    """PIDs of processes whose command line names ``path`` (a server or a tool left)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
    return found


def assert_flipped_byte_fails(backup: Path, name: str, tmp_path: Path,
                              env: Mapping[str, str] | None = None) -> None:
    """A byte of ``name`` flipped in a copy of ``backup``: `furet backup restore-test` exits 2
    in one line naming the file's sha256, before any server starts (``tmp_path``, its
    workdir, holds the copy only)."""
    copy = copy_backup(backup, tmp_path)
    flip_byte(copy / name)
    run = furet(env, "backup", "restore-test", str(copy), "--workdir", str(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"furet: error: restore test of {copy} failed: file "
                                 f"{name}: sha256 "), run.stderr
    assert "differs from the manifest's" in run.stderr, run.stderr
    assert PASSWORD not in run.stdout + run.stderr, "a password in the output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup"], list(tmp_path.iterdir())


def recorded_quote(directory: Path, quote_id: int) -> tuple[RecordedTable, RecordedChunk]:
    """lf_runtime.quote as ``directory``'s checksums recorded it, and its chunk holding the
    quote ``quote_id``."""
    recorded = Checksums.from_json((directory / CHECKSUMS_FILE).read_text())
    quote = next(t for t in recorded.tables if (t.database, t.table) == ("lf_runtime", "quote"))
    return quote, next(c for c in quote.chunks if c.rng.contains(quote_id))


def assert_restore_fails_on(directory: Path, chunk: RecordedChunk,
                            tmp_path: Path) -> RestoreResult:
    """The restore test of ``directory`` fails naming lf_runtime.quote's ``chunk`` with its
    recorded count, and leaves neither a file nor a server in its workdir."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    check = restore_test(directory, workdir=workdir)
    assert not check.passed, check.line
    assert check.reason.startswith(f"lf_runtime.quote chunk {chunk.rng.label}: restored "
                                   f"{chunk.count} rows (checksum "), check.reason
    assert f"backup {chunk.count} rows" in check.reason, check.reason
    assert list(workdir.iterdir()) == [], list(workdir.iterdir())
    assert processes_naming(workdir) == [], "a scratch server left"
    return check
