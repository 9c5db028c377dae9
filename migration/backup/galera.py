"""`furet backup galera --to DIR --stream-command CMD`: a physical backup of one Galera node
(mariadb-backup) and furet's chunk checksums of the backed-up databases at the same point
(design issue 13, sections 2 and 4). Run on the backup host.

CMD is a shell command (``bash -o pipefail -c``) that writes ``mariadb-backup --backup
--stream=xbstream --galera-info`` of the node to its stdout: on the lab an ``ssh`` whose
forced command on galera3 runs it. furet does not care how; it reads the stream.

**Why the checksums equal what mariadb-backup copies.** Before the cutover only furet writes
the target databases: its rounds (and ``verify --repair``), each under its flow's lock
(``furet.locks``, :mod:`migration.engine.flow_lock`). The backup

1. takes the lock of every flow that writes a backed-up database (the shipped flows and
   those of ``flows.dir``: :func:`flows_writing`), all of them or none
   (:func:`~migration.engine.flow_lock.hold_all`): while one is busy
   (a round runs) it releases what it took and tries again every second, for up to
   ``--lock-wait`` seconds, then refuses in one line naming the holder. It never holds
   some locks while waiting for others, so it can neither starve a round nor deadlock
   with another backup;
2. records each locked flow's latest round in the ledger;
3. opens the checksum session on the node (``--source-host``/``--source-port``, default
   the target settings): ``wsrep_sync_wait = 1`` first, so that the snapshot waits until
   the node has applied every write set committed in the cluster (a desynced donor may
   lag), then ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` (REPEATABLE READ);
4. starts CMD and streams its stdout through zstd into ``galera.xbstream.zst`` (its sha256
   and size taken as it is written, :mod:`migration.backup.pipe`), while the checksums
   are taken in that snapshot (:mod:`migration.backup.checksums`);
5. once the stream has ended: the latest rounds must be the same and the locks still the
   backup's, else the backup is refused (a round may have written what the checksums
   lack). Then the locks are released.

So no furet write falls between the snapshot and mariadb-backup's own point (its BACKUP
STAGE BLOCK_COMMIT, near the stream's end), and the checksums describe the archive.

**The limit**: a writer that is not furet (the application after the switch, an operator's
UPDATE) holds no flow lock. A write of it between the snapshot and mariadb-backup's point
makes the archive differ from the checksums: the restore test fails on that chunk. That is
a false alarm, never a difference hidden. After the switch, Galera's backups belong to the
regular backup tooling; furet's restore test proves a backup against furet's own quiet
window only.

6. **Prepare**: the archive, once written, is extracted and prepared
   (:mod:`migration.backup.mariabackup`) in a work directory (``--workdir``, default DIR
   itself: the filesystem sized for backups, where /tmp is often small or a tmpfs). What
   mariadb-backup recorded (galera position ``uuid:seqno``, binary log position,
   checkpoints) goes into the manifest; then the work directory is removed. The prepared
   datadir is not kept: the restore test restores from the archive, which proves the file
   that stays (a kept copy would double the disk and prove nothing about the archive).
   **Disk**: DIR needs the archive, plus during the prepare the datadir's full size
   (uncompressed) and its redo; the restore test needs the datadir's size again where it
   runs (its ``--workdir``).
7. ``checksums.json``, then ``manifest.json`` last (:mod:`migration.backup.manifest`). A
   failure anywhere removes what the backup wrote (and DIR if it made it), so a directory
   without a manifest never looks like a backup.

mariadb-backup copies the whole datadir (every database, ``mysql.*`` included);
``--database`` chooses what is checksummed, so what the restore test proves. The ledger's
database cannot be one: the backup's own locks write it during the backup.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pymysql

from migration.backup import mariabackup
from migration.backup.checksums import (
    CHUNK_TIME,
    INITIAL_CHUNK,
    Checksums,
    Snapshot,
    start_snapshot,
)
from migration.backup.legacy import DEFAULT_DATABASES
from migration.backup.manifest import (
    ARCHIVE_FILE,
    CHECKSUMS_FILE,
    MANIFEST_FILE,
    Manifest,
    Physical,
    RoundMark,
    keep_part,
    now_iso,
    write_listed,
    write_manifest,
)
from migration.backup.pipe import CompressPipe, backup_directory, last_line, refuse_used, tool
from migration.config import DbSettings, FuretConfig
from migration.db import connect, db_error, error_code, query
from migration.engine import ledger
from migration.engine.flow_lock import hold_all
from migration.errors import FuretError
from migration.flows.locate import SHIPPED_DIR, flow_names
from migration.flows.mapping import load_flow

LEDGER_DATABASE = "furet"
LOCK_WAIT_S = 300.0     # a round of the lab's data set ends well within it
UNKNOWN_VARIABLE = 1193  # wsrep_sync_wait on a server built without wsrep
BACKABLE_STATES = ("Synced", "Donor/Desynced")


@dataclass(frozen=True)
class GaleraBackupResult:
    directory: Path
    server: str
    point: str                 # galera uuid:seqno, else binlog position, else LSN
    size: int                  # bytes of galera.xbstream.zst
    sha256: str
    tables: int
    chunks: int
    rows: int
    flows: tuple[str, ...]     # whose locks the backup held
    lock_wait_seconds: float   # waited for them (a round was running)
    lock_seconds: float        # held them (those flows' rounds waited meanwhile)
    stream_seconds: float
    prepare_seconds: float     # extract and prepare
    datadir_bytes: int
    seconds: float

    @property
    def line(self) -> str:
        flows = ", ".join(self.flows) or "no flow"
        return (f"{self.server}: backup {self.directory} at {self.point or 'its end'}: "
                f"{self.tables} tables, {self.rows:,} rows in {self.chunks} checksummed chunks, "
                f"{ARCHIVE_FILE} {self.size:,} bytes sha256 {self.sha256[:16]} (datadir "
                f"{self.datadir_bytes:,} bytes, prepared in {self.prepare_seconds:.1f}s), "
                f"locks of {flows} held {self.lock_seconds:.1f}s after waiting "
                f"{self.lock_wait_seconds:.1f}s, {self.seconds:.1f}s")


# --- what the backup holds --------------------------------------------------------------


def source_settings(config: FuretConfig, host: str | None, port: int | None) -> DbSettings:
    """The node streamed and checksummed: the target's account, on ``host``:``port``."""
    return replace(config.target, role="galera", host=host or config.target.host,
                   port=port or config.target.port)


