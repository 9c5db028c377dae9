"""``furet verify --repair``: put the target back in line with the source, then re-check.

- missing and different rows are re-read from the source and written through the SAME
  version-aware writers the rounds use (:class:`~migration.engine.galera_writer.GaleraWriter`,
  :class:`~migration.engine.cassandra_writer.CassandraWriter`): an older version never
  replaces a newer one, rows the writer refuses go to furet.quarantine;
- extra rows are deleted only with ``--delete-extra`` (by key tuple on MariaDB, by primary
  key on Cassandra), and only those the source, read again by key just before, still does
  not hold (:func:`still_extra`: a row inserted at the source since the comparison is
  live); a Cassandra delete is stamped with the row's own latest write time, never now,
  so a source version written later still wins;
- the repaired chunks are checked again. A row still wrong after a version-aware write is
  *shadowed*: the target holds something newer than the source's version (on MariaDB a
  higher version column; on Cassandra a write or a tombstone with a later write time, e.g.
  a row deleted or edited by hand). It is reported, and overwritten only with
  ``--overwrite-newer`` (MariaDB: an unconditional upsert; Cassandra: ``USING TIMESTAMP``
  the target row's latest write time + 1 µs, so a later source change still wins; a row
  deleted by a tombstone, whose time CQL does not show, is left shadowed), then checked
  once more.

A repair runs under the flow's lock (taken by :func:`migration.verify.run.run_verify`), so
no round of the flow writes between its comparison and its writes. Refused rows go to
furet.quarantine batch by batch, as they are found.

A table without a version column (``version: none``, MariaDB targets only) is written as
its rounds write it: the rounds' writer upserts it unconditionally, the source's row
always wins. Nothing can be shadowed, so ``--overwrite-newer`` has nothing to do there; a
row still wrong at the re-check (changed at the source meanwhile) is counted as such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from migration.canonical import key_text
from migration.config import DbSettings
from migration.db import connect, db_error
from migration.engine import ledger
from migration.engine.keys import Key
from migration.engine.quarantine import QuarantinedRow
from migration.flows.mapping import TransformError
from migration.rowhash import transformed_texts
from migration.verify.chunks import Range
from migration.verify.drilldown import Classified
from migration.verify.mysql_checksum import RowInfo
from migration.verify.planner import Chunk
from migration.verify.report import RepairReport, shown_key
from migration.verify.report_builder import key_order
from migration.verify.sides import Pair, batches, nk

REPAIR_ROUND_NO = 0  # furet.quarantine.round_no of rows refused during a repair

Recheck = Callable[[Sequence[Range]], Classified]
RecordQuarantine = Callable[[Sequence[QuarantinedRow]], None]


@dataclass(frozen=True)
class RepairPolicy:
    delete_extra: bool = False      # delete extra target rows
    overwrite_newer: bool = False   # write the source's rows over a newer target copy
    max_report_rows: int = 1000     # shadowed keys listed


def ledger_quarantine(settings: DbSettings, flow: str) -> RecordQuarantine:
    """Record refused rows in the target's furet.quarantine (created if needed)."""

    def record(rows: Sequence[QuarantinedRow]) -> None:
        if not rows:
            return
        conn = connect(settings, autocommit=True, strict=True)  # as a round writes it
        try:
            ledger.record_quarantine(conn, flow, REPAIR_ROUND_NO, rows)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "furet", "quarantine") from None
        finally:
            conn.close()

    return record


def copy_rows(pair: Pair, keys: Sequence[Key], record: RecordQuarantine) -> tuple[int, int]:
    """Re-copy the source rows of ``keys`` through the round's writer, batch by batch, each
    batch's refused rows recorded before the next is read (a repair killed half-way keeps
    the quarantine it found): (written, quarantined)."""
    written = quarantined = 0
    for batch in batches(keys):
        outcome = pair.target.copy(pair.source.source_rows(batch))
        if outcome.quarantined:
            record(outcome.quarantined)
        written += outcome.written
        quarantined += len(outcome.quarantined)
    return written, quarantined


