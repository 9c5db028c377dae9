"""furet verify's chunking: adaptive sizes, integer and boundary ranges (key tuples), time
windows in each version type's ledger units, sampling, the Cassandra token split and the
bucket locator (no server)."""

from __future__ import annotations

import datetime
import random

import pytest

from migration.engine.versions import codec_for
from migration.errors import FuretError
from migration.verify.cassandra_checksum import MAX_TOKEN, MIN_TOKEN, Locator, token_ranges
from migration.verify.chunks import (
    BoundaryRanges,
    ChunkSizer,
    IntegerRanges,
    Range,
    chunk_units,
)
from migration.verify.window import (
    Sampler,
    TimeWindow,
    ledger_window,
    ms_to_iso,
    parse_instant,
    parse_window,
)


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


def test_key_tuples_order_column_by_column_and_meet_integer_bounds() -> None:
    chunk = Range(0, "key", (1, "b"), (3, "a"))
    assert not chunk.contains((1, "b")) and chunk.contains((1, "c")) and chunk.contains((2, ""))
    assert chunk.contains((3, "a")) and not chunk.contains((3, "aa"))
    assert chunk.label == '(["1", "b"], ["3", "a"]]'
    # a single integer key: int bounds (arithmetic cut) hold the key tuple (n,)
    numeric = Range(0, "key", 10, 20)
    assert numeric.contains((11,)) and numeric.contains((20,)) and not numeric.contains((10,))
    assert Range(0, "key", None, ("m",)).label == "(-inf, m]"
    assert chunk_units(Range(0, "key", (1, "b"), (3, "a")), 7, numeric=False) == 7


def test_boundary_ranges_of_a_composite_key() -> None:
    keys = [(o, line) for o in (1, 2, 3) for line in ("a", "b", "c")]

    def next_boundary(lo: tuple | None, n: int) -> tuple | None:
        after = [k for k in keys if lo is None or k > lo]
        return after[n - 1] if len(after) >= n else None

    ranges = BoundaryRanges(next_boundary)
    got = []
    while (chunk := ranges.next(4)) is not None:
        got.append(chunk)
    assert [(c.lo, c.hi) for c in got] == [(None, (2, "a")), ((2, "a"), (3, "b")),
                                           ((3, "b"), None)]
    assert [sum(c.contains(k) for k in keys) for c in got] == [4, 4, 1]


def test_locator_buckets_key_tuples_into_integer_or_tuple_ranges() -> None:
    ints = Locator([Range(0, "key", None, 10), Range(1, "key", 10, None)])
    assert [ints.find((v,)) for v in (3, 10, 11)] == [0, 0, 1]
    tuples = Locator([Range(0, "key", None, (2, "b")), Range(1, "key", (2, "b"), (5, "a")),
                      Range(2, "key", (5, "a"), None)])
    assert [tuples.find(k) for k in ((1, "z"), (2, "b"), (2, "c"), (5, "a"), (5, "b"))] == [
        0, 0, 1, 1, 2]
    versions = Locator([Range(0, "version", 100, 200), Range(1, "version", 200, 300)])
    assert [versions.find(v) for v in (100, 150, 300, 301)] == [None, 0, 1, None]


