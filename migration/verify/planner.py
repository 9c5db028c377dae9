"""The chunk planner of a verification: which chunks are checked, and which rows each one
leaves out.

- chunks are key ranges (version ranges under ``--since/--until``) cut one at a time while
  the checksums run, each sized from the measured rate so a checksum query stays near
  ``chunk_time`` seconds (:class:`~migration.verify.chunks.ChunkSizer`);
- ``--sample P`` decides per chunk, from one :class:`~migration.verify.window.Sampler` for
  the whole run (a seed reproduces the same choice over all tables);
- a source row whose CURRENT version is in furet.quarantine is expected absent from the
  target: it is excluded from both sides' checksums of the chunk that holds it. Rows are
  matched by their key text (:func:`migration.canonical.key_text`, what furet.quarantine's
  ``row_key`` holds) and the quarantined version is a ledger value. A table without a
  version column (``version: none``) has no current version to match: its rounds record
  its rows with version 0 and try them again every round, so a source row is excluded
  while its key is in furet.quarantine, whatever the recorded version (an entry left from
  when the table had a version column counts too). A row fixed at the source stays
  excluded until its furet.quarantine entry is removed.

Keys are tuples; a single integer key is cut arithmetically, any other key (text,
composite) by boundaries read from the source. The time window is the pair's, in its
version column's ledger units (:func:`migration.verify.window.ledger_window`).

Invariant: the chunks of a table are numbered in order, contiguous, and their first and
last ranges are open where the source's span ends, so every target row (extra rows
included) falls in exactly one chunk. The planner reads nothing itself: the source's span
and current versions come through :class:`Span` and a callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from migration.engine.keys import Key
from migration.engine.plan import integer_key_is_dense
from migration.verify.chunks import BoundaryRanges, ChunkSizer, IntegerRanges, Range, chunk_units
from migration.verify.quarantine import Quarantine
from migration.verify.report import ChunkReport, shown_key
from migration.verify.window import Sampler, TimeWindow

# key text -> (native key, current ledger version): the source rows found by key
Current = dict[str, tuple[Key, int]]
# furet.quarantine's versions per key text, all at once or in batches of whole keys
Versions = Mapping[str, set[int]] | Iterable[Mapping[str, set[int]]]


@dataclass
class Chunk:
    """One chunk as checked: its range, whether the sample takes it, both sides'
    (count, BIT_XOR) and the quarantined native keys it leaves out (``excluded``)."""

    rng: Range
    take: bool
    report: ChunkReport
    source: tuple[int, int] = (0, 0)
    target: tuple[int, int] = (0, 0)
    # the quarantine and window ``excluded`` is read from (None: nothing left out)
    quarantine: Quarantine | None = None
    window: TimeWindow = field(default_factory=TimeWindow)

    @property
    def excluded(self) -> list[Key]:
        """The quarantined native keys this chunk holds, found again (by bisect) at each
        use rather than held: a verify keeps every chunk it checked until its report, and
        their key lists were the part of its memory that grew with the table (the planner's
        chunks at 1 M and 5 M quotes, 14,915 and 75,037 quarantined keys: 1.35 and 7.15 MiB
        with the lists, 0.16 and 0.79 MiB without)."""
        if self.quarantine is None:
            return []
        return self.quarantine.in_range(self.rng, self.window)


class Span(Protocol):
    """The source's extent, read on a connection of its own (the chunk iterator runs on any
    checksum thread, under its lock)."""

    # MIN, MAX of the version (ledger values) or of a single integer key
    def bounds(self, kind: str) -> tuple[Any, Any]: ...
    def count(self) -> int: ...
    def next_boundary(self, lo: Key | None, rows: int) -> Key | None: ...


def _lookup_key(text: str, width: int, numeric_key: bool) -> Key | None:
    """A quarantined key text as values to look the row up with (None: not a key of this
    shape). A composite key's texts go to SQL as they are: MariaDB converts them to the
    columns' types, and the rows found are matched back by their own key text."""
    if width == 1:
        if numeric_key:
            return (int(text),) if text.lstrip("-").isdigit() else None
        return (text,)
    try:
        parts = json.loads(text) if text.startswith("[") else None
    except ValueError:
        return None
    if not isinstance(parts, list) or len(parts) != width or not all(
            isinstance(p, str) for p in parts):
        return None
    return tuple(parts)


