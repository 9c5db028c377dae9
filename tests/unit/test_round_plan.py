"""The round's window and chunks are pure functions of the watermark and a (fake) clock."""

from __future__ import annotations

from migration.engine.plan import (
    ChunkSpec,
    Window,
    boundary_key_chunks,
    integer_key_chunks,
    integer_key_is_dense,
    ts_window,
    window_chunks,
)


def test_window_overlaps_previous_watermark_and_keeps_a_safety_lag() -> None:
    assert ts_window(10_000, now_ms=20_000, overlap_ms=3_000, safety_lag_ms=2_000,
                     final=False) == Window(7_000, 18_000)


def test_final_window_has_no_lag() -> None:
    assert ts_window(10_000, 20_000, 3_000, 2_000, final=True) == Window(7_000, 20_000)


def test_clock_going_back_never_shrinks_the_window_below_the_watermark() -> None:
    assert ts_window(10_000, now_ms=9_000, overlap_ms=500, safety_lag_ms=2_000,
                     final=False) == Window(9_500, 10_000)


def test_consecutive_windows_overlap() -> None:
    clock = iter([50_000, 80_000, 81_000])
    mark, windows = 40_000, []
    for now in clock:
        window = ts_window(mark, now, overlap_ms=5_000, safety_lag_ms=1_000, final=False)
        windows.append(window)
        mark = window.hi or mark
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.lo is not None and before.hi is not None and after.lo < before.hi


def test_integer_chunks_cover_the_key_range_exactly() -> None:
    chunks = integer_key_chunks("id", 1, 2_500, 1_000)
    assert [(c.key_lo, c.key_hi) for c in chunks] == [((0,), (1000,)), ((1000,), (2000,)),
                                                      ((2000,), (2500,))]
    assert [c.chunk_no for c in chunks] == [0, 1, 2]
    assert integer_key_chunks("id", None, None, 10) == []


def test_a_sparse_integer_key_is_not_cut_by_its_span() -> None:
    # 1,000 rows over ids 1..1,000,000 (every 1,000th): 1,000 chunks by span for 1 by rows
    assert not integer_key_is_dense(1, 1_000_000, 1_000, 1_000)
    # snowflake-like 64-bit ids: the span alone would make about 9e15 chunks
    assert not integer_key_is_dense(1, 2**63 - 1, 5_000_000, 20_000)
    # dense keys (an AUTO_INCREMENT with a few gaps) keep the arithmetic
    assert integer_key_is_dense(1, 1_300_000, 1_000_000, 20_000)
    # a small span whatever the estimate says (0 before statistics are collected)
    assert integer_key_is_dense(1, 100_000, 0, 20_000)
    assert not integer_key_is_dense(1, 1_000_000, 0, 20_000)
    assert integer_key_is_dense(None, None, 0, 20_000)
    # the rows are counted only for a span that is not small
    def count() -> int:
        raise AssertionError("counted a small span")
    assert integer_key_is_dense(1, 100_000, count, 20_000)
    assert not integer_key_is_dense(1, 2**40, lambda: 3_000, 20_000)


def test_boundary_chunks_are_open_at_both_ends() -> None:
    chunks = boundary_key_chunks("uid", [("b",), ("d",)])
    assert [(c.key_lo, c.key_hi) for c in chunks] == [(None, ("b",)), (("b",), ("d",)),
                                                      (("d",), None)]


def test_window_split_in_contiguous_parts() -> None:
    chunks = window_chunks("id", Window(0, 100), 3)
    assert [(c.ts_lo, c.ts_hi) for c in chunks] == [(0, 33), (33, 67), (67, 100)]
    assert window_chunks("id", Window(5, None), 4) == [
        ChunkSpec(0, "window", "id", ts_lo=5, ts_hi=None)]
