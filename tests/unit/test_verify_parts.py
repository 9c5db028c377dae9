"""furet verify's parts without servers: the chunk planner, the comparison over two sides
behind the Side protocol (in-memory stores here), the repair with its dependencies passed
in, and the consistency levels; keys of one integer column and composite keys."""

from __future__ import annotations

import contextlib
import io
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pymysql
import pytest
from rich.console import Console

from migration.canonical import key_text
from migration.config import DbSettings
from migration.engine.keys import Key
from migration.engine.quarantine import QuarantinedRow
from migration.engine.writer import BatchOutcome
from migration.enums import Consistency
from migration.errors import FuretError, context
from migration.flows.mapping import ColumnMap, TableFlow, TargetMap
from migration.progress import PlainLines, Silent
from migration.verify import repair as repair_module
from migration.verify.chunks import Range
from migration.verify.compare import Comparer, compare_all
from migration.verify.drilldown import Classified, classify, group
from migration.verify.mysql_checksum import RowInfo
from migration.verify.planner import Chunk, ChunkPlanner, Current, Quarantine, quarantine_of
from migration.verify.repair import RepairPolicy, ledger_quarantine, repair_pair
from migration.verify.report import TableReport
from migration.verify.report_builder import fill_report
from migration.verify.run import VerifyOptions, consistency_of, run_verify
from migration.verify.sides import Pair, Reads, nk
from migration.verify.window import Sampler, TimeWindow

# --- an in-memory store, on either side ---------------------------------------------------


class Span:
    """Integer keys (cut arithmetically) or key tuples (cut at boundaries)."""

    def __init__(self, keys: Sequence[Any]) -> None:
        self.keys = sorted(keys)

    def bounds(self, kind: str) -> tuple[Any, Any]:
        assert kind == "key"
        return (self.keys[0], self.keys[-1]) if self.keys else (None, None)

    def count(self) -> int:
        return len(self.keys)

    def next_boundary(self, lo: Key | None, rows: int) -> Key | None:
        assert all(isinstance(k, tuple) for k in self.keys), \
            "integer keys are cut arithmetically"
        after = [k for k in self.keys if lo is None or k > lo]
        return after[rows - 1] if len(after) >= rows else None


def _t(key: Any) -> Key:
    return key if isinstance(key, tuple) else (key,)