def test_locator_of_integer_bounds_agrees_with_range_contains() -> None:
    """Integer bounds are compared as ints (no tuple per scanned row): the chunk found must
    be the one Range.contains accepts, for bare ints and key tuples, in gaps and beyond
    the ends; a composite key tuple is in no integer range."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    cuts = sorted(set(rnd.sample(range(-1000, 1000), 9)))
    chunks = [Range(i, "key", lo, hi) for i, (lo, hi) in
              enumerate(zip([None, *cuts], [*cuts, None], strict=True)) if rnd.random() < 0.7]
    locate = Locator(chunks)
    assert locate.ints == any(c.lo is not None or c.hi is not None for c in chunks)
    for value in [*cuts, *(rnd.randrange(-1200, 1200) for _ in range(500))]:
        expected = [i for i, c in enumerate(chunks) if c.contains((value,))]
        assert [locate.find(value)] == (expected or [None]), value
        assert [locate.find((value,))] == (expected or [None]), value
    if locate.ints:
        assert locate.find((cuts[0], "a")) is None


def test_a_window_in_ms_selects_the_same_instants_in_every_version_type() -> None:
    """(since, until] in epoch ms, as each column's ledger values: rounded down to the
    column's tick, which keeps ``v > since`` and ``v <= until`` exact for whole ticks."""
    since = parse_instant("2026-11-25T10:00:00.500Z", "--since")
    until = parse_instant("2026-11-25T10:00:05.500Z", "--until")
    window = TimeWindow(since, until)
    ms = codec_for("t", "v", "bigint", None)
    assert ledger_window(window, ms) == window                   # epoch ms: unchanged
    seconds = ledger_window(window, codec_for("t", "v", "int", None))
    assert seconds == TimeWindow(since // 1000, until // 1000)
    assert not seconds.contains(since // 1000) and seconds.contains(since // 1000 + 1)
    dt0 = codec_for("t", "v", "datetime", 0)
    whole = ledger_window(window, dt0)                           # epoch us, whole seconds
    at = [dt0.ledger(datetime.datetime(2026, 11, 25, 10, 0, s)) for s in (0, 1, 5, 6)]
    assert [whole.contains(v) for v in at] == [False, True, True, False]
    ts3 = codec_for("t", "v", "timestamp", 3)
    milli = ledger_window(window, ts3)
    near = [ts3.ledger(datetime.datetime(2026, 11, 25, 10, 0, 0, us, datetime.UTC))
            for us in (500_000, 501_000)]
    assert [milli.contains(v) for v in near] == [False, True]
    paris = codec_for("t", "v", "datetime", 0, timezone="Europe/Paris")
    local = ledger_window(window, paris)   # 10:00 UTC is 11:00 in Paris in November
    assert local.contains(paris.ledger(datetime.datetime(2026, 11, 25, 11, 0, 1)))
    assert not local.contains(paris.ledger(datetime.datetime(2026, 11, 25, 10, 0, 1)))
    assert ledger_window(TimeWindow(), dt0) == TimeWindow()


class _Rows:
    """A Cassandra session whose one token range holds ``rows`` (tuple rows)."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def execute(self, statement: object, rng: tuple[int, int], execution_profile: str) -> list:
        return self.rows if rng[0] == MIN_TOKEN else []


def test_a_cassandra_scan_reads_key_tuples_and_ledger_versions() -> None:
    """Key columns mapped to partition and clustering columns come back as one key tuple in
    the flow's key order; a ``timestamp`` version (naive UTC from the driver) and a
    ``bigint`` one come back as ledger values."""
    from migration.verify import cassandra_checksum as cq

    moment = datetime.datetime(2026, 1, 1, 0, 0, 1, 250000)
    ts3 = codec_for("t", "taken_at", "timestamp", 3)
    # target columns in mapping order: the flow key (site, seq) is (partition, clustering)
    side = cq.CassandraSide(_Rows([("north", moment, 7, 42), ("south", moment, 8, 43)]),
                            "ks", "readings", ("site", "seq"), "taken_at",
                            ("site", "taken_at", "seq", "value"), ("site",),
                            ("site", "seq"), codec=ts3)
    seen = []

    def chunk_of(key: tuple, version: int | None) -> int:
        seen.append((key, version))
        return 0

    result = cq.scan(side, chunk_of, keep=lambda key, version: key == ("south", 8),
                     splits=2, workers=1)
    micros = ts3.ledger(moment.replace(tzinfo=datetime.UTC))
    assert seen == [(("north", 7), micros), (("south", 8), micros)]
    assert [(r.key, r.version, r.native) for r in result.kept] == [
        (("south", 8), micros, ("south", moment, 8, 43))]
    assert result.buckets[0][0] == 2
    epoch_ms = cq.CassandraSide(_Rows([]), "ks", "t", ("id",), "v", ("id", "v"), ("id",),
                                ("id",), codec=codec_for("t", "v", "bigint", None))
    assert epoch_ms.version_of(1_700_000_000_123) == 1_700_000_000_123
    assert epoch_ms.version_of(datetime.datetime(1970, 1, 1, 0, 0, 1)) == 1000
