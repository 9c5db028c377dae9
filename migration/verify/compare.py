"""One pair compared: the planner's chunks checksummed on both sides by parallel workers,
the mismatching chunks drilled down to rows.

A chunk is ``mismatch`` when its two (count, BIT_XOR) differ, and ``transient`` when its
drill-down then finds nothing: the rows changed between the checksum and the drill-down
(live traffic on the source), or, on Cassandra, the one replica the checksum pass read
lacked writes that the confirming consistency finds. Each side reads the way its store allows
(:class:`~migration.verify.sides.Side`); this module never asks which store it is.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from migration.canonical import key_text
from migration.progress import Reporter
from migration.verify.chunks import Range
from migration.verify.drilldown import Classified, merge
from migration.verify.planner import Chunk, ChunkPlanner, Quarantine, Versions, quarantine_of
from migration.verify.report import TableReport, shown_key
from migration.verify.report_builder import key_order
from migration.verify.sides import Pair, Reads


class Comparer:
    """Compares pairs; ``quarantined_versions(source_table)`` reads furet.quarantine;
    ``kept(pair)``, when given, the target rows to leave out of both sides too (a reverse
    flow: the legacy rows its forward flow quarantined, which the target never held)."""

    def __init__(self, planner: ChunkPlanner, reads: Reads, progress: Reporter,
                 quarantined_versions: Callable[[str], Versions],
                 max_report_rows: int,
                 kept: Callable[[Pair], Quarantine] | None = None) -> None:
        self.planner = planner
        self.reads = reads
        self.progress = progress
        self.quarantined_versions = quarantined_versions
        self.max_report_rows = max_report_rows
        self.kept = kept
        self.lock = threading.Lock()

    def quarantined(self, pair: Pair) -> Quarantine:
        """Source rows whose CURRENT version is in furet.quarantine (a table without a
        version: whose key is, at any version): expected absent; and the ``kept`` rows."""
        found = quarantine_of(self.quarantined_versions(pair.tf.source), pair.tf.width,
                              pair.numeric_key, pair.source.current_versions,
                              versioned=bool(pair.tf.version))
        if self.kept is not None:
            found = found.union(self.kept(pair))
        return found

    def _checksum(self, pair: Pair, chunk: Chunk) -> None:
        started = time.monotonic()
        chunk.source = pair.source.checksum(chunk)
        target = pair.target.checksum(chunk)
        if target is not None:
            chunk.target = target
        chunk.report.seconds = time.monotonic() - started
        chunk.report.source_rows = chunk.source[0]
        chunk.report.target_rows = chunk.target[0]
        chunk.report.quarantined = len(chunk.excluded)

    def _run_chunks(self, pair: Pair, chunks: Iterator[Chunk],
                    on_done: Callable[[Chunk], None]) -> None:
        """Checksum ``chunks`` on ``workers`` threads (the iterator is shared, locked)."""
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while not errors:
                    with lock:
                        chunk = next(chunks, None)
                    if chunk is None:
                        return
                    if chunk.take:
                        self._checksum(pair, chunk)
                        self.reads.throttle(chunk.source[0] + chunk.target[0])
                    on_done(chunk)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(max(1, self.reads.workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def compare(self, pair: Pair, report: TableReport,
                fixed: Sequence[Range] | None = None) -> tuple[list[Chunk], Classified]:
        """Checksum every chunk (adaptive, or the ``fixed`` ones for a re-check), then drill
        the mismatching ones down to rows."""
        quarantine = self.quarantined(pair)
        done: list[Chunk] = []
        learn: Callable[[Chunk], None] | None = None
        if fixed is None:
            chunks, learn = self.planner.adaptive(pair.source.span(), pair.window,
                                                  pair.numeric_key, quarantine)
        else:
            chunks = self.planner.fixed(fixed, quarantine, pair.window)

        def on_done(chunk: Chunk) -> None:
            if learn is not None:
                learn(chunk)
            with self.lock:
                done.append(chunk)
            self.progress.advance(pair.name, chunk.source[0], chunks=1)

        self.progress.phase(pair.name, "checksums")
        self._run_chunks(pair, chunks, on_done)
        done.sort(key=lambda c: c.rng.no)
        report.quarantined = sum(c.report.quarantined for c in done if c.take)
        report.quarantined_keys = [shown_key(k) for k in heapq.nsmallest(
            self.max_report_rows, (k for c in done if c.take for k in c.excluded),
            key=lambda k: key_order(key_text(k)))]
        report.target_seconds = pair.target.bucket(done, quarantine)
        result = Classified()
        for chunk in done:
            if chunk.take and chunk.source != chunk.target:
                chunk.report.status = "mismatch"
        bad = [c for c in done if c.report.status == "mismatch"]
        if bad:
            self.progress.phase(pair.name, f"drill-down of {len(bad)} chunks")
            per_chunk = pair.target.drill(done, bad, pair.source, quarantine)
            for chunk, classified in zip(bad, per_chunk, strict=True):
                chunk.report.missing = len(classified.missing)
                chunk.report.extra = len(classified.extra)
                chunk.report.different = len(classified.different)
                if classified.clean:
                    # the rows changed between the checksum and the drill-down (live
                    # traffic on the source), or a Cassandra replica the checksum pass
                    # read lacked writes: nothing differs at row level
                    chunk.report.status = "transient"
                merge(result, classified)
        self.progress.phase(pair.name, "compared")
        return done, result