class Store:
    """key -> (version, hash), keys ints (one integer column) or tuples (composite);
    ``per_chunk`` False reads like Cassandra (one pass)."""

    def __init__(self, rows: dict[Any, tuple[int, int]], per_chunk: bool = True) -> None:
        self.rows = dict(rows)
        self.width = len(next(iter(rows))) if rows and isinstance(next(iter(rows)),
                                                                  tuple) else 1
        self.per_chunk = per_chunk
        self.copied: list[Any] = []
        self.deleted: list[Any] = []
        self.overwritten: list[Any] = []
        self.refuse: set[Any] = set()
        self.drills = 0

    def _raw(self, key: Key) -> Any:
        return key[0] if self.width == 1 and not isinstance(next(iter(self.rows), 0),
                                                            tuple) else key

    def _split(self, row: Sequence[Any]) -> tuple[Any, int, int]:
        """A source row (key columns, version, hash) -> (raw key, version, hash)."""
        w = self.width
        key = row[0] if w == 1 and not isinstance(next(iter(self.rows), 0), tuple) \
            else tuple(row[:w])
        return key, row[w], row[w + 1]

    @property
    def where(self) -> str:
        return "memory"

    def mode(self, source: Any) -> str:
        return "memory"

    identity = None  # rows keyed by the source key, as a MariaDB table

    def span(self) -> Span:
        return Span(list(self.rows))

    def _in(self, chunk: Chunk) -> list[RowInfo]:
        return [RowInfo(_t(k), v, h) for k, (v, h) in sorted(self.rows.items())
                if chunk.rng.contains(_t(k)) and _t(k) not in chunk.excluded]

    def _sum(self, chunk: Chunk) -> tuple[int, int]:
        xor = 0
        rows = self._in(chunk)
        for r in rows:
            xor ^= r.hash
        return len(rows), xor

    def checksum(self, chunk: Chunk) -> tuple[int, int] | None:
        return self._sum(chunk) if self.per_chunk else None

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        if self.per_chunk:
            return 0.0
        for chunk in done:
            chunk.target = self._sum(chunk)
            chunk.report.target_rows = chunk.target[0]
        return 1.5

    def current_versions(self, keys: Sequence[Key]) -> Current:
        return {nk(k): (k, self.rows[self._raw(k)][0]) for k in keys
                if self._raw(k) in self.rows}

    def drill(self, done: Sequence[Chunk], bad: Sequence[Chunk], source: Any,
              quarantine: Quarantine) -> list[Classified]:
        self.drills += 1
        return [classify(source.rows_of(c), group([(nk(r.key), r) for r in self._in(c)]))
                for c in bad]

    def rows_of(self, chunk: Chunk) -> dict[str, RowInfo]:
        return {nk(r.key): r for r in self._in(chunk)}

    def texts(self, keys: Sequence[Key]) -> dict[str, RowInfo]:
        out = {}
        for k in keys:
            if self._raw(k) in self.rows:
                version, h = self.rows[self._raw(k)]
                out[nk(k)] = RowInfo(k, version, h, (*(str(v) for v in k), str(version),
                                                     str(h)))
        return out

    def source_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        return [(*k, *self.rows[self._raw(k)]) for k in keys if self._raw(k) in self.rows]

    def copy(self, rows: Sequence[Sequence[Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        for row in rows:
            key, version, h = self._split(row)
            if key in self.refuse:
                outcome.quarantined.append(QuarantinedRow("t", str(key), version, "t", "no",
                                                          {}))
                continue
            current = self.rows.get(key)
            if current is None or current[0] <= version:  # version-aware
                self.rows[key] = (version, h)
            self.copied.append(key)
            outcome.written += 1
        return outcome

    def delete(self, extra: Sequence[tuple[str, RowInfo]]) -> int:
        for _, row in extra:
            self.deleted.append(self._raw(row.key))
            del self.rows[self._raw(row.key)]
        return len(extra)

    def overwrite(self, rows: Sequence[tuple[Any, ...]]) -> int:
        written = 0
        for row in rows:
            key, version, h = self._split(row)
            if key not in self.refuse:
                self.rows[key] = (version, h)
                self.overwritten.append(key)
                written += 1
        return written


TF = TableFlow("t", ("id",), "v", (TargetMap("t", (ColumnMap("id", "id"),
                                                    ColumnMap("v", "v"), ColumnMap("h", "h"))),))
# a composite key: (order_no, line) -> its rows
TF2 = TableFlow("lines", ("order_no", "line"), "v", (TargetMap("lines", (
    ColumnMap("order_no", "order_no"), ColumnMap("line", "line"), ColumnMap("v", "v"),
    ColumnMap("h", "h"))),))


def _pair(source: Store, target: Store) -> Pair:
    if source.width > 1:
        return Pair(TF2, TF2.targets[0], source, target,  # type: ignore[arg-type]
                    ("order_no", "line", "v", "h"), numeric_key=False)
    return Pair(TF, TF.targets[0], source, target, ("id", "v", "h"),  # type: ignore[arg-type]
                numeric_key=True)


def _comparer(quarantined: dict[str, set[int]] | None = None, sample: float = 1.0,
              progress: Any = None) -> Comparer:
    planner = ChunkPlanner(Sampler(sample, 7), chunk_time=0.3, initial_chunk=100)
    reads = Reads(workers=3)
    return Comparer(planner, reads, progress or Silent(), lambda table: quarantined or {},
                    max_report_rows=1000)


def _source(n: int = 1000) -> Store:
    return Store({k: (1000 + k, k * 7919) for k in range(1, n + 1)})


# --- planner ------------------------------------------------------------------------------


def test_quarantine_keeps_only_rows_whose_current_version_is_quarantined() -> None:
    current = {"1": ((1,), 10), "2": ((2,), 20), "3": ((3,), 31)}
    asked: list[Sequence[Key]] = []

    def lookup(keys: Sequence[Key]) -> Current:
        asked.append(keys)
        return {k: v for k, v in current.items() if v[0] in keys}

    got = quarantine_of({"1": {10}, "2": {19}, "3": {30, 31}, "x": {1}}, 1, True, lookup)
    assert got.as_dict() == {"1": ((1,), 10), "3": ((3,), 31)}  # 2 changed; "x": no integer
    assert sorted(asked[0]) == [(1,), (2,), (3,)]


def test_quarantine_of_a_composite_key_looks_up_its_texts_and_matches_by_key_text() -> None:
    """furet.quarantine holds the key text; the texts are looked up as they are (MariaDB
    converts them) and a row found is matched back by ITS key text, so a text that only
    converts to the key ("007" for 7) matches nothing."""
    rows = {(7, "b"): 5, (8, "a"): 6, (9, "c"): 9}

    def lookup(keys: Sequence[Key]) -> Current:
        found = {}
        for k in keys:               # like MariaDB: '007' = 7
            native = (int(k[0]), k[1])
            if native in rows:
                found[key_text(native)] = (native, rows[native])
        return found

    texts = {key_text((7, "b")): {5}, key_text((8, "a")): {1}, '["007", "c"]': {9},
             '["9"]': {9}, "9": {9}, "[not json": {9}}
    assert quarantine_of(texts, 2, False, lookup).as_dict() == {'["7", "b"]': ((7, "b"), 5)}


def test_planner_cuts_contiguous_chunks_open_at_both_ends_with_exclusions() -> None:
    planner = ChunkPlanner(Sampler(1.0), chunk_time=0.3, initial_chunk=250)
    chunks, _ = planner.adaptive(Span(range(1, 1001)), TimeWindow(), True,
                                 Quarantine([((300,), 5), ((777,), 5)]))
    got = list(chunks)   # nothing learnt: the first size throughout
    assert [(c.rng.lo, c.rng.hi) for c in got] == [
        (None, 250), (250, 500), (500, 750), (750, None)]
    assert [c.excluded for c in got] == [[], [(300,)], [], [(777,)]]
    assert all(c.take and c.report.status == "ok" for c in got)
    again = list(planner.fixed([got[1].rng], Quarantine([((300,), 5)]), TimeWindow()))
    assert again[0].take and again[0].excluded == [(300,)] and again[0].rng == got[1].rng


def test_chunks_hold_no_key_list_and_find_their_quarantined_keys_again() -> None:
    """A verify keeps every chunk it checked until its report: a chunk holds the quarantine
    it reads from, not a list of its keys (the part of a verify's memory that grew with the
    table), and finds the same keys at each use, within its range and the window."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    keys = sorted(rng.sample(range(1, 100_000), 500))
    versions = {k: rng.randrange(1, 1000) for k in keys}
    quarantine = Quarantine([((k,), versions[k]) for k in keys])
    window = TimeWindow(since=rng.randrange(0, 500), until=rng.randrange(500, 1001))
    planner = ChunkPlanner(Sampler(1.0), chunk_time=0.3, initial_chunk=7_000)
    chunks, _ = planner.adaptive(Span(range(1, 100_001)), TimeWindow(), True, quarantine)
    got = list(chunks)
    assert len(got) > 10 and all("excluded" not in vars(c) for c in got)
    assert [k for c in got for (k,) in c.excluded] == keys
    assert all(c.rng.contains(k) for c in got for k in c.excluded)
    assert got[3].excluded == got[3].excluded      # the same at each use
    again = list(planner.fixed([c.rng for c in got], quarantine, window))  # a re-check
    assert [k for c in again for (k,) in c.excluded] == [
        k for k in keys if window.contains(versions[k])]


def test_planner_cuts_composite_keys_at_boundaries_with_exclusions() -> None:
    keys = [(o, f"l{n}") for o in range(1, 101) for n in range(10)]      # 1000 key tuples
    planner = ChunkPlanner(Sampler(1.0), chunk_time=0.3, initial_chunk=250)
    quarantine = Quarantine((k, 3) for k in ((5, "l1"), (25, "l9"), (100, "l2")))
    chunks, _ = planner.adaptive(Span(keys), TimeWindow(), False, quarantine)
    got = list(chunks)   # nothing learnt: the first size throughout
    assert [(c.rng.lo, c.rng.hi) for c in got] == [
        (None, (25, "l9")), ((25, "l9"), (50, "l9")), ((50, "l9"), (75, "l9")),
        ((75, "l9"), (100, "l9")), ((100, "l9"), None)]
    assert [c.excluded for c in got] == [[(5, "l1"), (25, "l9")], [], [], [(100, "l2")], []]
    assert (got[1].report.lo, got[1].report.hi) == ((25, "l9"), (50, "l9"))
    again = list(planner.fixed([got[3].rng], quarantine, TimeWindow()))
    assert again[0].excluded == [(100, "l2")]


def test_planner_samples_with_one_reproducible_sampler() -> None:
    def taken(seed: int) -> list[bool]:
        planner = ChunkPlanner(Sampler(0.5, seed), 0.3, initial_chunk=100)
        chunks, _ = planner.adaptive(Span(range(1, 2001)), TimeWindow(), True, Quarantine())
        return [c.take for c in chunks]

    first = taken(3)
    assert first == taken(3) and 0 < sum(first) < len(first)


# --- comparison ---------------------------------------------------------------------------


@pytest.mark.parametrize("per_chunk", [True, False])
def test_compare_finds_the_exact_rows_on_either_kind_of_side(per_chunk: bool) -> None:
    source = _source()
    rows = dict(source.rows)
    del rows[5]
    rows[950] = (rows[950][0], 1)
    rows[5000] = (1, 1)
    target = Store(rows, per_chunk=per_chunk)
    pair = _pair(source, target)
    table = TableReport("t", "t", "id", "v", pair.mode)
    done, found = _comparer().compare(pair, table)
    assert set(found.missing) == {"5"} and set(found.different) == {"950"}
    assert [k for k, _ in found.extra] == ["5000"]
    assert target.drills == 1
    assert table.target_seconds == (0.0 if per_chunk else 1.5)
    bad = [c for c in done if c.report.status == "mismatch"]
    assert {c.rng.no for c in bad} == {c.rng.no for c in done if c.rng.contains(5)
                                       or c.rng.contains(950) or c.rng.contains(5000)}
    fill_report(pair, table, done, found, max_report_rows=2)
    assert (table.missing, table.extra, table.different) == (1, 1, 1)
    assert table.source_rows == 1000 and table.target_rows == 1000
    assert [(d.kind, d.key) for d in table.diffs] == [("different", 950), ("missing", 5)]
    assert table.diffs_truncated and table.diffs[0].columns == ["h"]


@pytest.mark.parametrize("per_chunk", [True, False])
def test_compare_and_repair_composite_keys_by_key_text(per_chunk: bool) -> None:
    source = Store({(o, f"l{n}"): (1000 + o * 10 + n, o * 7919 + n) for o in range(1, 101)
                    for n in range(10)})
    rows = dict(source.rows)
    del rows[(7, "l3")]
    rows[(40, "l0")] = (rows[(40, "l0")][0] - 1, 1)     # older and different: copied over
    rows[(55, "zz")] = (1, 1)                            # extra, inside the span
    rows[(0, "a")] = (1, 1)                              # extra, before the first key
    target = Store(rows, per_chunk=per_chunk)
    pair = _pair(source, target)
    table = TableReport("lines", "lines", "order_no, line", "v", pair.mode)
    done, found = _comparer().compare(pair, table)
    assert len(done) >= 2 and all(isinstance(c.rng.hi, tuple) for c in done[:-1])
    assert set(found.missing) == {'["7", "l3"]'} and set(found.different) == {'["40", "l0"]'}
    assert sorted(k for k, _ in found.extra) == ['["0", "a"]', '["55", "zz"]']
    fill_report(pair, table, done, found, max_report_rows=10)
    assert [(d.kind, d.key, d.key_text) for d in table.diffs] == [
        ("different", (40, "l0"), '["40", "l0"]'), ("missing", (7, "l3"), '["7", "l3"]'),
        ("extra", (0, "a"), '["0", "a"]'), ("extra", (55, "zz"), '["55", "zz"]')]
    assert table.diffs[0].columns == ["v", "h"]

    recorded: list[Sequence[QuarantinedRow]] = []

    def recheck(ranges: Sequence[Range]) -> Classified:
        return _comparer().compare(pair, TableReport("lines", "lines", "", "v", "x"),
                                   fixed=ranges)[1]

    report = repair_pair(pair, done, found, recheck, recorded.append,
                         RepairPolicy(delete_extra=True))
    assert sorted(target.copied) == [(7, "l3"), (40, "l0")]
    assert sorted(target.deleted) == [(0, "a"), (55, "zz")] and report.deleted == 2
    assert report.ok and target.rows == source.rows


def test_quarantined_rows_are_left_out_of_both_sides() -> None:
    source = _source()
    rows = dict(source.rows)
    del rows[42]                              # a round quarantined it: expected absent
    pair = _pair(source, Store(rows))
    table = TableReport("t", "t", "id", "v", "memory")
    done, found = _comparer({"42": {1042}}).compare(pair, table)
    assert found.clean and table.quarantined == 1 and table.quarantined_keys == [42]
    assert all(c.report.status == "ok" for c in done)


def test_a_chunk_whose_rows_agree_at_drill_down_is_transient() -> None:
    source = _source()
    target = Store(dict(source.rows))
    target.rows[10] = (1, 1)

    def drill(done: Any, bad: Any, src: Any, q: Any) -> list[Classified]:
        return [Classified() for _ in bad]     # the row was fixed in between

    target.drill = drill  # type: ignore[method-assign]
    pair = _pair(source, target)
    done, found = _comparer().compare(pair, TableReport("t", "t", "id", "v", "memory"))
    assert found.clean
    assert [c.report.status for c in done if c.rng.contains(10)] == ["transient"]


def test_compare_reports_phases_and_chunks_through_the_one_progress() -> None:
    out = io.StringIO()
    lines = PlainLines(Console(file=out, width=200), "verify f", interval=3600)
    source = _source()
    _comparer(progress=lines).compare(_pair(source, Store(dict(source.rows))),
                                      TableReport("t", "t", "id", "v", "memory"))
    text = out.getvalue().splitlines()
    assert text[0] == "verify f t -> t: 0 chunks, 0 rows (checksums)"
    assert text[-1].startswith("verify f t -> t: ") and text[-1].endswith(
        " chunks, 1,000 rows (compared)")


class Gated(Store):
    """A one-pass target whose scan (bucket) waits, up to ``wait`` s, for ``gate``: set by
    another pair's source checksums when they start."""

    def __init__(self, rows: dict[Any, tuple[int, int]], gate: threading.Event,
                 wait: float) -> None:
        super().__init__(rows, per_chunk=False)
        self.gate, self.wait, self.overlapped = gate, wait, False

    def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
        self.overlapped = self.gate.wait(self.wait)
        return super().bucket(done, quarantine)


class Signalling(Store):
    """A source that sets ``started`` at its first checksum, fails at its ``fail_at``-th
    and takes ``pause`` s per row (chunks then stay near the planner's first size)."""

    def __init__(self, rows: dict[Any, tuple[int, int]], started: threading.Event,
                 fail_at: int | None = None, pause: float = 0.0) -> None:
        super().__init__(rows)
        self.started, self.fail_at, self.pause = started, fail_at, pause
        self.checksums = 0

    def checksum(self, chunk: Chunk) -> tuple[int, int] | None:
        self.started.set()
        self.checksums += 1
        if self.fail_at is not None and self.checksums >= self.fail_at:
            raise RuntimeError("lost connection to the source")
        summed = super().checksum(chunk)
        assert summed is not None
        time.sleep(self.pause * summed[0])
        return summed


def _named(pair: Pair) -> contextlib.AbstractContextManager[None]:
    return context(table=pair.tf.source, step=f"verify {pair.tm.table}")


def test_the_next_pairs_checksums_run_while_a_pair_reads_its_target_in_one_pass() -> None:
    started = threading.Event()
    first, second = _source(), Signalling(_source().rows, started)
    one_pass = Gated(dict(first.rows), started, wait=10)
    pairs = [_pair(first, one_pass), _pair(second, Store(dict(second.rows), per_chunk=False))]
    reports = [TableReport("t", "t", "id", "v", "memory") for _ in pairs]
    results = compare_all(_comparer(), pairs, reports, _named)
    # the first pair's scan saw the second pair's checksums begin (sequential pairs would
    # have waited the 10 s out)
    assert one_pass.overlapped and second.checksums > 0
    assert [found.clean for _, found, _ in results] == [True, True]
    assert all(seconds > 0 for _, _, seconds in results)


def test_pairs_compared_ahead_find_what_one_pair_at_a_time_finds() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    pairs, expected = [], []
    for _ in range(rng.randint(2, 5)):
        source = _source(rng.randint(200, 1500))
        rows = dict(source.rows)
        for key in rng.sample(sorted(rows), rng.randint(0, 5)):
            if rng.random() < 0.5:
                del rows[key]
            else:
                rows[key] = (rows[key][0], rng.randrange(2**63))
        for _ in range(rng.randint(0, 3)):
            rows[rng.randint(2000, 3000)] = (1, 1)
        pair = _pair(source, Store(rows, per_chunk=rng.random() < 0.5))
        pairs.append(pair)
        _, alone = _comparer().compare(pair, TableReport("t", "t", "id", "v", "memory"))
        expected.append((sorted(alone.missing), sorted(alone.different),
                         sorted(k for k, _ in alone.extra)))
    reports = [TableReport("t", "t", "id", "v", "memory") for _ in pairs]
    got = [(sorted(f.missing), sorted(f.different), sorted(k for k, _ in f.extra))
           for _, f, _ in compare_all(_comparer(), pairs, reports, _named)]
    assert got == expected, f"seed {seed}"


def test_a_pair_that_fails_stops_the_checksums_run_ahead_and_names_its_table() -> None:
    class Unreachable(Gated):
        def bucket(self, done: Sequence[Chunk], quarantine: Quarantine) -> float:
            self.gate.wait(self.wait)
            raise RuntimeError("ring unreachable")

    started = threading.Event()
    ahead = Signalling(_source(5000).rows, started, pause=0.003)
    broken = Unreachable(dict(_source().rows), started, wait=10)
    pairs = [_pair(_source(), broken), _pair(ahead, Store(dict(ahead.rows)))]
    comparer = _comparer()
    with pytest.raises(RuntimeError, match="ring unreachable") as failed:
        compare_all(comparer, pairs, [TableReport("t", "t", "id", "v", "m") for _ in pairs],
                    _named)
    assert getattr(failed.value, "__furet_context__", {}).get("table") == "t"
    # stopped after the chunks in flight, not run to the end (5000 keys: about 50 chunks of
    # 0.3 s on 3 workers)
    checksums = ahead.checksums
    assert 0 < checksums < 20
    time.sleep(0.2)
    assert ahead.checksums == checksums
    # the comparer works again afterwards (a repair's re-checks use it)
    done, found = comparer.compare(_pair(_source(), Store(dict(_source().rows))),
                                   TableReport("t", "t", "id", "v", "m"))
    assert found.clean and done


def test_a_failure_in_the_checksums_run_ahead_reaches_the_caller_named() -> None:
    failing = Signalling(_source().rows, threading.Event(), fail_at=3)
    pairs = [_pair(_source(), Store(dict(_source().rows), per_chunk=False)),
             _pair(failing, Store(dict(failing.rows)))]
    with pytest.raises(RuntimeError, match="lost connection") as failed:
        compare_all(_comparer(), pairs, [TableReport("t", "t", "id", "v", "m") for _ in pairs],
                    _named)
    assert getattr(failed.value, "__furet_context__", {}).get("table") == "t"


# --- repair -------------------------------------------------------------------------------


def _repair(target: Store, source: Store, policy: RepairPolicy
            ) -> tuple[Any, list[Sequence[QuarantinedRow]], list[Chunk]]:
    pair = _pair(source, target)
    comparer = _comparer()
    done, found = comparer.compare(pair, TableReport("t", "t", "id", "v", "memory"))
    recorded: list[Sequence[QuarantinedRow]] = []

    def recheck(ranges: Sequence[Range]) -> Classified:
        return comparer.compare(pair, TableReport("t", "t", "id", "v", "x"), fixed=ranges)[1]

    report = repair_pair(pair, done, found, recheck, recorded.append, policy)
    return report, recorded, done


def test_repair_copies_version_aware_and_keeps_extra_rows_without_delete_extra() -> None:
    source = _source()
    rows = dict(source.rows)
    del rows[5]
    rows[950] = (rows[950][0] + 1, 1)         # a newer target copy: shadowed
    rows[960] = (rows[960][0] - 1, 1)         # older: copied over
    rows[5000] = (1, 1)
    target = Store(rows)
    report, recorded, done = _repair(target, source, RepairPolicy())
    assert sorted(target.copied) == [5, 950, 960] and not target.deleted
    assert report.copied == 3 and report.quarantined == 0 and not recorded
    assert target.rows[960] == source.rows[960] and target.rows[950] != source.rows[950]
    assert report.shadowed == [950] and report.overwritten == 0 and report.extra_kept == 1
    assert (report.missing_after, report.extra_after, report.different_after) == (0, 1, 1)
    statuses = {c.rng.no: c.report.status for c in done}
    assert {statuses[c.rng.no] for c in done if c.rng.contains(5)} == {"repaired"}
    assert {statuses[c.rng.no] for c in done if c.rng.contains(950)} == {"unrepaired"}


def test_repair_deletes_overwrites_and_records_refused_rows() -> None:
    source = _source()
    rows = dict(source.rows)
    del rows[7]
    del rows[8]
    rows[950] = (rows[950][0] + 1, 1)
    rows[5000] = (1, 1)
    target = Store(rows)
    target.refuse = {8}
    report, recorded, _ = _repair(target, source, RepairPolicy(delete_extra=True,
                                                               overwrite_newer=True))
    assert target.deleted == [5000] and target.overwritten == [950]
    assert report.copied == 2 and report.quarantined == 1
    assert [[q.row_key for q in rows] for rows in recorded] == [["8"]]
    assert (report.missing_after, report.extra_after, report.different_after) == (1, 0, 0)


def test_refused_rows_go_to_the_ledger_and_its_errors_name_the_table(monkeypatch) -> None:
    settings = DbSettings("target", "10.0.0.2", 3306, "furet", "s3cret")
    calls: list[Any] = []

    class Conn:
        def close(self) -> None:
            calls.append("closed")

    def connect(s: DbSettings, autocommit: bool = False, strict: bool = False) -> Conn:
        assert s is settings and autocommit and strict  # the rounds' strict session
        calls.append("connect")
        return Conn()

    monkeypatch.setattr(repair_module, "connect", connect)
    monkeypatch.setattr(repair_module.ledger, "record_quarantine",
                        lambda conn, flow, round_no, rows: calls.append((flow, round_no,
                                                                         len(rows))))
    record = ledger_quarantine(settings, "runtime")
    record([])
    assert calls == []                         # nothing refused: no connection
    row = QuarantinedRow("quote", "1", 5, "quote", "bad", {})
    record([row])
    assert calls == ["connect", ("runtime", 0, 1), "closed"]

    def fail(*args: Any) -> None:
        raise pymysql.err.OperationalError(1142, "INSERT command denied")

    monkeypatch.setattr(repair_module.ledger, "record_quarantine", fail)
    with pytest.raises(FuretError) as err:
        record([row])
    assert "furet" in str(err.value) and "quarantine" in str(err.value)
    assert "s3cret" not in str(err.value) and calls[-1] == "closed"


# --- options and structure ----------------------------------------------------------------


def test_consistency_takes_the_enum_or_its_text_and_names_the_choices() -> None:
    assert consistency_of("LOCAL_ONE") is Consistency.LOCAL_ONE
    assert consistency_of(Consistency.ALL) is Consistency.ALL
    with pytest.raises(FuretError) as err:
        consistency_of("local_one")
    assert str(err.value) == ("--consistency 'local_one' is not one of ONE, LOCAL_ONE, "
                              "QUORUM, LOCAL_QUORUM, ALL")
    with pytest.raises(FuretError, match="--consistency 'TWO'"):
        run_verify(None, VerifyOptions("runtime", consistency="TWO"))  # type: ignore[arg-type]
    with pytest.raises(FuretError, match="--scan-consistency 'TWO'"):
        # no config: the level is refused before any is read
        run_verify(None, VerifyOptions("runtime",  # type: ignore[arg-type]
                                       scan_consistency="TWO"))


def test_repair_does_not_import_the_runner() -> None:
    code = ("import sys, migration.verify.repair, migration.verify.compare; "
            "sys.exit('migration.verify.run' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tables_verify_cannot_compare_are_refused_in_one_line() -> None:
    from migration.flows.mapping import parse_flow
    from migration.flows.validate import ColumnInfo, TableSchema
    from migration.verify.run import _sql_target_side, table_codec

    flow = parse_flow({"name": "f", "source": {"database": "src"},
                       "target": {"database": "dst"},
                       "tables": [{"source": "t", "key": ["a", "b"], "version": v,
                                   "targets": [{"table": "t", "columns": {
                                       "a": "a", "b": "b", **({"v": "v"} if v != "none"
                                                              else {})}}]}
                                  for v in ("v", "none")]})
    with_version, without = flow.tables

    def schema(vtype: str) -> TableSchema:
        return TableSchema("db", "t", {c: ColumnInfo(c, vtype if c == "v" else "int", False,
                                                     False, False) for c in "abv"},
                           (("a", "b"),))

    codec = table_codec(flow, with_version, schema("datetime"))
    assert codec is not None and codec.temporal
    # version: none is compared by key (its refusals: tests/unit/test_verify_versionless.py)
    assert table_codec(flow, without, schema("int")) is None
    settings = DbSettings("target", "10.0.0.2", 3306, "furet", "s3cret")
    side = _sql_target_side(flow, with_version, with_version.targets[0], settings,
                            schema("timestamp"), codec)
    assert side.keys == ("a", "b") and side.codec is codec
    with pytest.raises(FuretError, match="table t: version column 'v' is BIGINT but the "
                                         "source's is DATETIME\\(0\\)"):
        _sql_target_side(flow, with_version, with_version.targets[0], settings,
                         schema("bigint"), codec)