def flows_writing(databases: Sequence[str], flows_dir: str) -> list[str]:
    """The flows (shipped, and deployed in ``flows_dir``) whose rounds write one of
    ``databases`` on the target. A flow that does not load refuses the backup: whether it
    writes them is unknown."""
    names = sorted(set(flow_names(SHIPPED_DIR)) | set(flow_names(flows_dir)))
    found = []
    for name in names:
        flow = load_flow(name, flows_dir=flows_dir)
        if (flow.target_kind == "mariadb" and flow.target_server == "target"
                and flow.target_database in databases):
            found.append(flow.name)
    return found


def _marks(conn: pymysql.connections.Connection, settings: DbSettings,
           flows: Sequence[str]) -> dict[str, RoundMark]:
    """Each flow's latest round in the ledger."""
    marks = {}
    try:
        for flow in flows:
            last = ledger.last_round(conn, flow)
            if last is None:
                marks[flow] = RoundMark(0)
                continue
            summary = ledger.round_summary(conn, flow, last.round_no)
            marks[flow] = RoundMark(summary.round_no, summary.status, summary.invocations,
                                    summary.rows_written)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet", "rounds") from None
    return marks


def _check_unmoved(conn: pymysql.connections.Connection, settings: DbSettings,
                   before: dict[str, RoundMark], tokens: dict[str, str]) -> None:
    """Refuse when a locked flow's latest round changed, or its lock is no longer ours."""
    after = _marks(conn, settings, list(before))
    for flow, mark in before.items():
        if after[flow] != mark:
            raise FuretError(f"{settings.where}: flow {flow}: its latest round in the ledger "
                             f"changed during the backup ({mark.label} -> "
                             f"{after[flow].label}): the archive may hold rows the checksums "
                             "lack; nothing kept, run the backup again")
    try:
        holders = {flow: ledger.lock_holder(conn, flow) for flow in tokens}
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet", "locks") from None
    for flow, token in tokens.items():
        holder = holders[flow]
        if holder is None or holder.token != token:
            now = ("nobody holds it" if holder is None else
                   f"`{holder.command}` on host {holder.host} holds it")
            raise FuretError(f"{settings.where}: flow {flow}: the backup's lock in furet.locks "
                             f"was lost during the backup ({now}): a round may have written; "
                             "nothing kept, run the backup again")


