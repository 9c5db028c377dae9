"""The Cassandra side of a comparison: the ring read over token ranges in parallel, each row
hashed in Python exactly as the SQL hashes its source row, and bucketed into the source's
chunks (by the key, or by the version under ``--since/--until``).

Query tables are partitioned by something else than the source key (customer, day), so
the ring cannot be read per source key range; instead one pass over the whole table
(``token(pk) > ? AND token(pk) <= ?`` sub-ranges, paged, read concurrently) aggregates
``COUNT`` and ``BIT_XOR`` per source chunk. Rows are never held in memory, except in the
drill-down pass, which keeps only the rows of mismatching chunks (and, under a window, the
rows of the keys those chunks hold on the source). The checksum pass reads at the scan
consistency (:data:`SCAN_PROFILE`, one replica by default), the drill-down at the
confirming one (:data:`PROFILE`, a quorum by default): a replica that missed a write makes
a chunk differ, and the quorum read then finds the row.

A row's key is the tuple of the target columns the flow maps the source key to (partition
and clustering columns alike); its version is read back as a ledger value of the flow
table's codec: a ``bigint`` as it is, a ``timestamp`` (the driver's naive UTC datetime)
through the codec, which reads it as the writer wrote it (a DATETIME version's wall time).
"""

from __future__ import annotations

import bisect
import concurrent.futures
import datetime
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.canonical import value_text
from migration.engine.keys import Key
from migration.engine.versions import EPOCH, US, VersionCodec
from migration.rowhash import hash_texts, register_cassandra_dates, row_hasher
from migration.verify.chunks import Range, as_key
from migration.verify.mysql_checksum import INTEGER_VERSION, RowInfo

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
PROFILE = "furet-verify"            # the reads that confirm a difference (drill-down)
SCAN_PROFILE = "furet-verify-scan"  # the checksum pass over the whole ring
# Rows per page of a scan (verify --scan-page-rows): each reader holds one page. Pages of
# 10,000 rows took the lab's 1 M-quote verify from 20-22 s to mostly 17 s and furet's peak
# RSS from 100 to 140-240 MiB: bounded by readers x page, not by the table (README,
# Benchmarks).
PAGE_ROWS = 10_000


def token_ranges(splits: int) -> list[tuple[int, int]]:
    """``splits`` ranges ``(lo, hi]`` covering the whole Murmur3 ring."""
    splits = max(1, splits)
    width = (MAX_TOKEN - MIN_TOKEN) // splits
    edges = [MIN_TOKEN + i * width for i in range(splits)] + [MAX_TOKEN]
    return [(edges[i], edges[i + 1]) for i in range(splits)]