def still_extra(pair: Pair, extra: Sequence[tuple[str, RowInfo]]
                ) -> list[tuple[str, RowInfo]]:
    """The extra rows the source, read again by key now, still does not account for.

    The comparison read the source a while ago: a row inserted since (its copy in the
    target is then live, not extra) must not be deleted. An extra row is kept when the
    source now holds its key and, on a target whose primary key is not the source key (a
    Cassandra query table: ``pair.target.identity`` gives the primary key's positions among
    the compared columns), when that source row maps to the same primary key; a stale copy
    left under an old partition or clustering key is still deleted."""
    if not extra:
        return []
    by_text = {nk(row.key): row.key for _, row in extra}
    now = {nk(tuple(r[:pair.tf.width])): r
           for r in pair.source.source_rows([by_text[k] for k in sorted(by_text)])}
    identity = pair.target.identity
    columns = list(pair.tf.source_columns)
    indexes = [columns.index(c.source) for c in pair.tm.columns]
    out = []
    for text, row in extra:
        source = now.get(nk(row.key))
        if source is None:
            out.append((text, row))
            continue
        if identity is None or row.texts is None:
            continue                      # the source holds this very row again: live
        texts = transformed_texts(pair.tm.columns, [source[i] for i in indexes])
        if any(texts[i] != row.texts[i] for i in identity):
            out.append((text, row))       # the source row lives under another primary key
    return out


def delete_rows(pair: Pair, extra: Sequence[tuple[str, RowInfo]]) -> tuple[int, int]:
    """Delete the extra rows still extra at the source just before: (deleted, kept)."""
    gone = still_extra(pair, extra)
    if not gone:
        return 0, len(extra)
    return pair.target.delete(gone), len(extra) - len(gone)


def _mapped(pair: Pair, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Source rows -> this pair's target values (rows a transform refuses are left out)."""
    columns = list(pair.tf.source_columns)
    indexes = [columns.index(c.source) for c in pair.tm.columns]
    out = []
    for row in rows:
        try:
            out.append(tuple(c.apply(row[i]) for c, i in zip(pair.tm.columns, indexes,
                                                             strict=True)))
        except TransformError:
            continue
    return out


def overwrite_rows(pair: Pair, keys: Sequence[Key]) -> int:
    """``--overwrite-newer``: write the source's rows over a newer target copy."""
    if not keys:
        return 0
    return pair.target.overwrite(_mapped(pair, pair.source.source_rows(keys)))


def _source_keys(found: Classified) -> list[Key]:
    """The source keys to write again, once each, in key order."""
    rows = [*found.missing.values(), *(s for s, _ in found.different.values())]
    by_text = {key_text(r.key): r.key for r in rows}
    return [by_text[k] for k in sorted(by_text, key=key_order)]


def repair_pair(pair: Pair, done: Sequence[Chunk], found: Classified, recheck: Recheck,
                record: RecordQuarantine, policy: RepairPolicy) -> RepairReport:
    """Repair one compared table, then re-check its mismatching chunks (``recheck(ranges)``
    compares those ranges again)."""
    report = RepairReport()
    chunks = [c for c in done if c.report.status == "mismatch"]
    ranges = [c.rng for c in chunks]
    report.copied, report.quarantined = copy_rows(pair, _source_keys(found), record)
    if policy.delete_extra:
        report.deleted, report.extra_kept = delete_rows(pair, found.extra)
    else:
        report.extra_kept = len(found.extra)
    after = recheck(ranges)
    # without a version the upsert was unconditional: nothing newer can hide a row
    shadowed = _source_keys(after) if pair.tf.version else []
    report.shadowed = [shown_key(k) for k in shadowed[:policy.max_report_rows]]
    if shadowed and policy.overwrite_newer:
        report.overwritten = overwrite_rows(pair, shadowed)
        after = recheck(ranges)
    report.rechecked_chunks = len(ranges)
    report.missing_after = len(after.missing)
    report.extra_after = len(after.extra)
    report.different_after = len(after.different)
    still = {c.rng.no for c in _rechecked_bad(after, chunks)}
    for chunk in chunks:
        chunk.report.status = "unrepaired" if chunk.rng.no in still else "repaired"
    return report


def _rechecked_bad(after: Classified, chunks: Sequence[Chunk]) -> list[Chunk]:
    """Chunks still holding a wrong row after the repair (by key, or by version range)."""
    bad = []
    rows = [s for s in after.missing.values()] + [t for _, t in after.extra]
    rows += [s for s, _ in after.different.values()]
    for chunk in chunks:
        for row in rows:
            value = row.version if chunk.rng.kind == "version" else row.key
            if value is not None and chunk.rng.contains(value):
                bad.append(chunk)
                break
    return bad
