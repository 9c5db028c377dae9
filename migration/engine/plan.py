"""Pure planning of a round: its window and its chunks (no server, unit-tested).

Strategies (:class:`migration.enums.Strategy`):

- ``ts`` (furet's): the first round copies everything, chunked by key range; every later
  round reads the window ``(watermark - overlap, now - safety_lag]`` (``--final``: lag 0)
  with a ``(version, key)`` cursor, split into version sub-ranges, one per worker.

Versions here are ledger values (integers: :mod:`migration.engine.versions`) and keys are
tuples of column values (:mod:`migration.engine.keys`): the plan is the same whatever the
column types.
- ``naive``: ``version > max(version in target)``, one chunk (kept only to show its losses).
- ``id``: the old ETL, ``id > max(id in target)``, one chunk (kept only to show its losses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migration.engine.keys import Key


@dataclass(frozen=True)
class Window:
    lo: int | None   # exclusive; None = from the beginning
    hi: int | None   # inclusive; None = unbounded


@dataclass(frozen=True)
class ChunkSpec:
    """``kind`` key: the key tuple of ``key_column`` (comma-separated names) in
    (key_lo, key_hi]; window: version in (ts_lo, ts_hi]."""

    chunk_no: int
    kind: str
    key_column: str
    key_lo: Key | None = None
    key_hi: Key | None = None
    ts_lo: int | None = None
    ts_hi: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.key_column.split(","))


def key_column_text(columns: Sequence[str]) -> str:
    """How a chunk names its key columns in the ledger."""
    return ",".join(columns)


def ts_window(watermark: int, now_ms: int, overlap_ms: int, safety_lag_ms: int,
              final: bool) -> Window:
    """The window of a later ``ts`` round: ``(watermark - overlap, now - lag]``.

    ``hi`` never goes below the previous watermark (a clock stepping back must not make a
    round skip), so the next round's window always starts at or before this one's end.
    """
    lag = 0 if final else safety_lag_ms
    hi = max(watermark, now_ms - lag)
    return Window(watermark - overlap_ms, hi)


# An integer key whose span holds more than this many times the chunks its rows need is
# sparse (ids from a sequence with big steps, snowflake or hashed ids): cut by arithmetic
# it would make one chunk per ``chunk_rows`` of span, most of them empty (for 64-bit ids,
# more chunks than memory holds), so it is cut by keyset seeks like any other key.
SPARSE_SPAN_FACTOR = 4
# Below this many arithmetic chunks the span is cut by arithmetic whatever the row count
# says (an estimate, 0 for a table whose statistics are not collected yet).
SMALL_SPAN_CHUNKS = 16


def integer_key_is_dense(min_key: int | None, max_key: int | None,
                         rows: int | Callable[[], int], chunk_rows: int) -> bool:
    """Whether ``integer_key_chunks`` suits the key: its chunks by span are few, or not
    many more than its ``rows`` need (a count, or a function asked only when the span is
    not small: a COUNT(*) is a scan)."""
    if min_key is None or max_key is None:
        return True
    width = max(1, chunk_rows)
    by_span = -(-(max_key - min_key + 1) // width)
    if by_span <= SMALL_SPAN_CHUNKS:
        return True
    by_rows = -(-max(0, rows() if callable(rows) else rows) // width)
    return by_span <= SPARSE_SPAN_FACTOR * by_rows


def integer_key_chunks(key_column: str, min_key: int | None, max_key: int | None,
                       chunk_rows: int) -> list[ChunkSpec]:
    """Consecutive key ranges ``(lo, hi]`` of ``chunk_rows`` keys covering [min, max]
    (a one-column integer key)."""
    if min_key is None or max_key is None:
        return []
    width = max(1, chunk_rows)
    chunks: list[ChunkSpec] = []
    lo = min_key - 1
    while lo < max_key:
        hi = min(lo + width, max_key)
        chunks.append(ChunkSpec(len(chunks), "key", key_column, (lo,), (hi,)))
        lo = hi
    return chunks


def boundary_key_chunks(key_column: str, boundaries: Sequence[Key]) -> list[ChunkSpec]:
    """Ranges between key boundaries read by keyset (any other key):
    (None, b1], (b1, b2] ... (bn, None]."""
    edges: list[Key | None] = [None, *boundaries, None]
    return [ChunkSpec(i, "key", key_column, edges[i], edges[i + 1])
            for i in range(len(edges) - 1)]


def window_chunks(key_column: str, window: Window, parts: int) -> list[ChunkSpec]:
    """Split a version window into ``parts`` sub-ranges (one chunk if it is unbounded)."""
    if window.lo is None or window.hi is None or parts <= 1 or window.hi - window.lo < parts:
        return [ChunkSpec(0, "window", key_column, ts_lo=window.lo, ts_hi=window.hi)]
    step = (window.hi - window.lo) / parts
    edges = [window.lo + round(step * i) for i in range(parts)] + [window.hi]
    return [ChunkSpec(i, "window", key_column, ts_lo=edges[i], ts_hi=edges[i + 1])
            for i in range(parts)]
