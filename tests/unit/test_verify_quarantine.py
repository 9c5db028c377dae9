"""A verification's quarantine (migration/verify/quarantine.py): the rows a chunk leaves
out, found by bisect, must be exactly those a walk over every row with Range.contains and
the window finds, for integer, text and composite keys and for version ranges."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import pairwise

from migration.canonical import key_text
from migration.engine.keys import Key
from migration.verify.chunks import Range
from migration.verify.planner import Current, quarantine_of
from migration.verify.quarantine import Quarantine
from migration.verify.window import TimeWindow


def _walk(entries: dict[Key, int], rng: Range, window: TimeWindow) -> set[Key]:
    """What the planner found before: every row tested one by one."""
    return {k for k, v in entries.items() if window.contains(v)
            and rng.contains(v if rng.kind == "version" else k)}


def _check(entries: dict[Key, int], ranges: Sequence[Range], window: TimeWindow) -> None:
    quarantine = Quarantine(entries.items())
    assert len(quarantine) == len(entries)
    for rng in ranges:
        got = quarantine.in_range(rng, window)
        assert len(got) == len(set(got)), rng
        assert set(got) == _walk(entries, rng, window), rng


def test_integer_keys_in_key_ranges_match_a_walk_over_every_row() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    entries = {(rnd.randrange(-50, 5000),): rnd.randrange(1000, 2000) for _ in range(400)}
    cuts = sorted(rnd.sample(range(-60, 5010), 12))
    ranges = [Range(0, "key", None, cuts[0])] + [
        Range(i + 1, "key", lo, hi) for i, (lo, hi) in enumerate(pairwise(cuts))] + [
        Range(99, "key", cuts[-1], None), Range(100, "key", None, None),
        Range(101, "key", 10, 10), Range(102, "key", 3000, 20)]
    _check(entries, ranges, TimeWindow())
    _check(entries, ranges, TimeWindow(1200, 1700))


def test_composite_and_text_keys_in_key_ranges_match_a_walk_over_every_row() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    composite = {(rnd.randrange(100), f"l{rnd.randrange(30)}"): rnd.randrange(10)
                 for _ in range(300)}
    bounds = sorted({(rnd.randrange(100), f"l{rnd.randrange(30)}") for _ in range(10)})
    ranges = [Range(0, "key", None, bounds[0]), Range(1, "key", bounds[-1], None)] + [
        Range(i + 2, "key", lo, hi) for i, (lo, hi) in enumerate(pairwise(bounds))]
    _check(composite, ranges, TimeWindow())
    _check(composite, ranges, TimeWindow(None, 4))

    texts = {(f"{rnd.getrandbits(32):08x}",): 1 for _ in range(200)}
    cuts = sorted(f"{rnd.getrandbits(32):08x}" for _ in range(6))
    _check(texts, [Range(0, "key", None, (cuts[0],))] + [
        Range(i + 1, "key", (lo,), (hi,)) for i, (lo, hi) in enumerate(pairwise(cuts))],
        TimeWindow())


def test_version_ranges_match_a_walk_over_every_row() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    entries = {(i,): rnd.randrange(0, 500) for i in range(300)}
    cuts = sorted(rnd.sample(range(0, 500), 8))
    ranges = [Range(0, "version", None, cuts[0]), Range(1, "version", cuts[-1], None)] + [
        Range(i + 2, "version", lo, hi) for i, (lo, hi) in enumerate(pairwise(cuts))]
    _check(entries, ranges, TimeWindow())
    _check(entries, ranges, TimeWindow(100, 400))


def test_a_key_given_twice_keeps_its_last_version_and_union_lets_the_other_win() -> None:
    quarantine = Quarantine([((5,), 1), ((3,), 7), ((5,), 2)])
    assert list(quarantine.entries()) == [((3,), 7), ((5,), 2)]
    both = quarantine.union(Quarantine([((3,), 9), ((8,), 1)]))
    assert both.as_dict() == {"3": ((3,), 9), "5": ((5,), 2), "8": ((8,), 1)}
    assert quarantine.union(Quarantine()) is quarantine
    assert not Quarantine() and len(both) == 3


def test_a_row_is_found_by_its_key_text_as_the_cassandra_side_asks() -> None:
    keys = [(7, "b"), (8, "a")]
    quarantine = Quarantine((k, 1) for k in keys)
    assert all(key_text(k) in quarantine for k in keys)
    assert key_text((7, "a")) not in quarantine and 7 not in quarantine
    big = Quarantine(((n,), 0) for n in range(0, 20_000, 2))
    assert "4" in big and "19998" in big and "5" not in big and "20000" not in big


def test_keys_beyond_64_bits_and_other_versions_are_held_as_they_are() -> None:
    huge = 2**64 + 1
    quarantine = Quarantine([((huge,), 1), ((1,), 2**70)])
    assert quarantine.as_dict() == {"1": ((1,), 2**70), str(huge): ((huge,), 1)}
    assert quarantine.in_range(Range(0, "key", 1, None), TimeWindow()) == [(huge,)]


def test_quarantine_of_reads_batches_one_lookup_each() -> None:
    asked: list[Sequence[Key]] = []
    source = {(n,): 10 + n for n in range(1, 9)}

    def lookup(keys: Sequence[Key]) -> Current:
        asked.append(keys)
        return {key_text(k): (k, source[k]) for k in keys if k in source}

    batches = iter([{"1": {11}, "2": {5}}, {"3": {13, 4}, "9": {19}}, {"x": {1}}])
    got = quarantine_of(batches, 1, True, lookup)
    assert got.as_dict() == {"1": ((1,), 11), "3": ((3,), 13)}
    assert [sorted(a) for a in asked] == [[(1,), (2,)], [(3,), (9,)]]  # "x": no lookup


def test_holds_matches_a_scanned_key_as_its_key_text_would() -> None:
    """The scan asks ``holds(key)`` once per row: a single integer key by bisect among the
    held integers, any other key (text, composite, beyond 64 bits, a target that maps the
    key to text) by its key text; both answers must be the key text's."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    held = [(rnd.randrange(-10**12, 10**12),) for _ in range(300)] + [(2**64 + 3,)]
    ints = Quarantine((k, 1) for k in held)
    probes: list[Key] = [*held, *[(rnd.randrange(-10**12, 10**12),) for _ in range(300)],
                         (2**64 + 4,), (str(held[0][0]),), (held[1][0], "x"), ()]
    for probe in probes:
        assert ints.holds(probe) == (key_text(probe) in ints), probe
    composite = Quarantine(((n, f"l{n}"), 1) for n in range(50))
    assert composite.holds((7, "l7")) and not composite.holds((7, "l8"))
    assert not composite.holds((7,)) and not Quarantine().holds((1,))


