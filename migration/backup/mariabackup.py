"""A mariadb-backup archive (``galera.xbstream.zst``) made a datadir: extract, prepare, and
read what mariadb-backup recorded. Used twice, the same way: by ``furet backup galera``
right after the stream (the archive is proven to extract and prepare before the backup
counts; its info files go into the manifest) and by the restore test, which starts a
scratch server on the datadir (:func:`migration.backup.scratch.restored_mariadb`).

- **Extract**: ``zstd -dc ARCHIVE | mbstream -x -C DATADIR``, from the archive itself (never
  from a copy kept aside: what is proven is the file that stays).
- **Complete**: mariadb-backup streams ``xtrabackup_checkpoints``, ``backup-my.cnf`` and
  ``xtrabackup_info`` last (``mariadb_backup_*`` from 11.4 on: either name is read).
  mbstream refuses a stream cut inside a chunk; one cut between chunks lacks these files:
  either is a truncated stream.
- **Prepare**: ``mariadb-backup --prepare --target-dir=DATADIR`` applies the copied redo log.
  It must be the server's line (10.11 prepares 10.11): :func:`check_same_line`.
- **Disk**: the archive is compressed; the datadir is the source's full size (plus InnoDB's
  redo during prepare), needed free where it is extracted for as long as it is there.

The galera position (``uuid:seqno``, ``xtrabackup_galera_info``, renamed
``mariadb_backup_galera_info`` in 11.4) exists only for a Galera node streamed with
``--galera-info``; the binary log position (``xtrabackup_binlog_info``) only when the node
writes a binary log.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from migration.backup.checksums import Coordinates
from migration.backup.pipe import last_line, stderr_lines, tool
from migration.errors import FuretError

XBSTREAM_MAGIC = b"XBSTCK01"  # every xbstream chunk starts with it
# Each file mariadb-backup records, by its 10.x name then its 11.x one (11.4 renamed the
# xtrabackup_* files mariadb_backup_*; 11.8's mariadb-backup writes only the new names).
CHECKPOINTS = ("xtrabackup_checkpoints", "mariadb_backup_checkpoints")
BACKUP_INFO = ("xtrabackup_info", "mariadb_backup_info")
BINLOG_INFO = ("xtrabackup_binlog_info", "mariadb_backup_binlog_info")
GALERA_INFO = ("xtrabackup_galera_info", "mariadb_backup_galera_info")
WRITTEN_LAST = (CHECKPOINTS, ("backup-my.cnf",), BACKUP_INFO)
RECORDED = (*CHECKPOINTS, *BINLOG_INFO, *GALERA_INFO)
GALERA_POSITION = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                             r"):(-?\d+)", re.I)
LINE = re.compile(r"(\d+)\.(\d+)\.\d+")
USE_MEMORY = "256M"  # prepare's buffer pool (its default is 100M)


class ArchiveError(FuretError):
    """The archive does not extract or prepare: the backup is not restorable (a failed
    restore test, not a failure to run one)."""


@dataclass(frozen=True)
class Prepared:
    datadir: Path
    info: dict[str, str]               # RECORDED files present: name -> text
    galera_position: str               # uuid:seqno; "" without xtrabackup_galera_info
    coordinates: Coordinates | None    # of xtrabackup_binlog_info
    size: int                          # bytes of the prepared datadir
    extract_seconds: float
    prepare_seconds: float

    @property
    def point(self) -> str:
        """How messages name the backup's point."""
        if self.galera_position:
            return f"galera {self.galera_position}"
        if self.coordinates is not None:
            return self.coordinates.label
        lsn = re.search(r"^to_lsn = (\d+)", first_of(self.info, CHECKPOINTS), re.M)
        return f"LSN {lsn.group(1)}" if lsn else ""


def first_of(info: dict[str, str], names: tuple[str, ...]) -> str:
    """The text of the first of ``names`` (one file's 10.x and 11.x names) in ``info``."""
    return next((info[name] for name in names if name in info), "")


def parse_galera_info(text: str, name: str = GALERA_INFO[0]) -> str:
    """``uuid:seqno`` of an ``xtrabackup_galera_info`` (10.11 may add a GTID after it)."""
    match = GALERA_POSITION.match(text.strip())
    if match is None:
        raise FuretError(f"{name}: not uuid:seqno ({text.strip()[:80]!r})")
    return f"{match.group(1)}:{match.group(2)}"


def parse_binlog_info(text: str) -> Coordinates | None:
    """``file<TAB>position[<TAB>gtid]`` of an ``xtrabackup_binlog_info``; None if empty."""
    words = text.split()
    if len(words) < 2 or not words[1].isdigit():
        return None
    return Coordinates(words[0], int(words[1]))


