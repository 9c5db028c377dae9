"""One pair compared: the planner's chunks checksummed on both sides by parallel workers,
the mismatching chunks drilled down to rows.

A pair is compared in two stages: :meth:`Comparer.checksums` (the chunks checksummed on the
source, and on a target checksummed chunk by chunk) and :meth:`Comparer.finish` (a target
read in one pass, e.g. a Cassandra ring, bucketed into those chunks, then the drill-down);
:func:`compare_all` runs the first stage of the next pair while the current pair finishes,
so the legacy server and the ring work at the same time.

A chunk is ``mismatch`` when its two (count, BIT_XOR) differ, and ``transient`` when its
drill-down then finds nothing: the rows changed between the checksum and the drill-down
(live traffic on the source), or, on Cassandra, the one replica the checksum pass read
lacked writes that the confirming consistency finds. Each side reads the way its store allows
(:class:`~migration.verify.sides.Side`); this module never asks which store it is.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from migration.canonical import key_text
from migration.errors import FuretError
from migration.progress import Reporter
from migration.verify.chunks import Range
from migration.verify.drilldown import Classified, merge
from migration.verify.planner import Chunk, ChunkPlanner, Quarantine, Versions, quarantine_of
from migration.verify.report import TableReport, shown_key
from migration.verify.report_builder import key_order
from migration.verify.sides import Pair, Reads


class Stopped(FuretError):
    """A pair's checksums cut short: another pair's failure ends the verification."""


@dataclass
class Checksummed:
    """A pair after :meth:`Comparer.checksums`: its chunks in order, its quarantine and the
    seconds that stage took."""
    done: list[Chunk]
    quarantine: Quarantine
    seconds: float


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
        self.stopped = threading.Event()   # set by stop(): every chunk worker ends

    def stop(self) -> None:
        """End the checksums in progress (after their current chunk); they raise Stopped."""
        self.stopped.set()

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
                    if self.stopped.is_set():
                        raise Stopped(f"{pair.name}: checksums stopped")
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
        return self.finish(pair, report, self.checksums(pair, report, fixed))

    def checksums(self, pair: Pair, report: TableReport,
                  fixed: Sequence[Range] | None = None) -> Checksummed:
        """The first stage: every chunk checksummed on the source (and on a target
        checksummed chunk by chunk), the quarantined keys counted into ``report``."""
        started = time.monotonic()
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
        return Checksummed(done, quarantine, time.monotonic() - started)

    def finish(self, pair: Pair, report: TableReport,
               checked: Checksummed) -> tuple[list[Chunk], Classified]:
        """The second stage: a target read in one pass bucketed into the chunks, then the
        mismatching chunks drilled down to rows."""
        done, quarantine = checked.done, checked.quarantine
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


def compare_all(comparer: Comparer, pairs: Sequence[Pair],
                reports: Sequence[TableReport],
                named: Callable[[Pair], contextlib.AbstractContextManager[object]],
                ) -> list[tuple[list[Chunk], Classified, float]]:
    """Each pair compared, in order: its chunks, what differs and the seconds it took (its
    two stages; the first may have run while the previous pair finished). The checksums
    of pair ``i + 1`` run on a thread of their own while pair ``i`` finishes (its ring
    scan): the source server and the target read in one pass work at the same time.
    ``named(pair)`` names the pair in an unexpected error's one line."""

    def first(pair: Pair, report: TableReport) -> Checksummed:
        with named(pair):
            return comparer.checksums(pair, report)

    results = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ahead:
            try:
                upcoming = ahead.submit(first, pairs[0], reports[0]) if pairs else None
                for i, pair in enumerate(pairs):
                    assert upcoming is not None
                    checked = upcoming.result()
                    upcoming = (ahead.submit(first, pairs[i + 1], reports[i + 1])
                                if i + 1 < len(pairs) else None)
                    started = time.monotonic()
                    with named(pair):
                        done, found = comparer.finish(pair, reports[i], checked)
                    results.append((done, found, checked.seconds + time.monotonic() - started))
            except BaseException:
                comparer.stop()   # a failure or an interrupt ends the checksums run ahead
                raise
    finally:
        comparer.stopped.clear()  # the ones run ahead have ended: a repair's re-checks run
    return results