def quarantine_of(versions: Versions, width: int, numeric_key: bool,
                  current: Callable[[Sequence[Key]], Current],
                  versioned: bool = True) -> Quarantine:
    """The source rows whose current version is among their quarantined ``versions`` (key
    text -> ledger versions, a mapping or batches of them, each key in one batch;
    ``current``: keys -> the source's current versions of those that exist, by key text).
    Not ``versioned`` (``version: none``): every source row whose key is quarantined, at
    any version. One batch at a time is held besides the result."""
    batches = [versions] if isinstance(versions, Mapping) else versions

    def found() -> Iterator[tuple[Key, int]]:
        for batch in batches:
            lookups = [k for k in (_lookup_key(t, width, numeric_key) for t in batch)
                       if k is not None]
            if not lookups:
                continue
            for text, (native, version) in current(lookups).items():
                if not versioned or version in batch.get(text, set()):
                    yield native, version

    return Quarantine(found())


class ChunkPlanner:
    def __init__(self, sampler: Sampler, chunk_time: float, initial_chunk: int) -> None:
        self.sampler = sampler
        self.chunk_time = chunk_time
        self.initial_chunk = initial_chunk

    def _ranges(self, span: Span, window: TimeWindow, numeric_key: bool
                ) -> tuple[IntegerRanges | BoundaryRanges, ChunkSizer, bool]:
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
            # a sparse key (snowflake ids...) is cut by rows like any other key: ranges of
            # its span would be almost all empty, and too many to finish
            if lo is None or hi is None or integer_key_is_dense(
                    int(lo), int(hi), span.count, ChunkSizer(initial).maximum):
                start = int(lo) - 1 if lo is not None else 0
                stop = int(hi) if hi is not None else 0
                sizer = ChunkSizer(initial, self.chunk_time)
                return IntegerRanges("key", None, start, stop, None), sizer, True
        sizer = ChunkSizer(initial, self.chunk_time, maximum=1_000_000)
        return BoundaryRanges(span.next_boundary), sizer, False

    def adaptive(self, span: Span, window: TimeWindow, numeric_key: bool,
                 quarantine: Quarantine) -> tuple[Iterator[Chunk], Callable[[Chunk], None]]:
        """The chunks of a whole table, cut as they are asked for, and ``learn(chunk)``
        that feeds a checked chunk's duration back into the size of the next ones
        (``window``: the pair's, in ledger units)."""
        ranges, sizer, numeric = self._ranges(span, window, numeric_key)

        def chunks() -> Iterator[Chunk]:
            while True:
                rng = ranges.next(sizer.size)
                if rng is None:
                    return
                take = self.sampler.take()
                report = ChunkReport(rng.no, rng.kind, shown_key(rng.lo), shown_key(rng.hi),
                                     status="ok" if take else "skipped")
                yield Chunk(rng, take, report, quarantine=quarantine, window=window)

        def learn(chunk: Chunk) -> None:
            if chunk.take:
                units = chunk_units(chunk.rng, max(chunk.source[0], 1), numeric)
                if units is not None:
                    sizer.update(units, chunk.report.seconds)

        return chunks(), learn

    def fixed(self, ranges: Sequence[Range], quarantine: Quarantine,
              window: TimeWindow) -> Iterator[Chunk]:
        """These ranges again, all checked (a repair's re-check)."""
        return iter([Chunk(r, True, ChunkReport(r.no, r.kind, shown_key(r.lo), shown_key(r.hi)),
                           quarantine=quarantine, window=window) for r in ranges])
