"""The quarantined source rows a verification leaves out of both sides, held compactly.

A verify expects absent from the target every source row whose CURRENT version is in
furet.quarantine (:mod:`migration.verify.planner`). A table's quarantine grows with the
table when a share of its rows is dirty (make bench: 14,915 rows at 1 M quotes, 75,037 at
5 M), and every chunk asks which quarantined keys it holds. Held as a dict of key texts,
a row cost about 600 bytes and each chunk walked them all (the Galera verify's peak RSS
went 52 -> 91 MiB from 1 M to 5 M quotes: README, Benchmarks). Here the rows are sorted by
key, and by version for version-range chunks, and a chunk finds its own by bisect; a
single integer key, the versions and the key texts' hashes (the Cassandra side matches
a row by its key text) are 8-byte array items.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Any

from migration.canonical import key_text
from migration.engine.keys import Key
from migration.verify.chunks import Range, as_key
from migration.verify.window import TimeWindow

_I64 = (-(2**63), 2**63 - 1)
_BIAS = 2**63          # an int64 plus _BIAS is >= 0: it packs above a 32-bit position


def _is_int64(value: Any) -> bool:
    return type(value) is int and _I64[0] <= value <= _I64[1]


def _int64s(values: list[Any]) -> array | list[Any]:
    """``values`` as an array of 8-byte integers when they all are such, else as they are."""
    if all(_is_int64(v) for v in values):
        return array("q", values)
    return values


def _order(values: array) -> list[int]:
    """Positions of int64 ``values`` sorted by value, equal values by position: each packed
    with its position into one int and sorted in place (one list, no key objects)."""
    packed = [((v + _BIAS) << 32) | i for i, v in enumerate(values)]
    packed.sort()
    mask = (1 << 32) - 1
    for j, p in enumerate(packed):
        packed[j] = p & mask
    return packed


def _last_by_key(keys: Any, order: Iterable[int]) -> list[int]:
    """Of positions sorted by key (equal keys by position), the last of each key."""
    kept: list[int] = []
    for i in order:
        if kept and keys[kept[-1]] == keys[i]:
            kept[-1] = i
        else:
            kept.append(i)
    return kept


class Quarantine:
    """Quarantined rows: native key -> current ledger version, one entry per key (a later
    entry for the same key wins).

    The entries are read as they come: while each key is a single int64 and each version
    an int64 (furet.quarantine of an integer-keyed table), both go straight into 8-byte
    arrays and are sorted as packed integers; the first entry of another shape turns what
    was read into lists of tuples (a tracemalloc peak of 5.8 MiB instead of 12.5 for
    75,037 synthetic entries, as many as make bench's 5 M-quote quarantine)."""

    def __init__(self, entries: Iterable[tuple[Key, int]] = ()) -> None:
        int_keys, int_versions = array("q"), array("q")
        keys: list[Key] | None = None      # the general case, once an entry needs it
        versions: list[int] = []
        for key, version in entries:
            if keys is None:
                if len(key) == 1 and _is_int64(key[0]) and _is_int64(version):
                    int_keys.append(key[0])
                    int_versions.append(version)
                    continue
                keys = [(k,) for k in int_keys]
                versions = list(int_versions)
                int_keys, int_versions = array("q"), array("q")
            keys.append(tuple(key))
            versions.append(version)
        if keys is None:
            kept = _last_by_key(int_keys, _order(int_keys))
            self._keys: array | list[Any] = array("q", (int_keys[i] for i in kept))
            self._versions: array | list[Any] = array("q", (int_versions[i] for i in kept))
            del int_keys, int_versions, kept
            self._ints = True
        else:
            # sorted by key; among equal keys the sort is stable, so the last entry is kept
            kept = _last_by_key(keys, sorted(range(len(keys)), key=keys.__getitem__))
            sorted_keys = [keys[i] for i in kept]
            self._versions = _int64s([versions[i] for i in kept])
            del keys, versions, kept
            ints = (_int64s([k[0] for k in sorted_keys])
                    if all(len(k) == 1 and type(k[0]) is int for k in sorted_keys) else None)
            self._ints = isinstance(ints, array)   # a single integer key: held as 8 bytes
            self._keys = ints if isinstance(ints, array) else sorted_keys
        self._texts = array("q", sorted(hash(key_text(self.key(i)))
                                        for i in range(len(self._versions))))
        # positions by version, for the version-range chunks of --since/--until
        if isinstance(self._versions, array):
            by_version = _order(self._versions)
        else:
            by_version = sorted(range(len(self._versions)), key=self._versions.__getitem__)
        self._by_version = array("q", by_version)
        del by_version
        self._sorted_versions = _int64s([self._versions[i] for i in self._by_version])

    def __len__(self) -> int:
        return len(self._versions)

    def __bool__(self) -> bool:
        return len(self._versions) > 0

    def key(self, i: int) -> Key:
        return (self._keys[i],) if self._ints else self._keys[i]

    def entries(self) -> Iterator[tuple[Key, int]]:
        """(native key, current version) of each row, in key order."""
        for i in range(len(self._versions)):
            yield self.key(i), self._versions[i]

    def as_dict(self) -> dict[str, tuple[Key, int]]:
        """key text -> (native key, version): what a report or a test shows."""
        return {key_text(k): (k, v) for k, v in self.entries()}

    def __contains__(self, text: object) -> bool:
        """Whether a row of this key text is quarantined (a hash of the text is held: two
        texts with the same 64-bit hash would both match)."""
        if not isinstance(text, str):
            return False
        h = hash(text)
        i = bisect_left(self._texts, h)
        return i < len(self._texts) and self._texts[i] == h

    def holds(self, key: Key) -> bool:
        """Whether the row of ``key`` (a tuple of values, as a Cassandra scan reads them) is
        quarantined: a single integer key by bisect among the held integers, once per
        scanned row (no key text built), any other by its key text."""
        if self._ints and len(key) == 1 and type(key[0]) is int:
            i = bisect_left(self._keys, key[0])
            return i < len(self._keys) and self._keys[i] == key[0]
        return key_text(key) in self

    def union(self, other: Quarantine) -> Quarantine:
        """Both quarantines; ``other``'s entry wins for a key in both."""
        if not other:
            return self
        if not self:
            return other
        return Quarantine([*self.entries(), *other.entries()])

    def in_range(self, rng: Range, window: TimeWindow) -> list[Key]:
        """Native keys of the rows ``rng`` (and the window) holds."""
        if rng.kind == "version":
            versions = self._sorted_versions
            start = 0 if rng.lo is None else bisect_right(versions, rng.lo)
            stop = len(versions) if rng.hi is None else bisect_right(versions, rng.hi)
            positions: Iterable[int] = (self._by_version[j] for j in range(start, stop))
        else:
            start, stop = self._key_span(as_key(rng.lo), as_key(rng.hi))
            positions = range(start, stop)
        return [self.key(i) for i in positions if window.contains(self._versions[i])]

    def _key_span(self, lo: Key | None, hi: Key | None) -> tuple[int, int]:
        """Positions of the keys in ``(lo, hi]`` (None: open)."""
        keys = self._keys
        if self._ints:
            if (lo is not None and not _one_int(lo)) or (hi is not None and not _one_int(hi)):
                # bounds of another shape than the keys: compare as tuples, one by one
                inside = [i for i in range(len(keys))
                          if Range(0, "key", lo, hi).contains((keys[i],))]
                return (inside[0], inside[-1] + 1) if inside else (0, 0)
            start = 0 if lo is None else bisect_right(keys, lo[0])
            stop = len(keys) if hi is None else bisect_right(keys, hi[0])
            return start, max(start, stop)
        start = 0 if lo is None else bisect_right(keys, lo)
        stop = len(keys) if hi is None else bisect_right(keys, hi)
        return start, max(start, stop)


def _one_int(bound: Key) -> bool:
    return len(bound) == 1 and type(bound[0]) is int