# --- the node ---------------------------------------------------------------------------


def preflight(conn: pymysql.connections.Connection, settings: DbSettings,
              databases: Sequence[str]) -> tuple[str, bool]:
    """The node's version and whether it is a Galera node; refuses an unknown database
    and a node that is neither Synced nor a desynced donor."""
    marks = ", ".join(["%s"] * len(databases))
    try:
        (version,), = query(conn, "SELECT VERSION()")
        try:
            (wsrep_on,), = query(conn, "SELECT @@wsrep_on")
        except pymysql.MySQLError as exc:
            if error_code(exc) != UNKNOWN_VARIABLE:
                raise
            wsrep_on = 0
        present = {str(r[0]) for r in query(
            conn, f"SELECT schema_name FROM information_schema.schemata WHERE schema_name IN "
                  f"({marks})", tuple(databases))}
        state = ""
        if int(wsrep_on or 0):
            rows = query(conn, "SHOW STATUS LIKE 'wsrep_local_state_comment'")
            state = str(rows[0][1]) if rows else "unknown"
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    for db in databases:
        if db not in present:
            raise FuretError(f"{settings.where}: unknown database {db}")
    if int(wsrep_on or 0) and state not in BACKABLE_STATES:
        raise FuretError(f"{settings.where}: wsrep_local_state_comment is {state!r}: back up a "
                         f"node that is {' or '.join(BACKABLE_STATES)} (--source-host)")
    return str(version), bool(int(wsrep_on or 0))


def _sync_wait(conn: pymysql.connections.Connection, value: int) -> None:
    try:
        query(conn, f"SET SESSION wsrep_sync_wait = {int(value)}")
    except pymysql.MySQLError as exc:
        if error_code(exc) != UNKNOWN_VARIABLE:
            raise


def _start_synced(conn: pymysql.connections.Connection) -> None:
    """The checksum session's snapshot, once the node has applied everything the cluster
    committed (the flow locks are held: nothing of furet's comes after)."""
    _sync_wait(conn, 1)   # START TRANSACTION waits for the node to catch up
    start_snapshot(conn)
    _sync_wait(conn, 0)   # the checksum queries need not wait each


# --- the stream -------------------------------------------------------------------------


def shown(command: str) -> str:
    """A command as messages show it: on one line."""
    return " ".join(command.split())


class _Stream(CompressPipe):
    """``bash -o pipefail -c CMD | zstd > part``: CMD must write a non-empty xbstream."""

    def __init__(self, command: str, zstd: str, part: Path, errors: Path, secret: str) -> None:
        super().__init__([tool("bash"), "-o", "pipefail", "-c", command], zstd, part, errors,
                         secret, f"--stream-command `{shown(command)}`")

    def stderr(self) -> str:
        return last_line(self.errors, self.secret) or "(nothing on stderr)"

    def finish(self, where: str) -> None:
        super().finish(where)
        if self.raw == 0:
            raise FuretError(f"{where}: {self.name} wrote nothing (exit 0): {self.stderr()}")
        if not self.head.startswith(mariabackup.XBSTREAM_MAGIC):
            raise FuretError(f"{where}: {self.name} wrote something else than an xbstream (it "
                             f"starts with {self.head[:24]!r}): {self.stderr()}")


# --- the backup -------------------------------------------------------------------------


