"""furet's SSTable helper process: rows in, SSTables out, streamed to the ring on demand.

The helper (``packaging/sstable/``, Java: Cassandra's own ``CQLSSTableWriter`` and
sstableloader's ``BulkLoader``) takes the values furet already serialised (a bound
statement's values, the driver's bytes, write time last) and writes them into SSTables of
the query tables, in segment directories ``<work>/segment-N/<keyspace>/<table>``; a load
streams one such directory to every replica of its rows, as ``sstableloader`` does. The
ring's CPU is the cost of a CQL bulk load (each row parsed, coordinated and written through
the commit log and memtable on every replica); streamed SSTables skip all of that.

This module is the only place that speaks the helper's framing (the Java class documents
the same contract): 'T' declares a table, 'R' sends a row, 'F' closes the segment (the
refused rows come back with their reason), 'L' loads a directory, 'Q' quits. Rows are
written without waiting for an answer; answers come only after 'F' and 'L', so the pipe
never holds both ends waiting.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migration.errors import FuretError

# The writers' buffer budget, shared by a helper's tables: each holds its share of rows
# (serialised size) before writing an SSTable, and as much again while that one is written.
# packaging/sstable/jvm.options sizes the heap for it.
BUFFER_MIB = 32
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_ROW = struct.Struct(">BBqH")
_NULL = _I32.pack(-1)


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack(">I", len(data)) + data


@dataclass
class Flushed:
    """A closed segment: its directory, the rows written, the rows refused (table, ref,
    reason; ref is what the caller sent with the row)."""

    directory: Path
    rows: int
    refused: list[tuple[str, int, str]] = field(default_factory=list)

    def table_dirs(self) -> list[Path]:
        """``<keyspace>/<table>`` directories holding SSTables."""
        return sorted(p for p in self.directory.glob("*/*") if any(p.glob("*-Data.db")))


class SstableHelper:
    """One helper process, owned by one round worker; :meth:`close` stops it and removes
    its work directory."""

    def __init__(self, launcher: str, work_parent: str | None = None,
                 buffer_mib: int = BUFFER_MIB) -> None:
        if not launcher or not Path(launcher).is_file():
            raise FuretError(f"cassandra.sstable_helper: {launcher or '(empty)'} not found: "
                             "make deps builds it (.cache/sstable), the etl_runner role "
                             "installs it on the ETL hosts")
        _remove_orphans(Path(work_parent or tempfile.gettempdir()))
        self.work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-",
                                          dir=work_parent))
        self.launcher = launcher
        self.tables: dict[str, int] = {}
        self.log = self.work / "helper.log"   # its stderr: the last line names a failure
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([launcher, str(self.work), str(buffer_mib)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout

    # -- frames ---------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        try:
            self._in.write(data)
        except BrokenPipeError:
            raise self._died() from None

    def _answer(self) -> str:
        try:
            self._in.flush()
        except BrokenPipeError:
            raise self._died() from None
        line = self._out.readline()
        if not line:
            raise self._died()
        return line.decode("utf-8", "replace").rstrip("\n")

    def _died(self) -> FuretError:
        try:   # its pipe closed: its exit follows
            code: int | None = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        text = self.log.read_text("utf-8", "replace") if self.log.exists() else ""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        last = lines[-1].strip()[:300] if lines else "no output"
        if "OutOfMemoryError" in last:
            last += (f" (its heap, -Xmx in {Path(self.launcher).parent.parent}/jvm.options, "
                     "is too small for this many query tables of one source table)")
        return FuretError(f"sstable helper stopped (exit {code}): {last}")

    def table(self, keyspace: str, table: str, create: str, insert: str) -> None:
        """Declare a query table: its CREATE TABLE and its ``INSERT ... USING TIMESTAMP ?``
        (the statement whose bound values :meth:`row` sends)."""
        if table in self.tables:
            return
        number = self.tables[table] = len(self.tables)
        if number > 255:
            raise FuretError("sstable helper: more than 256 query tables in one flow")
        self._send(b"T" + bytes([number]) + _text(keyspace) + _text(table) + _text(create)
                   + _text(insert))

    def row(self, table: str, ref: int, values: Sequence[bytes | None]) -> None:
        """One row of ``table``: the bound values in the INSERT's order (write time last),
        serialised as the driver does; ``ref`` comes back if the row is refused."""
        parts = [_ROW.pack(ord("R"), self.tables[table], ref, len(values))]
        for value in values:
            if value is None:
                parts.append(_NULL)
            else:
                parts.append(_I32.pack(len(value)))
                parts.append(value)
        self._send(b"".join(parts))

    def flush(self) -> Flushed:
        """Close the current segment: its SSTables are complete on disk."""
        self._send(b"F")
        refused = []
        while True:
            line = self._answer()
            word, _, rest = line.partition(" ")
            if word == "refused":
                table, ref, reason = rest.split(" ", 2)
                refused.append((table, int(ref), reason))
            elif word == "flushed":
                rows, directory = rest.split(" ", 1)
                return Flushed(Path(directory), int(rows), refused)
            else:
                raise FuretError(f"sstable helper: unexpected answer {line[:200]!r}")

    def load(self, directory: Path, options: Sequence[str]) -> str:
        """Stream ``directory`` (``<keyspace>/<table>``) to the ring with sstableloader's
        ``options``; "" when loaded, else the reason in one line."""
        self._send(b"L" + _text(str(directory)) + _U16.pack(len(options))
                   + b"".join(_text(o) for o in options))
        line = self._answer()
        if line == "loaded":
            return ""
        word, _, reason = line.partition(" ")
        if word != "failed":
            raise FuretError(f"sstable helper: unexpected answer {line[:200]!r}")
        return reason

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._in.write(b"Q")
                    self._in.close()
                except (BrokenPipeError, ValueError):
                    pass
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> SstableHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WORK_PREFIX = "furet-sstable-"


def _remove_orphans(parent: Path) -> None:
    """Work directories of furet processes that are gone (killed before their helpers'
    ``close``): their segments were never booked, the rounds replay them."""
    for path in parent.glob(f"{WORK_PREFIX}*-*"):
        pid = path.name[len(WORK_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def default_launcher() -> str:
    """Where the helper is: ``.cache/sstable/current/bin/furet-sstable`` of the checkout
    furet runs from (``$FURET_HOME``, else this package's; ``make deps`` builds it), else
    where the etl_runner role installs it."""
    checkouts = [Path(os.environ["FURET_HOME"])] if os.environ.get("FURET_HOME") else []
    checkouts.append(Path(__file__).resolve().parents[2])
    for checkout in checkouts:
        candidate = checkout / ".cache" / "sstable" / "current" / "bin" / "furet-sstable"
        if candidate.is_file():
            return str(candidate)
    return INSTALLED


INSTALLED = "/opt/furet/sstable/bin/furet-sstable"
