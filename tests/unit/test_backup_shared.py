"""What the three backups (legacy, galera, cassandra) share, without servers: every flow lock
or none (migration.engine.flow_lock.hold_all), the backup directory removed on failure
(migration.backup.pipe.backup_directory), and the end of a backup: files renamed from their
``.part``, entries with their sha256, the manifest last (migration.backup.manifest)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration.backup.checksums import Checksums, RecordedChunk, RecordedTable
from migration.backup.manifest import (
    CHECKSUMS_FILE,
    DUMP_FILE,
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    keep_part,
    read_manifest,
    write_listed,
    write_manifest,
)
from migration.backup.pipe import backup_directory
from migration.config import DbSettings
from migration.engine import flow_lock
from migration.engine.flow_lock import LockBusy, hold_all
from migration.errors import FuretError

TARGET = DbSettings("target", "127.0.0.12", 3306, "furet", "secret")


class FakeLocks:
    """``flow_lock`` without a ledger: ``busy[flow]`` attempts refused (LockBusy) first."""

    def __init__(self, busy: dict[str, int]) -> None:
        self.busy = busy
        self.held: set[str] = set()
        self.refusals: list[tuple[str, frozenset[str]]] = []  # (flow, held when refused)

    @contextlib.contextmanager
    def lock(self, settings: DbSettings, flow: str, command: str) -> Iterator[str]:
        if self.busy.get(flow, 0) > 0:
            self.busy[flow] -= 1
            self.refusals.append((flow, frozenset(self.held)))
            raise LockBusy(f"{settings.where}: flow {flow} is locked by `furet round --flow "
                           f"{flow}`")
        self.held.add(flow)
        try:
            yield f"token-{flow}"
        finally:
            self.held.discard(flow)


def test_every_flow_lock_or_none_retried_while_one_is_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    locks = FakeLocks({"b": 2})
    monkeypatch.setattr(flow_lock, "flow_lock", locks.lock)
    monkeypatch.setattr(flow_lock, "RETRY_S", 0.01)
    with contextlib.ExitStack() as stack:
        tokens, waited = hold_all(stack, TARGET, ["a", "b", "c"], "furet backup", 5,
                                  "backup galera")
        assert tokens == {"a": "token-a", "b": "token-b", "c": "token-c"}
        assert locks.held == {"a", "b", "c"}
        assert waited >= 0.02
    assert locks.held == set()  # released with the stack
    # refused twice on b while holding a; a was released before each new attempt
    assert locks.refusals == [("b", frozenset({"a"}))] * 2


def test_a_lock_still_busy_after_the_wait_refuses_naming_it_and_holds_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    locks = FakeLocks({"b": 1000})
    monkeypatch.setattr(flow_lock, "flow_lock", locks.lock)
    with contextlib.ExitStack() as stack, pytest.raises(FuretError) as caught:
        hold_all(stack, TARGET, ["a", "b"], "furet backup", 0, "backup cassandra")
    assert str(caught.value) == (
        "target 127.0.0.12:3306: flow b is locked by `furet round --flow b`; backup cassandra "
        "waited 0s for the flow locks (--lock-wait)")
    assert not isinstance(caught.value, LockBusy)  # the wait is over: not to be retried
    assert locks.held == set()


def test_a_failed_backup_removes_what_it_wrote_and_the_directory_it_made(
        tmp_path: Path) -> None:
    directory = tmp_path / "new" / "backup"
    private: list[Path] = []
    with pytest.raises(FuretError, match="stream failed"), \
            backup_directory(directory, ["a.zst", "sub/n.json", MANIFEST_FILE], ["sub"]) as tmp:
        private.append(tmp)
        assert directory.is_dir() and tmp.is_dir() and not tmp.is_relative_to(directory)
        (directory / "sub").mkdir()
        for name in ("a.zst.part", "a.zst", "sub/n.json.part", "manifest.json.part"):
            (directory / name).write_text("x")
        raise FuretError("stream failed")
    assert not directory.exists() and (tmp_path / "new").is_dir()
    assert not private[0].exists()


def test_a_failed_backup_leaves_an_existing_directory_as_it_was(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), backup_directory(tmp_path, ["a.zst"]):
        (tmp_path / "a.zst.part").write_text("x")
        raise KeyboardInterrupt
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_a_finished_backup_keeps_its_files_and_drops_its_private_directory(
        tmp_path: Path) -> None:
    directory = tmp_path / "backup"
    with backup_directory(directory, [DUMP_FILE]) as private:
        (private / "dump.err").write_text("")
        (directory / DUMP_FILE).write_text("dump")
    assert [p.name for p in directory.iterdir()] == [DUMP_FILE]
    assert not private.exists()


def test_the_end_of_a_backup_lists_each_file_with_its_sha256_and_writes_the_manifest_last(
        tmp_path: Path) -> None:
    (tmp_path / (DUMP_FILE + ".part")).write_bytes(b"the dump")
    dump = keep_part(tmp_path, DUMP_FILE, 8, "ab" * 32)
    assert dump == FileEntry(DUMP_FILE, 8, "ab" * 32)
    assert (tmp_path / DUMP_FILE).read_bytes() == b"the dump"
    checksums = write_listed(tmp_path, CHECKSUMS_FILE, b'{"format": 1}\n')
    assert checksums == FileEntry(CHECKSUMS_FILE, 14,
                                  hashlib.sha256(b'{"format": 1}\n').hexdigest())
    assert (tmp_path / CHECKSUMS_FILE).read_bytes() == b'{"format": 1}\n'
    manifest = Manifest("legacy", "legacy 127.0.0.13:3306", "10.11", ("lf_bo",),
                        "2026-11-30T09:00:00+00:00", None, (dump, checksums),
                        checksums.sha256)
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [DUMP_FILE, CHECKSUMS_FILE, MANIFEST_FILE])  # no .part left


def test_a_checksums_document_counts_its_chunks_and_rows() -> None:
    table = RecordedTable("lf_bo", "t", ("id",), (("id", "int"),),
                          (RecordedChunk(0, None, 10, 4, 1), RecordedChunk(1, 10, None, 3, 2)))
    empty = RecordedTable("lf_bo", "e", ("id",), (("id", "int"),))
    document = Checksums("legacy x", "2026-11-30T09:00:00+00:00", None, ("lf_bo",),
                         (table, empty))
    assert (document.chunks, document.rows) == (2, 7)