def backup_galera(config: FuretConfig, to: Path | str, stream_command: str,
                  databases: Sequence[str] = DEFAULT_DATABASES, *,
                  source_host: str | None = None, source_port: int | None = None,
                  lock_wait_s: float = LOCK_WAIT_S, workdir: Path | str | None = None,
                  chunk_time: float = CHUNK_TIME,
                  initial_chunk: int = INITIAL_CHUNK) -> GaleraBackupResult:
    """Stream a node's mariadb-backup into ``to`` with the checksums of ``databases`` at
    its point, prove the archive extracts and prepares; see the module docstring."""
    names = tuple(dict.fromkeys(databases))
    if not names:
        raise FuretError("backup galera: no database to back up")
    if LEDGER_DATABASE in names:
        raise FuretError(f"backup galera: database {LEDGER_DATABASE} is furet's ledger, which "
                         "the backup itself writes (its flow locks): its checksums could never "
                         "match; it is in the archive anyway (mariadb-backup copies the whole "
                         "datadir)")
    if not stream_command.strip():
        raise FuretError("backup galera: --stream-command is empty")
    directory = Path(to)
    refuse_used(directory)
    if workdir is not None and not Path(workdir).is_dir():
        raise FuretError(f"backup galera: --workdir {workdir} is not a directory")
    zstd, _, _ = mariabackup.tools()
    version_line = mariabackup.tool_version()
    settings = source_settings(config, source_host, source_port)
    flows = flows_writing(names, config.flows.dir)
    started = time.monotonic()
    with contextlib.closing(connect(settings)) as node:
        server_version, galera = preflight(node, settings, names)
        mariabackup.check_same_line(server_version, version_line, settings.where)
        with backup_directory(directory, (ARCHIVE_FILE, CHECKSUMS_FILE, MANIFEST_FILE)
                              ) as private:
            return _take(config, settings, names, flows, stream_command, directory, private,
                         Path(workdir) if workdir is not None else directory, zstd,
                         version_line, server_version, galera, lock_wait_s, chunk_time,
                         initial_chunk, started)


def _take(config: FuretConfig, settings: DbSettings, databases: tuple[str, ...],
          flows: list[str], command: str, directory: Path, private: Path, workdir: Path,
          zstd: str, version_line: str, server_version: str, galera: bool,
          lock_wait_s: float, chunk_time: float, initial_chunk: int,
          started: float) -> GaleraBackupResult:
    where, book_settings = settings.where, config.target
    part = directory / (ARCHIVE_FILE + ".part")
    with contextlib.ExitStack() as locks:
        tokens, waited = hold_all(locks, book_settings, flows,
                                  f"furet backup galera --to {directory}", lock_wait_s,
                                  "backup galera")
        held_since = time.monotonic()
        book = None
        before: dict[str, RoundMark] = {}
        if flows:
            book = connect(book_settings, autocommit=True)
            locks.callback(book.close)
            before = _marks(book, book_settings, flows)
        snap = Snapshot.open(settings, databases, _start_synced)
        locks.callback(snap.close)
        streaming = time.monotonic()
        stream = _Stream(command, zstd, part, private / "stream.err", settings.password)
        try:
            recorded = snap.checksums(chunk_time=chunk_time, initial_chunk=initial_chunk)
            stream.finish(where)
        except BaseException:
            stream.abort()
            raise
        stream_seconds = time.monotonic() - streaming
        if book is not None:
            _check_unmoved(book, book_settings, before, tokens)
        lock_seconds = time.monotonic() - held_since
    prepared = _prepare(stream, part, workdir, where)
    if galera and not prepared.galera_position:
        raise FuretError(f"{where}: a Galera node, but {stream.name}'s stream holds no "
                         f"{mariabackup.GALERA_INFO[0]}: give its mariadb-backup --galera-info")
    taken_at = now_iso()
    document = Checksums(where, taken_at, prepared.coordinates, databases, recorded)
    checksums = write_listed(directory, CHECKSUMS_FILE, document.to_json().encode())
    archive = keep_part(directory, ARCHIVE_FILE, stream.size, stream.digest.hexdigest())
    write_manifest(directory, Manifest(
        "galera", where, server_version, databases, taken_at, prepared.coordinates,
        (archive, checksums), checksums.sha256, version_line, lock_seconds,
        Physical(command, prepared.galera_position, prepared.info, before, waited,
                 prepared.size)))
    return GaleraBackupResult(
        directory, where, prepared.point, archive.size, archive.sha256, len(recorded),
        document.chunks, document.rows, tuple(flows), waited, lock_seconds, stream_seconds,
        prepared.extract_seconds + prepared.prepare_seconds, prepared.size,
        time.monotonic() - started)


def _prepare(stream: _Stream, part: Path, workdir: Path, where: str) -> mariabackup.Prepared:
    """The written archive extracted and prepared in a work directory, removed after."""
    work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=workdir))
    try:
        return mariabackup.extract_and_prepare(part, work / "data", work, name=ARCHIVE_FILE)
    except mariabackup.ArchiveError as exc:
        raise FuretError(f"{where}: {stream.name}: {exc}; its stderr ended with: "
                         f"{stream.stderr()}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
