"""`furet backup legacy --to DIR`: a consistent logical backup of the legacy master, and
its chunk checksums taken at the same point (design issue 13, section 3).

``mariadb-dump --single-transaction --master-data=2 --routines --triggers --events
--hex-blob --databases ...`` is piped through zstd; furet reads the pipe in between (to
see the dump's ``-- CHANGE MASTER TO`` header) and takes the sha256 of what zstd writes, so
the file is hashed as it is written, never read back. The order that puts the dump and the
checksums at one point C:

1. session L: ``FLUSH TABLES WITH READ LOCK`` (``lock_wait_timeout`` 10 s; a query that
   holds it up is named), ``SHOW MASTER STATUS`` = C: no transaction commits from here;
2. session K: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` (REPEATABLE READ), so K sees
   C; the tables' definitions are read in K too (no DDL runs under the lock);
3. the dump starts; on MariaDB it opens its own snapshot and takes its coordinates from it
   (``Binlog_snapshot_file/position``, no lock of its own), then writes its header;
4. once the header has come through the pipe, L runs ``UNLOCK TABLES`` (writes stalled
   for about as long as the dump takes to start). The header's coordinates must equal C,
   else the backup is refused: the dump would not be at the checksums' point;
5. K checksums every table while the dump runs (:mod:`migration.backup.checksums`), and
   checks it is still the session that opened the snapshot (a reconnect would lose it).

A write that sneaks in between would only make the restore test fail (a false alarm),
never hide a difference. ``--single-transaction`` is consistent for InnoDB only: a table of
another engine refuses the backup, naming it. The binary log must be on (the point is a
binlog position). The password goes to a 0600 option file in a private temporary directory
(``--defaults-extra-file``), never to argv.

The directory gets ``legacy.sql.zst``, ``checksums.json`` and, last,
``manifest.json`` (:mod:`migration.backup.manifest`); files are written under ``.part``
names and renamed, and a backup that fails removes what it wrote (and the directory if it
made it), so a directory without a manifest never looks like a backup.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql

from migration.backup.checksums import CHUNK_TIME, INITIAL_CHUNK, Checksums, Coordinates, Snapshot
from migration.backup.manifest import (
    CHECKSUMS_FILE,
    DUMP_FILE,
    MANIFEST_FILE,
    Manifest,
    keep_part,
    now_iso,
    write_listed,
    write_manifest,
)
from migration.backup.pipe import CompressPipe, backup_directory, last_line, refuse_used, tool
from migration.config import DbSettings, FuretConfig
from migration.db import connect, db_error, error_code, query
from migration.errors import FuretError

DEFAULT_DATABASES = ("lf_runtime", "lf_bo")
LOCK_WAIT_S = 10
HEADER_TIMEOUT_S = 15    # writes stall until the header comes: never long
HEADER = re.compile(rb"^-- CHANGE MASTER TO MASTER_LOG_FILE='(?P<file>[^']+)', "
                    rb"MASTER_LOG_POS=(?P<pos>\d+);", re.M)
HEADER_SCAN = 4 << 20    # the header comes before any row: look no further than this
DUMP_END = b"-- Dump completed"


@dataclass(frozen=True)
class BackupResult:
    directory: Path
    server: str
    coordinates: Coordinates
    size: int                  # bytes of legacy.sql.zst
    sha256: str
    tables: int
    chunks: int
    rows: int
    lock_seconds: float        # writes stalled (FLUSH TABLES WITH READ LOCK held)
    unlocked_at: float         # epoch seconds
    finished_at: float         # epoch seconds: dump written and checksums taken
    seconds: float

    @property
    def line(self) -> str:
        return (f"{self.server}: backup {self.directory} at {self.coordinates.label}: "
                f"{self.tables} tables, {self.rows:,} rows in {self.chunks} checksummed "
                f"chunks, {DUMP_FILE} {self.size:,} bytes sha256 {self.sha256[:16]}, writes "
                f"stalled {self.lock_seconds:.2f}s, {self.seconds:.1f}s")


# --- pure parts -------------------------------------------------------------------------


def parse_header(text: str | bytes) -> Coordinates | None:
    """The coordinates of a dump's ``-- CHANGE MASTER TO`` line (None: not in ``text``)."""
    match = HEADER.search(text.encode() if isinstance(text, str) else text)
    if match is None:
        return None
    return Coordinates(match.group("file").decode(), int(match.group("pos")))


def check_coordinates(header: Coordinates, locked: Coordinates, where: str) -> None:
    if header != locked:
        raise FuretError(f"{where}: the dump's header says {header.label} but SHOW MASTER "
                         f"STATUS under the lock said {locked.label}: the dump and the "
                         "checksums are not at one point; nothing kept, run the backup again")