def _line(version: str) -> str:
    match = LINE.search(version)
    return f"{match.group(1)}.{match.group(2)}" if match else ""


def check_same_line(server_version: str, tool_version: str, where: str) -> None:
    """Refuse a prepare by a mariadb-backup of another major line than the server's."""
    server, here = _line(server_version), _line(tool_version)
    if server and here and server != here:
        raise FuretError(f"{where}: the server is MariaDB {server} but this host's "
                         f"mariadb-backup is {here}: a backup is prepared by the same line; "
                         f"install mariadb-backup {server} here")


def tool_version() -> str:
    """``mariadb-backup --version``'s line (it prints it on stderr)."""
    done = subprocess.run([tool("mariadb-backup"), "--version"], capture_output=True,
                          text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1].strip() if lines else ""


def tools() -> tuple[str, str, str]:
    """zstd, mbstream and mariadb-backup, or a FuretError naming the missing package."""
    return tool("zstd"), tool("mbstream"), tool("mariadb-backup")


def _error_line(path: Path) -> str:
    """mariadb-backup's reason: its last line naming an error, else its last line."""
    lines = stderr_lines(path)
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [""])[-1]


def extract(archive: Path, datadir: Path, logs: Path, name: str = "") -> None:
    """``zstd -dc archive | mbstream -x -C datadir``; ArchiveError if it fails or the
    stream is incomplete. ``logs``: a directory for the tools' stderr; ``name``: the
    archive's name in messages (default its file name)."""
    zstd, mbstream, _ = tools()
    name = name or archive.name
    datadir.mkdir(parents=True)
    with (logs / "zstd.err").open("wb") as zerr, (logs / "mbstream.err").open("wb") as merr:
        unpack = subprocess.Popen([zstd, "-dc", str(archive)], stdout=subprocess.PIPE,
                                  stderr=zerr, stdin=subprocess.DEVNULL)
        try:
            split = subprocess.Popen([mbstream, "-x", "-C", str(datadir)],
                                     stdin=unpack.stdout, stdout=subprocess.DEVNULL,
                                     stderr=merr)
        except BaseException:
            unpack.kill()
            unpack.wait()
            raise
        finally:
            assert unpack.stdout is not None
            unpack.stdout.close()  # mbstream holds the pipe's read end now
        split_code = split.wait()
        unpack_code = unpack.wait()
    if unpack_code != 0:
        raise ArchiveError(f"zstd -dc {name} exited {unpack_code}: "
                           f"{last_line(logs / 'zstd.err')}")
    if split_code != 0:
        raise ArchiveError(f"mbstream -x of {name} exited {split_code}: "
                           f"{last_line(logs / 'mbstream.err').rstrip('.')}: the stream is "
                           "truncated or damaged")
    missing = [names[0] for names in WRITTEN_LAST
               if not any((datadir / name).is_file() for name in names)]
    if missing:
        raise ArchiveError(f"{name} holds no {', '.join(missing)} (mariadb-backup "
                           "streams them last): the stream is truncated")


def prepare(datadir: Path, logs: Path) -> None:
    """``mariadb-backup --prepare`` of an extracted datadir; ArchiveError if it fails."""
    with (logs / "prepare.err").open("wb") as err:
        done = subprocess.run(
            [tool("mariadb-backup"), "--no-defaults", "--prepare", f"--target-dir={datadir}",
             f"--use-memory={USE_MEMORY}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False)
    if done.returncode != 0:
        raise ArchiveError(f"mariadb-backup --prepare exited {done.returncode}: "
                           f"{_error_line(logs / 'prepare.err')}")


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def read_info(datadir: Path) -> tuple[dict[str, str], str, Coordinates | None]:
    """The recorded info files of a datadir, its galera position and binlog coordinates."""
    info = {name: (datadir / name).read_text(errors="replace").strip() for name in RECORDED
            if (datadir / name).is_file()}
    position = ""
    for name in GALERA_INFO:
        if name in info:
            position = parse_galera_info(info[name], name)
    return info, position, parse_binlog_info(first_of(info, BINLOG_INFO))


def extract_and_prepare(archive: Path, datadir: Path, logs: Path,
                        name: str = "") -> Prepared:
    """The archive extracted into ``datadir`` (new) and prepared; see the module docstring."""
    started = time.monotonic()
    extract(archive, datadir, logs, name)
    extracted = time.monotonic()
    prepare(datadir, logs)
    info, position, coordinates = read_info(datadir)
    return Prepared(datadir, info, position, coordinates, _size(datadir),
                    extracted - started, time.monotonic() - extracted)