def add_profile(cluster: Any, consistency: str, local_dc: str = "", name: str = PROFILE) -> str:
    """An execution profile ``name`` for the scans: the chosen consistency (a
    :class:`~migration.enums.Consistency`), tuples, long timeout."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc or None)),
        consistency_level=getattr(ConsistencyLevel, consistency), request_timeout=60,
        row_factory=tuple_factory)
    cluster.add_execution_profile(name, profile)
    return name


@dataclass
class CassandraSide:
    session: Any
    keyspace: str
    table: str
    keys: tuple[str, ...]          # target columns holding the source key, flow order
    version: str                   # target column holding the source version
    columns: tuple[str, ...]       # compared target columns, in mapping order
    partition_key: tuple[str, ...]
    primary_key: tuple[str, ...]
    profile: str = PROFILE             # drill-down reads
    scan_profile: str = SCAN_PROFILE   # the checksum pass
    codec: VersionCodec = INTEGER_VERSION  # the flow table's version codec
    # The repair's writes: config cassandra.write_consistency.
    write_consistency: str = "LOCAL_QUORUM"
    # CQL type of each of ``columns`` (TableShape.types): the scan's row hasher
    types: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"cassandra keyspace {self.keyspace} table {self.table}"

    def version_of(self, value: Any) -> int | None:
        """A version read back from Cassandra as a ledger value."""
        if isinstance(value, datetime.datetime) and not self.codec.temporal:
            # a timestamp column holding an epoch-integer version: the instant
            moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
            return self.codec.from_micros((moment - EPOCH) // US)
        return self.codec.ledger(value)


@dataclass(frozen=True)
class TableShape:
    partition_key: tuple[str, ...]
    primary_key: tuple[str, ...]     # partition then clustering columns
    types: dict[str, str]            # column -> CQL type (system_schema.columns)


def table_shape(session: Any, keyspace: str, table: str) -> TableShape:
    """The table's key columns in their order and its columns' CQL types."""
    rows = list(session.execute(
        "SELECT column_name, kind, position, type FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s", (keyspace, table)))
    part = tuple(c for _, c in sorted((r.position, r.column_name) for r in rows
                                      if r.kind == "partition_key"))
    clus = tuple(c for _, c in sorted((r.position, r.column_name) for r in rows
                                      if r.kind == "clustering"))
    return TableShape(part, part + clus, {r.column_name: r.type for r in rows})


class Locator:
    """Which chunk (index in ``chunks``, ordered and contiguous) holds a key or a version.

    Keys are tuples (an integer bound ``5`` of a single integer key is ``(5,)``) compared
    in Python order: see :mod:`migration.verify.chunks` for text keys."""

    def __init__(self, chunks: Sequence[Range]) -> None:
        self.chunks = list(chunks)
        self.by_key = bool(self.chunks) and self.chunks[0].kind == "key"
        # a single integer key: bounds and keys compared as ints, no tuple compared per row
        bounds = [b for c in self.chunks for b in (c.lo, c.hi) if b is not None]
        self.ints = self.by_key and bool(bounds) and all(type(b) is int for b in bounds)
        bound = as_key if self.by_key and not self.ints else (lambda b: b)
        # each chunk's bounds as the values compared (key tuples when by key), None = open
        self.los = [bound(c.lo) for c in self.chunks]
        self.his = [bound(c.hi) for c in self.chunks]
        # an open last chunk takes whatever is past the others' upper bounds
        self.searched = self.his[:-1] if self.his and self.his[-1] is None else self.his

    def find(self, value: Any) -> int | None:
        """``value``: a key tuple (or a bare integer key) or a version. Called once per row
        of a scan: bounds are precomputed, one bisect and two comparisons."""
        if value is None or not self.chunks:
            return None
        if self.ints:
            if type(value) is tuple:
                if len(value) != 1:
                    return None
                value = value[0]
        elif self.by_key and not isinstance(value, tuple):
            value = (value,)
        i = bisect.bisect_left(self.searched, value)
        if i >= len(self.chunks):
            return None
        lo, hi = self.los[i], self.his[i]
        if (lo is not None and not value > lo) or (hi is not None and not value <= hi):
            return None
        return i


@dataclass
class ScanResult:
    rows: int = 0
    buckets: dict[int, list[int]] = field(default_factory=dict)   # chunk index -> [count, xor]
    kept: list[RowInfo] = field(default_factory=list)


def scan(side: CassandraSide, chunk_of: Callable[[Key, int | None], int | None],
         keep: Callable[[Key, int | None], bool] | None = None, splits: int = 64,
         workers: int = 4, page_rows: int = PAGE_ROWS,
         on_rows: Callable[[int], None] | None = None,
         throttle: Callable[[int], None] | None = None,
         profile: str | None = None, versions: bool = True) -> ScanResult:
    """Read ``side``'s whole table; aggregate each row into ``chunk_of(key, version)``.

    ``keep(key, version)`` (drill-down pass) keeps the rows it accepts, with
    their texts and values, in ``ScanResult.kept``. ``profile``: the execution profile
    (consistency) of the reads, ``side.profile`` by default. ``page_rows``: rows per page;
    each of the ``workers`` holds one page. ``versions``: whether ``chunk_of`` buckets by
    version (a window); without it and without ``keep`` it is given None, and a row's
    version is not converted.
    """
    from cassandra.query import SimpleStatement

    register_cassandra_dates()
    cols = list(side.columns)
    key_is = [cols.index(k) for k in side.keys]
    version_i = cols.index(side.version)
    key_of = _key_getter(key_is)
    version_of = side.version_of
    with_versions = versions or keep is not None
    hash_row = row_hasher(side.types)
    token = f"token({', '.join(side.partition_key)})"
    cql = (f"SELECT {', '.join(cols)} FROM {side.keyspace}.{side.table} "
           f"WHERE {token} > %s AND {token} <= %s")
    lock = threading.Lock()
    total = ScanResult()

    def one(rng: tuple[int, int]) -> None:
        local = ScanResult()
        buckets = local.buckets
        statement = SimpleStatement(cql, fetch_size=page_rows)
        result = side.session.execute(statement, rng,
                                      execution_profile=profile or side.profile)
        rows = pending = 0
        for row in result:
            key = key_of(row)
            version = version_of(row[version_i]) if with_versions else None
            rows += 1
            pending += 1
            index = chunk_of(key, version)
            kept = keep is not None and keep(key, version)
            if index is not None:
                h = hash_row(row)
                bucket = buckets.get(index)
                if bucket is None:
                    buckets[index] = [1, h]
                else:
                    bucket[0] += 1
                    bucket[1] ^= h
            if kept:
                texts = tuple(value_text(v) for v in row)
                local.kept.append(RowInfo(key, version, hash_texts(texts), texts, tuple(row)))
            if pending >= page_rows:
                if on_rows:
                    on_rows(pending)
                if throttle:
                    throttle(pending)
                pending = 0
        if on_rows and pending:
            on_rows(pending)
        local.rows = rows
        with lock:
            total.rows += local.rows
            for index, (count, xor) in local.buckets.items():
                bucket = total.buckets.setdefault(index, [0, 0])
                bucket[0] += count
                bucket[1] ^= xor
            total.kept.extend(local.kept)

    def attempt(rng: tuple[int, int]) -> None:
        # a range is merged only once it is read whole, so a retried range counts once
        for retry in _retrying():
            with retry:
                one(rng)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(attempt, rng) for rng in token_ranges(splits)]:
            future.result()
    return total


def _key_getter(indexes: Sequence[int]) -> Callable[[Sequence[Any]], Key]:
    """A row's key tuple (one column or several) by one C call per row."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return cast(Callable[[Sequence[Any]], Key], operator.itemgetter(*indexes))


RETRYABLE = frozenset({"OperationTimedOut", "ReadTimeout", "Unavailable", "ReadFailure",
                       "NoHostAvailable", "ConnectionShutdown"})


def _retrying() -> Retrying:
    """A token range whose read timed out or found too few replicas is read again."""
    return Retrying(retry=retry_if_exception(lambda e: type(e).__name__ in RETRYABLE),
                    wait=wait_exponential(multiplier=0.5, max=10), stop=stop_after_attempt(4),
                    reraise=True)