def _option_value(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def refuse_unchecked_name(settings: DbSettings) -> None:
    """mariadb-dump has no option for the name to check in the server's certificate: it
    checks the host it connects to. A differing ssl_server_name is refused (before any
    connection), never silently ignored."""
    if settings.ssl_server_name and settings.ssl_server_name != settings.host:
        raise FuretError(f"{settings.where}: mariadb-dump checks the certificate against the "
                         f"host it connects to, not {settings.role}.ssl_server_name "
                         f"{settings.ssl_server_name!r}: set {settings.role}.host to that name")


def client_option_file(settings: DbSettings, directory: Path) -> Path:
    """A ``[client]`` option file with the server and the password, mode 0600 from its
    creation (the password never reaches argv, where ``ps`` shows it)."""
    lines = ["[client]", f"host={_option_value(settings.host)}", f"port={settings.port}",
             f"user={_option_value(settings.user)}",
             f"password={_option_value(settings.password)}"]
    if settings.unix_socket:
        lines.append(f"socket={_option_value(settings.unix_socket)}")
    refuse_unchecked_name(settings)
    if settings.ssl_ca:
        # TLS required, the server verified against the CA (mariadb-dump checks the name
        # it connects to: the host must be in the server's certificate)
        lines += ["ssl", f"ssl-ca={_option_value(settings.ssl_ca)}"]
        if settings.ssl_verify_identity:
            lines.append("ssl-verify-server-cert")
    path = directory / "client.cnf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def dump_argv(binary: str, option_file: Path, databases: Sequence[str]) -> list[str]:
    return [binary, f"--defaults-extra-file={option_file}",  # must be the first option
            "--single-transaction", "--master-data=2", "--routines", "--triggers",
            "--events", "--hex-blob", "--default-character-set=utf8mb4",
            "--databases", *databases]


# --- the server side --------------------------------------------------------------------


def preflight(conn: pymysql.connections.Connection, settings: DbSettings,
              databases: Sequence[str]) -> str:
    """Refuse what would make the backup inconsistent or unusable; the server's version."""
    marks = ", ".join(["%s"] * len(databases))
    try:
        version, log_bin = query(conn, "SELECT VERSION(), @@log_bin")[0]
        present = {str(r[0]) for r in query(
            conn, f"SELECT schema_name FROM information_schema.schemata WHERE schema_name IN "
                  f"({marks})", tuple(databases))}
        others = query(conn, "SELECT table_schema, table_name, COALESCE(engine, 'unknown') "
                             "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                             f"AND table_schema IN ({marks}) AND COALESCE(engine, '') "
                             "<> 'InnoDB' ORDER BY table_schema, table_name", tuple(databases))
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    for db in databases:
        if db not in present:
            raise FuretError(f"{settings.where}: unknown database {db}")
    if others:
        db, table, engine = (str(v) for v in others[0])
        more = f" ({len(others) - 1} more tables not InnoDB)" if len(others) > 1 else ""
        raise FuretError(f"{settings.where} database {db} table {table}: engine {engine}, not "
                         "InnoDB: a --single-transaction dump is not consistent for it; "
                         f"ALTER TABLE {db}.{table} ENGINE=InnoDB{more}")
    if not int(log_bin or 0):
        raise FuretError(f"{settings.where}: the binary log is off (log_bin = 0): a backup's "
                         "point is a binlog position (--master-data); turn log_bin on")
    return str(version)


def _lock(conn: pymysql.connections.Connection, settings: DbSettings,
          wait_s: int) -> Coordinates:
    """FLUSH TABLES WITH READ LOCK (or one line naming the query that held it up), then
    SHOW MASTER STATUS."""
    try:
        query(conn, f"SET SESSION lock_wait_timeout = {int(wait_s)}")
        query(conn, "FLUSH TABLES WITH READ LOCK")
    except pymysql.MySQLError as exc:
        if error_code(exc) != 1205:
            raise db_error(exc, settings) from None
        raise _held_up(conn, settings, wait_s) from None
    try:
        rows = query(conn, "SHOW MASTER STATUS")
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    if not rows:
        raise FuretError(f"{settings.where}: SHOW MASTER STATUS is empty (log_bin off?)")
    return Coordinates(str(rows[0][0]), int(rows[0][1]))


def _held_up(conn: pymysql.connections.Connection, settings: DbSettings,
             wait_s: int) -> FuretError:
    what = "a query"
    with contextlib.suppress(pymysql.MySQLError):
        rows = query(conn, "SELECT id, user, time, LEFT(REPLACE(info, CHAR(10), ' '), 160) "
                           "FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
                           "AND info IS NOT NULL AND command NOT IN ('Sleep', 'Daemon', "
                           "'Binlog Dump') ORDER BY time DESC LIMIT 1")
        if rows:
            pid, user, seconds, info = rows[0]
            what = f"query {pid} of {user} running {seconds}s: {info}"
            if settings.password:
                what = what.replace(settings.password, "***")
    return FuretError(f"{settings.where}: FLUSH TABLES WITH READ LOCK waited {wait_s}s "
                      f"(lock_wait_timeout) behind {what}; run the backup again once it is done")


# --- the pipe ---------------------------------------------------------------------------


class _Pipeline(CompressPipe):
    """``dump | zstd > part`` (:class:`~migration.backup.pipe.CompressPipe`) that watches
    the dump's output for its header and checks its last line."""

    def __init__(self, dump: list[str], zstd: str, part: Path, errors: Path,
                 secret: str) -> None:
        self.tool = Path(dump[0]).name
        self.header: Coordinates | None = None
        self.header_seen = threading.Event()
        self._scanned = b""
        super().__init__(dump, zstd, part, errors, secret, self.tool)

    def seen(self, block: bytes) -> None:
        if not self.header_seen.is_set():
            self._scanned += block
            self.header = parse_header(self._scanned)
            if self.header is not None or len(self._scanned) > HEADER_SCAN:
                self.header_seen.set()
                self._scanned = b""

    def stopped(self) -> None:
        self.header_seen.set()  # never leave the waiter waiting

    def wait_header(self, timeout: float, where: str) -> Coordinates:
        if not self.header_seen.wait(timeout):
            raise FuretError(f"{where}: {self.tool} wrote no CHANGE MASTER header within "
                             f"{timeout:.0f}s (held up by furet's FLUSH TABLES WITH READ "
                             "LOCK?); nothing kept")
        if self.header is not None:
            return self.header
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.producer.wait(10)
        reason = last_line(self.errors, self.secret) or "no header in its output"
        raise FuretError(f"{where}: {self.tool} failed before its CHANGE MASTER header: "
                         f"{reason}")

    def finish(self, where: str) -> None:
        super().finish(where)
        if DUMP_END not in self.tail:
            raise FuretError(f"{where}: {self.tool}'s output ends without its "
                             f"'{DUMP_END.decode()}' line")


# --- the backup -------------------------------------------------------------------------


def backup_legacy(config: FuretConfig, to: Path | str,
                  databases: Sequence[str] = DEFAULT_DATABASES, *,
                  chunk_time: float = CHUNK_TIME, initial_chunk: int = INITIAL_CHUNK,
                  lock_wait_s: int = LOCK_WAIT_S,
                  header_timeout_s: float = HEADER_TIMEOUT_S) -> BackupResult:
    """Dump ``databases`` of the legacy master into ``to`` with their checksums at the
    dump's point; see the module docstring."""
    settings = config.legacy
    directory = Path(to)
    names = tuple(dict.fromkeys(databases))
    if not names:
        raise FuretError("backup legacy: no database to back up")
    refuse_unchecked_name(settings)
    refuse_used(directory)
    dump_tool, zstd_tool = tool("mariadb-dump", "mysqldump"), tool("zstd")
    version_line = subprocess.run([dump_tool, "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip()
    started = time.monotonic()
    with contextlib.closing(connect(settings)) as lock:
        server_version = preflight(lock, settings, names)
        with backup_directory(directory, (DUMP_FILE, CHECKSUMS_FILE, MANIFEST_FILE)) as private:
            return _take(settings, lock, names, directory, private, dump_tool, zstd_tool,
                         version_line, server_version, chunk_time, initial_chunk, lock_wait_s,
                         header_timeout_s, started)


def _take(settings: DbSettings, lock: pymysql.connections.Connection,
          databases: tuple[str, ...], directory: Path, private: Path, dump_tool: str,
          zstd_tool: str, version_line: str, server_version: str, chunk_time: float,
          initial_chunk: int, lock_wait_s: int, header_timeout_s: float,
          started: float) -> BackupResult:
    where = settings.where
    option_file = client_option_file(settings, private)
    locked_since = time.monotonic()
    released: list[float] = []  # (once) how long writes were stalled

    def release() -> None:
        if not released:
            try:
                query(lock, "UNLOCK TABLES")
            except pymysql.MySQLError as exc:
                raise db_error(exc, settings) from None
            released.append(time.monotonic() - locked_since)

    point = _lock(lock, settings, lock_wait_s)
    snap: Snapshot | None = None
    pipeline: _Pipeline | None = None
    try:
        snap = Snapshot.open(settings, databases)  # session K, under the lock: point C
        pipeline = _Pipeline(dump_argv(dump_tool, option_file, databases), zstd_tool,
                             directory / (DUMP_FILE + ".part"), private / "dump.err",
                             settings.password)
        try:
            header = pipeline.wait_header(header_timeout_s, where)
        finally:
            release()
        unlocked_at = time.time()
        check_coordinates(header, point, where)
        recorded = snap.checksums(chunk_time=chunk_time, initial_chunk=initial_chunk)
        pipeline.finish(where)
        finished_at = time.time()
    except BaseException:
        if pipeline is not None:
            pipeline.abort()
        raise
    finally:
        with contextlib.suppress(Exception):
            release()
        if snap is not None:
            with contextlib.suppress(Exception):
                snap.close()
    taken_at = now_iso()
    document = Checksums(where, taken_at, point, databases, recorded)
    checksums = write_listed(directory, CHECKSUMS_FILE, document.to_json().encode())
    dump = keep_part(directory, DUMP_FILE, pipeline.size, pipeline.digest.hexdigest())
    write_manifest(directory, Manifest(
        "legacy", where, server_version, databases, taken_at, point, (dump, checksums),
        checksums.sha256, version_line, released[0]))
    return BackupResult(directory, where, point, dump.size, dump.sha256, len(recorded),
                        document.chunks, document.rows, released[0], unlocked_at,
                        finished_at, time.monotonic() - started)
