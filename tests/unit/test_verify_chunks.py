"""furet verify's chunking: adaptive sizes, integer and boundary ranges, time windows,
sampling, the Cassandra token split and the bucket locator (no server)."""

from __future__ import annotations

import datetime

import pytest

from migration.errors import FuretError
from migration.verify.cassandra_checksum import MAX_TOKEN, MIN_TOKEN, Locator, token_ranges
from migration.verify.chunks import (
    BoundaryRanges,
    ChunkSizer,
    IntegerRanges,
    Range,
    chunk_units,
)
from migration.verify.window import Sampler, TimeWindow, ms_to_iso, parse_instant, parse_window


def test_sizer_aims_at_the_target_time_within_bounded_steps() -> None:
    sizer = ChunkSizer(initial=1000, target_s=0.5, minimum=100, maximum=1_000_000)
    assert sizer.update(1000, 0.1) == 4000           # 10k/s -> 5000 wanted, capped at x4
    assert sizer.update(4000, 0.4) == 5000           # smoothed 10k/s * 0.5 s
    assert sizer.update(5000, 10.0) == 2625          # slow: rate (10k + 500)/2, no collapse
    for _ in range(20):
        sizer.update(sizer.size, 100.0)
    assert sizer.size == 100                         # never below the minimum
    for _ in range(20):
        sizer.update(sizer.size, 0.0)
    assert sizer.size == 1_000_000                   # nor above the maximum


def test_integer_ranges_cover_the_keys_with_open_ends() -> None:
    ranges = IntegerRanges("key", None, 0, 10, None)
    got = [ranges.next(4), ranges.next(4), ranges.next(4), ranges.next(4)]
    assert got[:3] == [Range(0, "key", None, 4), Range(1, "key", 4, 8), Range(2, "key", 8, None)]
    assert got[3] is None
    assert [c.label for c in got[:3]] == ["(-inf, 4]", "(4, 8]", "(8, +inf]"]


def test_integer_ranges_follow_a_changing_size_and_an_empty_table_is_one_chunk() -> None:
    ranges = IntegerRanges("version", 100, 100, 200, 200)
    assert ranges.next(10) == Range(0, "version", 100, 110)
    assert ranges.next(50) == Range(1, "version", 110, 160)
    assert ranges.next(1000) == Range(2, "version", 160, 200)
    assert ranges.next(1) is None
    empty = IntegerRanges("key", None, 0, 0, None)
    assert empty.next(100) == Range(0, "key", None, None) and empty.next(100) is None


def test_boundary_ranges_ask_for_the_next_key_and_end_open() -> None:
    keys = [f"k{i:02d}" for i in range(10)]
    calls = []

    def next_boundary(lo: str | None, n: int) -> str | None:
        calls.append((lo, n))
        after = [k for k in keys if lo is None or k > lo]
        return after[n - 1] if len(after) >= n else None

    ranges = BoundaryRanges(next_boundary)
    got = []
    while (chunk := ranges.next(4)) is not None:
        got.append((chunk.lo, chunk.hi))
    assert got == [(None, "k03"), ("k03", "k07"), ("k07", None)]
    assert calls == [(None, 4), ("k03", 4), ("k07", 4)]


def test_range_membership_and_learning_units() -> None:
    chunk = Range(0, "key", 10, 20)
    assert not chunk.contains(10) and chunk.contains(11) and chunk.contains(20)
    assert not chunk.contains(21)
    assert Range(0, "key", None, None).contains(-5)
    assert chunk_units(chunk, 3, numeric=True) == 10
    assert chunk_units(Range(0, "key", None, 20), 3, numeric=True) is None
    assert chunk_units(Range(0, "key", "a", "b"), 3, numeric=False) == 3
    assert chunk_units(Range(0, "key", "a", None), 3, numeric=False) is None


def test_instants_and_windows() -> None:
    assert parse_instant("1700000000000", "--since") == 1_700_000_000_000
    assert parse_instant("2026-11-25", "--since") == int(datetime.datetime(
        2026, 11, 25, tzinfo=datetime.UTC).timestamp() * 1000)
    assert parse_instant("2026-11-25T10:00:00Z", "--since") == \
        parse_instant("2026-11-25T11:00:00+01:00", "--since")
    assert ms_to_iso(0) == "1970-01-01T00:00:00.000Z"
    window = parse_window("1000", "2000")
    assert window == TimeWindow(1000, 2000) and window.bounded
    assert not window.contains(1000) and window.contains(1001) and window.contains(2000)
    assert not window.contains(2001)
    assert not parse_window(None, None).bounded and parse_window(None, None).contains(None)
    with pytest.raises(FuretError, match="--until .* must be after --since"):
        parse_window("2000", "1000")
    with pytest.raises(FuretError, match="--since 'yesterday': expected epoch milliseconds"):
        parse_window("yesterday", None)


def test_sampling_is_reproducible_and_roughly_the_share() -> None:
    a = [Sampler(0.25, seed=3).take() for _ in range(1)]
    s1, s2 = Sampler(0.25, seed=3), Sampler(0.25, seed=3)
    picks1 = [s1.take() for _ in range(2000)]
    assert picks1 == [s2.take() for _ in range(2000)] and a[0] == picks1[0]
    assert 400 < sum(picks1) < 600
    assert all(Sampler(1.0).take() for _ in range(100))
    for bad in (0, 1.5, -1):
        with pytest.raises(FuretError, match="--sample"):
            Sampler(bad)


def test_token_ranges_cover_the_ring_without_overlap() -> None:
    ranges = token_ranges(7)
    assert ranges[0][0] == MIN_TOKEN and ranges[-1][1] == MAX_TOKEN
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert len(ranges) == 7 and token_ranges(0) == [(MIN_TOKEN, MAX_TOKEN)]


def test_locator_finds_the_chunk_of_a_value_or_none_in_a_gap() -> None:
    chunks = [Range(0, "key", None, 10), Range(1, "key", 10, 20), Range(2, "key", 20, None)]
    locate = Locator(chunks)
    assert [locate.find(v) for v in (-3, 10, 11, 20, 21, 10**9)] == [0, 0, 1, 1, 2, 2]
    some = Locator([Range(1, "key", 10, 20), Range(5, "key", 50, 60)])  # a re-check
    assert [some.find(v) for v in (5, 15, 30, 55, 61)] == [None, 0, None, 1, None]
    assert Locator([]).find(1) is None
