"""The chunk planner of a verification: which chunks are checked, and which rows each one
leaves out.

- chunks are key ranges (version ranges under ``--since/--until``) cut one at a time while
  the checksums run, each sized from the measured rate so a checksum query stays near
  ``chunk_time`` seconds (:class:`~migration.verify.chunks.ChunkSizer`);
- ``--sample P`` decides per chunk, from one :class:`~migration.verify.window.Sampler` for
  the whole run (a seed reproduces the same choice over all tables);
- a source row whose CURRENT version is in furet.quarantine is expected absent from the
  target: it is excluded from both sides' checksums of the chunk that holds it.

Invariant: the chunks of a table are numbered in order, contiguous, and their first and
last ranges are open where the source's span ends, so every target row (extra rows
included) falls in exactly one chunk. The planner reads nothing itself: the source's span
and current versions come through :class:`Span` and a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from migration.verify.chunks import BoundaryRanges, ChunkSizer, IntegerRanges, Range, chunk_units
from migration.verify.report import ChunkReport
from migration.verify.window import Sampler, TimeWindow

Quarantine = dict[str, tuple[Any, int]]  # normalised key -> (native key, current version)


@dataclass
class Chunk:
    """One chunk as checked: its range, whether the sample takes it, both sides'
    (count, BIT_XOR) and the quarantined native keys it leaves out."""

    rng: Range
    take: bool
    report: ChunkReport
    source: tuple[int, int] = (0, 0)
    target: tuple[int, int] = (0, 0)
    excluded: list[Any] = field(default_factory=list)


class Span(Protocol):
    """The source's extent, read on a connection of its own (the chunk iterator runs on any
    checksum thread, under its lock)."""

    def bounds(self, kind: str) -> tuple[Any, Any]: ...  # MIN, MAX of the key or version
    def count(self) -> int: ...
    def next_boundary(self, lo: Any, rows: int) -> Any: ...


def quarantine_of(versions: Mapping[str, set[int]], numeric_key: bool,
                  current: Callable[[Sequence[Any]], Quarantine]) -> Quarantine:
    """The source rows whose current version is among their quarantined ``versions``
    (``current``: native keys -> the source's current versions of those that exist)."""
    natives = [int(k) if numeric_key else k for k in versions
               if not numeric_key or k.lstrip("-").isdigit()]
    return {k: v for k, v in current(natives).items() if v[1] in versions.get(k, set())}


class ChunkPlanner:
    def __init__(self, window: TimeWindow, sampler: Sampler, chunk_time: float,
                 initial_chunk: int) -> None:
        self.window = window
        self.sampler = sampler
        self.chunk_time = chunk_time
        self.initial_chunk = initial_chunk

    def excluded(self, quarantine: Quarantine, rng: Range) -> list[Any]:
        """Native keys of the quarantined rows that ``rng`` (and the window) holds."""
        out = []
        for native, version in quarantine.values():
            if not self.window.contains(version):
                continue
            if rng.contains(version if rng.kind == "version" else native):
                out.append(native)
        return out

    def _ranges(self, span: Span, numeric_key: bool
                ) -> tuple[IntegerRanges | BoundaryRanges, ChunkSizer, bool]:
        window = self.window
        initial = self.initial_chunk
        if window.bounded:
            lo, hi = span.bounds("version")
            count = span.count()
            start = window.since if window.since is not None else (
                int(lo) - 1 if lo is not None else 0)
            stop = window.until if window.until is not None else (
                int(hi) if hi is not None else start)
            width = max(1, stop - start)
            size = max(1, width * initial // max(1, count))
            sizer = ChunkSizer(size, self.chunk_time, minimum=1, maximum=max(width, 1))
            return IntegerRanges("version", window.since, start, stop, window.until), sizer, True
        if numeric_key:
            lo, hi = span.bounds("key")
            start = int(lo) - 1 if lo is not None else 0
            stop = int(hi) if hi is not None else 0
            sizer = ChunkSizer(initial, self.chunk_time)
            return IntegerRanges("key", None, start, stop, None), sizer, True
        sizer = ChunkSizer(initial, self.chunk_time, maximum=1_000_000)
        return BoundaryRanges(span.next_boundary), sizer, False

    def adaptive(self, span: Span, numeric_key: bool, quarantine: Quarantine
                 ) -> tuple[Iterator[Chunk], Callable[[Chunk], None]]:
        """The chunks of a whole table, cut as they are asked for, and ``learn(chunk)``
        that feeds a checked chunk's duration back into the size of the next ones."""
        ranges, sizer, numeric = self._ranges(span, numeric_key)

        def chunks() -> Iterator[Chunk]:
            while True:
                rng = ranges.next(sizer.size)
                if rng is None:
                    return
                take = self.sampler.take()
                report = ChunkReport(rng.no, rng.kind, rng.lo, rng.hi,
                                     status="ok" if take else "skipped")
                yield Chunk(rng, take, report, excluded=self.excluded(quarantine, rng))

        def learn(chunk: Chunk) -> None:
            if chunk.take:
                units = chunk_units(chunk.rng, max(chunk.source[0], 1), numeric)
                if units is not None:
                    sizer.update(units, chunk.report.seconds)

        return chunks(), learn

    def fixed(self, ranges: Sequence[Range], quarantine: Quarantine) -> Iterator[Chunk]:
        """These ranges again, all checked (a repair's re-check)."""
        return iter([Chunk(r, True, ChunkReport(r.no, r.kind, r.lo, r.hi),
                           excluded=self.excluded(quarantine, r)) for r in ranges])
