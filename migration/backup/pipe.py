"""``producer | zstd > file``, hashed as it is written, and the file habits of a backup
directory (:func:`backup_directory`): shared by :mod:`~migration.backup.legacy` (the
producer is mariadb-dump), :mod:`~migration.backup.galera` (the operator's stream command)
and :mod:`~migration.backup.cassandra` (a node's snapshot as tar).

furet sits in the middle of the pipe: it reads the producer's output (a subclass looks at
each block: the dump's header, the xbstream's magic), feeds zstd, and takes the sha256 and
size of what zstd writes, so the archive is hashed once, as it is written, never read back
and never copied. Both processes are the pipe's own: :meth:`CompressPipe.abort` kills them
by their own handles, the producer with its process group (a shell command's children
too: ``ssh``, ``mariadb-backup``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from migration.errors import FuretError

BLOCK = 1 << 16
PACKAGES = {"zstd": "zstd", "mbstream": "mariadb-backup", "mariadb-backup": "mariadb-backup"}


def tool(*names: str) -> str:
    """The path of the first of ``names`` installed, or a FuretError naming its package."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    package = PACKAGES.get(names[0], "mariadb-client")
    raise FuretError(f"{names[0]} not found: install the {package} package "
                     "(lab/apt-packages.txt)")


def stderr_lines(path: Path) -> list[str]:
    """A process's stderr file: its non-blank lines, stripped ([] when it cannot be read)."""
    try:
        return [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                if ln.strip()]
    except OSError:
        return []


def last_line(path: Path, secret: str = "") -> str:
    """The last non-blank line of a process's stderr file, ``secret`` masked."""
    lines = stderr_lines(path)
    text = lines[-1] if lines else ""
    return text.replace(secret, "***") if secret else text


def refuse_used(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise FuretError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        raise FuretError(f"{directory}: not empty; a backup goes to a new or empty directory")


@contextlib.contextmanager
def backup_directory(directory: Path, names: Iterable[str],
                     subdirs: Iterable[str] = ()) -> Iterator[Path]:
    """``directory`` made if it is not there, and for the block a private temporary
    directory (stderr files, a client option file), yielded and removed after it.

    When the block fails, what the backup writes goes: each of ``names`` (below
    ``directory``) and its ``.part``, then ``subdirs`` if empty, then ``directory`` if this
    made it. So a directory without a manifest never looks like a backup, and an existing
    empty one is left empty."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="furet-backup-"))
    try:
        yield private
    except BaseException:
        for name in names:
            for path in (directory / (name + ".part"), directory / name):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for subdir in subdirs:
            with contextlib.suppress(OSError):
                (directory / subdir).rmdir()
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    finally:
        shutil.rmtree(private, ignore_errors=True)


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CompressPipe:
    """``argv | zstd > part`` with furet in the middle; ``name`` says the producer in
    messages, ``errors`` is its stderr file, ``secret`` is masked in what it says."""

    def __init__(self, argv: list[str], zstd: str, part: Path, errors: Path, secret: str,
                 name: str) -> None:
        self.part = part
        self.errors = errors
        self.secret = secret
        self.name = name
        self.digest = hashlib.sha256()
        self.size = 0            # bytes zstd wrote (the file)
        self.raw = 0             # bytes the producer wrote
        self.head = b""          # its first bytes
        self.tail = b""          # its last bytes
        self.failures: list[BaseException] = []
        with errors.open("wb") as err:
            # its own process group: abort() ends a shell command's children with it
            self.producer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            with errors.with_name(errors.stem + ".zstd.err").open("wb") as err:
                self.zstd = subprocess.Popen([zstd, "-q", "-c", "-3"], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=err)
        except BaseException:
            self._kill_producer()
            self.producer.wait()
            raise
        self.threads = [threading.Thread(target=self._guard, args=(self._feed,), daemon=True),
                        threading.Thread(target=self._guard, args=(self._drain,), daemon=True)]
        for thread in self.threads:
            thread.start()

    # --- what a subclass looks at -------------------------------------------------------

    def seen(self, block: bytes) -> None:
        """Each block of the producer's output, in order (called by the feeding thread)."""

    def stopped(self) -> None:
        """The feeding or the draining thread ended (normally or not)."""

    # --- the threads --------------------------------------------------------------------

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        # BLE001: anything a thread raises (even KeyboardInterrupt) must reach the caller:
        # it is kept here, and finish() turns it into the one-line error it raises
        except BaseException as exc:  # noqa: BLE001
            self.failures.append(exc)
            self._kill()  # the other end would wait on a pipe nobody reads any more
        finally:
            self.stopped()  # never leave a waiter waiting

    def _feed(self) -> None:
        source: IO[bytes] = self.producer.stdout  # type: ignore[assignment]
        sink: IO[bytes] = self.zstd.stdin  # type: ignore[assignment]
        try:
            while block := source.read1(BLOCK):  # type: ignore[attr-defined]
                if len(self.head) < 64:
                    self.head = (self.head + block)[:64]
                self.raw += len(block)
                self.seen(block)
                self.tail = (self.tail + block)[-512:]
                sink.write(block)
        finally:
            with contextlib.suppress(OSError):
                sink.close()

    def _drain(self) -> None:
        source: IO[bytes] = self.zstd.stdout  # type: ignore[assignment]
        with self.part.open("wb") as out:
            while block := source.read1(BLOCK):  # type: ignore[attr-defined]
                self.digest.update(block)
                self.size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())

    # --- the end ------------------------------------------------------------------------

    def finish(self, where: str) -> None:
        """Wait for both processes; a FuretError (one line) when either failed."""
        code = self.producer.wait()
        zstd_code = self.zstd.wait()
        for thread in self.threads:
            thread.join()
        if self.failures:
            exc = self.failures[0]
            raise FuretError(f"writing {self.part}: {type(exc).__name__}: {exc}")
        if code != 0:
            raise FuretError(f"{where}: {self.name} exited {code}: "
                             f"{last_line(self.errors, self.secret) or '(nothing on stderr)'}")
        if zstd_code != 0:
            zstd_errors = self.errors.with_name(self.errors.stem + ".zstd.err")
            raise FuretError(f"zstd exited {zstd_code} writing {self.part}: "
                             f"{last_line(zstd_errors)}")

    def _kill_producer(self) -> None:
        """SIGKILL to the producer's process group (its own, made at its start: the kernel
        does not reuse a pid that is still a group's id)."""
        with contextlib.suppress(OSError):
            os.killpg(self.producer.pid, signal.SIGKILL)

    def _kill(self) -> None:
        self._kill_producer()
        if self.zstd.poll() is None:
            with contextlib.suppress(OSError):
                self.zstd.kill()

    def abort(self) -> None:
        self._kill()
        for proc in (self.producer, self.zstd):
            proc.wait()
        for thread in self.threads:
            thread.join(10)
