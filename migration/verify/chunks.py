"""Chunks of a verification: key ranges (or version ranges under ``--since/--until``) whose
size adapts so that each checksum query stays short (like pt-table-checksum --chunk-time).

A key is the tuple of its column values (one or several columns, the flow's ``key:``
order). A single integer key is cut arithmetically (:class:`IntegerRanges`, bounds are
ints); any other key by boundaries read from the source (:class:`BoundaryRanges`, bounds
are key tuples). Version ranges hold ledger values (ints,
:mod:`migration.engine.versions`).

Membership in Python (:meth:`Range.contains`: the Cassandra bucketing, the quarantined
keys of a chunk) uses Python's tuple and string order, while the boundaries of text keys
come from MariaDB's collation. The two agree on numbers, dates, bytes and on text whose
collation order is the code point order (lowercase hex uids, ASCII digits); a text key
whose collation orders differently (``utf8mb4_unicode_ci``: ``'a' < 'B'``) can put a row
in the neighbouring chunk: a Cassandra row then shows as missing in one chunk and extra in
the other, a quarantined row as missing. Integer keys are exact.

Pure logic (unit-tested); the SQL lives in :mod:`migration.verify.mysql_checksum`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migration.canonical import key_text


def bound_text(bound: Any) -> str:
    """A bound for people: a key tuple as its canonical key text, anything else as is."""
    return key_text(bound) if isinstance(bound, tuple) else str(bound)


def as_key(bound: Any) -> Any:
    """A key range's bound as a key tuple (an integer bound ``5`` is the key ``(5,)``)."""
    if bound is None or isinstance(bound, tuple):
        return bound
    return (bound,)


@dataclass(frozen=True)
class Range:
    """Rows whose ``kind`` (``key``: the key tuple, ``version``: the ledger version) is in
    ``(lo, hi]``; None = open. Key bounds are ints (single integer key) or key tuples."""

    no: int
    kind: str
    lo: Any = None
    hi: Any = None

    def contains(self, value: Any) -> bool:
        """``value``: a version, a key tuple, or a bare integer key."""
        lo, hi = self.lo, self.hi
        if isinstance(value, tuple):
            lo, hi = as_key(lo), as_key(hi)
        if lo is not None and not value > lo:
            return False
        return hi is None or value <= hi

    @property
    def label(self) -> str:
        lo = "-inf" if self.lo is None else bound_text(self.lo)
        hi = "+inf" if self.hi is None else bound_text(self.hi)
        return f"({lo}, {hi}]"


class ChunkSizer:
    """Chunk size (in key units or rows) from the measured rate: ``rate * target_s``.

    The rate is smoothed (half the old estimate, half the new measure) and one step never
    changes the size by more than a factor of 4, so one slow query (a cold page) does not
    collapse the chunks and one fast query does not make the next one huge.
    """

    def __init__(self, initial: int = 5000, target_s: float = 0.3, minimum: int = 100,
                 maximum: int = 2_000_000) -> None:
        self.size = max(minimum, min(initial, maximum))
        self.target_s = target_s
        self.minimum = minimum
        self.maximum = maximum
        self.rate: float | None = None
        self.lock = threading.Lock()

    def update(self, units: int, seconds: float) -> int:
        with self.lock:
            measured = units / max(seconds, 1e-3)
            self.rate = measured if self.rate is None else (self.rate + measured) / 2
            wanted = int(self.rate * self.target_s)
            wanted = max(self.size // 4, min(self.size * 4, wanted))
            self.size = max(self.minimum, min(self.maximum, wanted))
            return self.size


class IntegerRanges:
    """``(first_lo, start + n], ..., (.., last_hi]``: consecutive integer ranges up to ``stop``.

    ``first_lo``/``last_hi`` None make the first/last range open, so target rows outside the
    source's key span (extra rows) still fall in a chunk.
    """

    def __init__(self, kind: str, first_lo: int | None, start: int, stop: int,
                 last_hi: int | None) -> None:
        self.kind = kind
        self.lo: int | None = first_lo
        self.cursor = start
        self.stop = stop
        self.last_hi = last_hi
        self.count = 0
        self.done = False
        self.lock = threading.Lock()

    def next(self, size: int) -> Range | None:
        with self.lock:
            if self.done:
                return None
            hi: int | None = self.cursor + max(1, size)
            assert hi is not None
            if hi >= self.stop:
                hi = self.last_hi
                self.done = True
            else:
                self.cursor = hi
            chunk = Range(self.count, self.kind, self.lo, hi)
            self.lo = hi
            self.count += 1
            return chunk


class BoundaryRanges:
    """Ranges of any other key (text, composite): each upper bound is the key tuple ``size``
    rows further (``next_boundary(lo, size)``, an index-only nibble query); the last range
    is open."""

    def __init__(self, next_boundary: Callable[[Any, int], Any]) -> None:
        self.next_boundary = next_boundary
        self.lo: Any = None
        self.count = 0
        self.done = False
        self.lock = threading.Lock()

    def next(self, size: int) -> Range | None:
        with self.lock:
            if self.done:
                return None
            hi = self.next_boundary(self.lo, max(1, size))
            if hi is None:
                self.done = True
            chunk = Range(self.count, "key", self.lo, hi)
            self.lo = hi
            self.count += 1
            return chunk


def chunk_units(chunk: Range, rows: int, numeric: bool) -> int | None:
    """What the sizer learns from a finished chunk: its span for integer ranges, else rows.

    An open range (first or last) says nothing about the rate of an integer span.
    """
    if numeric:
        if isinstance(chunk.lo, int) and isinstance(chunk.hi, int):
            return chunk.hi - chunk.lo
        return None
    return rows if chunk.hi is not None else None