def test_entries_read_as_they_come_keep_each_keys_last_version_whatever_their_shape() -> None:
    """A stream of integer keys and int64 versions, met half-way (or never) by an entry of
    another shape (a key beyond 64 bits, as an unsigned BIGINT holds, a composite key, a
    version that is not an int64), with keys given more than once: the same rows as a
    dict would keep."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    odd = [((2**64 + 3,), 1200), ((2**63,), 5), ((4, "b"), 1700), ((12,), 2**63),
           ((-(2**63),), -(2**63)), ((2**63 - 1,), 2**63 - 1)]
    for _ in range(30):
        stream: list[tuple[Key, int]] = [((rnd.randrange(-40, 400),), rnd.randrange(-5, 3000))
                                         for _ in range(rnd.randrange(0, 200))]
        if rnd.random() < 0.7:
            stream.insert(rnd.randrange(len(stream) + 1), rnd.choice(odd))
        expected: dict[Key, int] = {}
        for key, version in stream:
            expected[key] = version
        held = Quarantine(iter(stream))
        got = list(held.entries())
        assert dict(got) == expected, f"seed {seed}"
        assert len(got) == len(held) == len(expected), f"seed {seed}"
        assert all(key_text(k) in held and held.holds(k) for k in expected), f"seed {seed}"
        assert not held.holds((401,)) and "401" not in held, f"seed {seed}"
        versions = sorted(expected.values())
        if versions:
            lo = versions[len(versions) // 3]
            window = TimeWindow()
            assert set(held.in_range(Range(0, "version", lo, None), window)) == {
                k for k, v in expected.items() if v > lo}, f"seed {seed}"
