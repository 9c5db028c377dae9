"""Round 1 into Cassandra by streamed SSTables (``cassandra.bulk_load: sstable``).

A CQL bulk load makes every replica parse, coordinate and write each row through its
commit log and memtable; on the lab that is more than half of dsbulk's time, so no CQL
writer can be much faster (README, Benchmarks). This writer prepares each row exactly as
:class:`~migration.engine.cassandra_writer.CassandraWriter` does (transforms, the bound
``INSERT ... USING TIMESTAMP <version>``: the same serialised values, the same quarantine
of what cannot be bound), but hands the values to furet's SSTable helper
(:mod:`migration.engine.sstable_helper`) instead of the ring. Once a worker sent enough
rows, the helper closes its segment's SSTables and streams them to every replica
(sstableloader's code); only then does the round book the checkpoints of the segment's
chunks. A kill before that replays those chunks from their start, which the write
timestamps make harmless, as they make the order of arrival irrelevant: a streamed cell
never beats a newer version.

A row the SSTable writer refuses (what the ring would refuse: a null or oversized key) is
read again by key and sent through the CQL writer after the load: the ring refuses it too
and it is quarantined with the ring's reason and taken back out of the other query tables
(a tombstone at the row's own write time beats the streamed cell), or the ring takes it.

One helper process per round worker. A load costs about 5 s on the lab whatever its size
(the stream's set-up), so a worker's segment spans chunks (:data:`SEGMENT_ROWS` source
rows) and their checkpoints wait for its load; it keeps only each row's key (for a
refused row), so furet's memory is bounded by workers x segment keys.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migration.config import CassandraSettings
from migration.engine.cassandra_writer import CassandraWriter
from migration.engine.ledger import Chunk
from migration.engine.reader import Cursor
from migration.engine.sstable_helper import SstableHelper, default_launcher
from migration.engine.versions import VersionCodec
from migration.engine.writer import BatchOutcome
from migration.errors import FuretError
from migration.flows.mapping import TableFlow, TransformError


def create_table(session: Any, keyspace: str, table: str) -> str:
    """The query table's CREATE TABLE as the SSTable writer needs it (columns, key,
    clustering order; the ring's table options do not matter to the files), from the
    ring's own schema. A user-defined type is refused (the writer would need it declared)."""
    try:
        keyspace_meta = session.cluster.metadata.keyspaces[keyspace]
        meta = keyspace_meta.tables[table]
    except (AttributeError, KeyError):
        raise FuretError(f"cassandra keyspace {keyspace} table {table}: not found in the "
                         "ring's schema") from None
    udts = set(keyspace_meta.user_types)
    for column in meta.columns.values():
        words = column.cql_type
        for mark in "<>,":
            words = words.replace(mark, " ")
        if udts & set(words.split()):
            raise FuretError(f"cassandra keyspace {keyspace} table {table}: column "
                             f"{column.name} has a user-defined type, which the SSTable "
                             "writer cannot take: set cassandra.bulk_load: CQL")
    columns = ", ".join(f"{_ident(c.name)} {c.cql_type}" for c in meta.columns.values())
    partition = ", ".join(_ident(c.name) for c in meta.partition_key)
    key = ", ".join([f"({partition})", *(_ident(c.name) for c in meta.clustering_key)])
    order = ", ".join(f"{_ident(c.name)} {'DESC' if c.is_reversed else 'ASC'}"
                      for c in meta.clustering_key)
    return (f"CREATE TABLE {_ident(keyspace)}.{_ident(table)} ({columns}, PRIMARY KEY "
            f"({key})){f' WITH CLUSTERING ORDER BY ({order})' if order else ''}")


def _ident(name: str) -> str:
    if name.isidentifier() and name == name.lower():
        return name
    return '"' + name.replace('"', '""') + '"'


_PEM = {"class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"}


def loader_options(settings: CassandraSettings, work: Path) -> list[str]:
    """sstableloader's options for the ring of ``settings`` (they reach the helper through
    its pipe, never a command line): contact hosts, ports, the account, and TLS: the native
    port's as furet's own connections use it, the internode port's with this host's
    certificate (``cassandra.internode_cert``), which the loader also shows on the native
    port (its PEM context wants a key on both)."""
    options = ["-d", ",".join(settings.hosts), "-p", str(settings.port),
               "-sp", str(settings.storage_port), "--no-progress"]
    if settings.user:
        options += ["-u", settings.user, "-pw", settings.password]
    if not (settings.ssl_ca or settings.internode_tls):
        return options
    if not settings.internode_cert or not settings.ssl_ca:
        missing = "cassandra.internode_cert" if not settings.internode_cert else \
            "cassandra.ssl_ca"
        raise FuretError(f"{settings.where}: streamed SSTables (cassandra.bulk_load: SSTABLE) "
                         f"to a ring with TLS need {missing} (or cassandra.bulk_load: CQL)")
    conf: dict[str, Any] = {}
    if settings.ssl_ca:
        conf["client_encryption_options"] = {
            "enabled": True, "ssl_context_factory": _PEM, "truststore": settings.ssl_ca,
            "keystore": settings.internode_cert,
            "require_endpoint_verification": settings.ssl_verify_identity}
    if settings.internode_tls:
        conf["server_encryption_options"] = {
            "internode_encryption": "all", "ssl_context_factory": _PEM,
            "keystore": settings.internode_cert, "outbound_keystore": settings.internode_cert,
            "truststore": settings.ssl_ca,
            "require_endpoint_verification": settings.ssl_verify_identity}
    path = work / "loader.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(conf, handle)
    return [*options, "-f", str(path)]


SEGMENT_ROWS = 100_000


@dataclass
class HeldChunk:
    """A chunk whose rows are in a segment not loaded yet: its checkpoint waits."""

    chunk: Chunk
    read: int
    cursor: Cursor
    outcome: BatchOutcome


@dataclass
class Segment:
    """One worker's helper and what it holds since its last load: the rows sent (the writer
    and key of each, what a refused row is read again by) and the chunks they came from."""

    helper: SstableHelper
    rows: list[tuple[SstableWriter, Sequence[Any]]] = field(default_factory=list)
    chunks: list[HeldChunk] = field(default_factory=list)


class SstableLoads:
    """The SSTable helpers of one round's workers (one process each, started when first
    needed) and the segment each holds. A segment is loaded once it holds ``segment_rows``
    source rows, and at the end of the round: each load streams the segment's query tables
    (about 5 s each whatever their size on the lab, the stream's own set-up; hence segments
    of many chunks, each chunk's checkpoint booked after its segment's load)."""

    def __init__(self, settings: CassandraSettings, segment_rows: int = SEGMENT_ROWS) -> None:
        self.settings = settings
        self.segment_rows = segment_rows
        self.local = threading.local()
        self.lock = threading.Lock()
        self.segments: list[Segment] = []

    def segment(self) -> Segment:
        """This worker's segment."""
        segment: Segment | None = getattr(self.local, "segment", None)
        if segment is None:
            helper = SstableHelper(self.settings.sstable_helper or default_launcher())
            segment = self.local.segment = Segment(helper)
            with self.lock:
                self.segments.append(segment)
        return segment

    def load(self, segment: Segment,
             reread: Callable[[TableFlow, list[Any]], list[tuple[Any, ...]]]
             ) -> list[HeldChunk]:
        """Close the segment, stream each of its query tables to the ring, then send the rows
        the SSTable writer refused through CQL, read again by key (``reread``): quarantined
        there if the ring refuses them too, their chunk's outcome says so. Returns the
        segment's chunks, now to be booked; the segment is empty again."""
        flushed = segment.helper.flush()
        options = loader_options(self.settings, segment.helper.work)
        for directory in flushed.table_dirs():
            reason = segment.helper.load(directory, options)
            if reason:
                raise FuretError(f"cassandra keyspace {directory.parent.name} table "
                                 f"{directory.name}: streaming its SSTables failed: {reason}")
        shutil.rmtree(flushed.directory, ignore_errors=True)
        refused: dict[SstableWriter, list[Any]] = {}
        for ref in sorted({ref for _, ref, _ in flushed.refused}):
            writer, key = segment.rows[ref]
            refused.setdefault(writer, []).append(key)
        chunks = segment.chunks
        for writer, keys in refused.items():
            again = CassandraWriter.write(writer, None, reread(writer.tf, keys))
            held = next(h for h in chunks if h.chunk.source_table == writer.tf.source)
            held.outcome.quarantined.extend(again.quarantined)
            held.outcome.written -= len(keys) - again.written
        segment.rows, segment.chunks = [], []
        return chunks

    def close(self) -> None:
        for segment in self.segments:
            segment.helper.close()


class SstableWriter(CassandraWriter):
    """:class:`CassandraWriter`'s rows, written by streamed SSTables: :meth:`write` sends a
    batch to this worker's helper (:class:`SstableLoads` loads them)."""

    def __init__(self, session: Any, keyspace: str, table_flow: TableFlow,
                 codec: VersionCodec, loads: SstableLoads) -> None:
        super().__init__(session, keyspace, table_flow, codec,
                         loads.settings.write_consistency)
        self.loads = loads
        self.schemas = {tm.table: create_table(session, keyspace, tm.table)
                        for tm, _, _ in self.targets}
        # each INSERT's bind markers' types, write time last: the values are serialised as
        # the driver's bind does, without its BoundStatement (measured: most of the client's
        # time per row went there); a value that fails takes bind's path, for its message
        self.protocol = session.cluster.protocol_version
        self.types = [[c.type for c in statement.column_metadata]
                      for _, statement, _ in self.targets]

    def _serialised(self, row: Sequence[Any]) -> tuple[list[list[bytes | None]], str]:
        """Each query table's values as the driver serialises them, write time last; or
        why the row cannot be written (the reason :meth:`CassandraWriter._bind` gives)."""
        try:
            write_time, per_table = self._mapped(row)
            out = []
            for types, values in zip(self.types, per_table, strict=True):
                out.append([None if value is None else kind.serialize(value, self.protocol)
                            for kind, value in zip(types, (*values, write_time),
                                                   strict=True)])
            return out, ""
        except TransformError as exc:
            return [], str(exc)
        except Exception:  # noqa: BLE001  # the driver's bind names the column and the value
            _, _, reason = self._bind(row)
            if not reason:
                raise
            return [], reason

    def write(self, cur: Any, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        """Send ``rows`` to this worker's helper; what cannot be bound is quarantined now,
        what the SSTable writer refuses when :meth:`SstableLoads.load` closes the segment."""
        segment = self.loads.segment()
        helper = segment.helper
        outcome = BatchOutcome()
        for tm, statement, _ in self.targets:
            helper.table(self.keyspace, tm.table, self.schemas[tm.table],
                         statement.query_string)
        width = self.tf.width
        tables = [tm.table for tm, _, _ in self.targets]
        for row in rows:
            serialised, reason = self._serialised(row)
            if reason:
                outcome.quarantined.append(self._quarantine(row, tables[0], reason))
                continue
            ref = len(segment.rows)
            segment.rows.append((self, tuple(row[:width])))
            for table, values in zip(tables, serialised, strict=True):
                helper.row(table, ref, values)
        outcome.written = len(rows) - len(outcome.quarantined)
        return outcome
