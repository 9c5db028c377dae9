"""A Cassandra backup's checksums: every table of the backed-up keyspaces read whole, its rows
folded into fixed token buckets, recorded as JSON, and compared with a restored copy
(design issue 13, section 4).

- **Buckets**: :func:`~migration.verify.cassandra_checksum.token_ranges` cuts the Murmur3
  ring into ``splits`` (default 256) fixed ranges ``(lo, hi]``; range ``no`` is read with
  ``token(pk) > lo AND token(pk) <= hi`` and its rows are bucket ``no``: ``COUNT`` and
  ``BIT_XOR`` of their row hashes (:func:`migration.rowhash.hash_texts`). The ranges depend
  on ``splits`` only, never on the ring's tokens, so the restored single node is cut the
  same way as the backed-up ring. Empty buckets are not recorded.
- **Row hash**: every column of the table (partition key, clustering columns in order, then
  the others by name), each as :func:`cell_text`: furet's canonical text
  (:func:`migration.canonical.value_text`), except blobs, hashed as hex (the canonical text
  decodes bytes as UTF-8 with replacement: two different blobs would hash alike).
  Write times and TTLs are not compared.
- **Backup time**: read at CL ALL while the Cassandra flows' locks are held
  (:mod:`migration.backup.cassandra`): every replica answers and the rows cannot move.
  **Restore time**: the restored node is read the same way (one node, CL ONE).

Invariant: a restored table that differs from the backed-up one differs in the count or
the BIT_XOR of the bucket holding the difference; a mismatch names the keyspace, the table
and the token range. A table missing from the restore, or a column, is named too.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from migration.canonical import value_text
from migration.errors import FuretError
from migration.rowhash import hash_texts
from migration.verify.cassandra_checksum import RETRYABLE, add_profile, token_ranges

# /2: the row hash quotes its fields (migration.rowhash); /1 documents hash otherwise
FORMAT = "furet-backup-cassandra-checksums/2"
SPLITS = 256
FETCH_SIZE = 5000
WORKERS = 4


def quote_cql(name: str) -> str:
    """A CQL identifier, quoted (case and reserved words kept)."""
    return '"' + name.replace('"', '""') + '"'


def cell_text(value: Any) -> str | None:
    """The text a value is hashed as: canonical, blobs as hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value_text(value)


def range_label(rng: tuple[int, int]) -> str:
    return f"({rng[0]}, {rng[1]}]"


@dataclass(frozen=True)
class CqlTable:
    keyspace: str
    table: str
    columns: tuple[tuple[str, str], ...]   # (name, CQL type), in hashing order
    partition_key: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.keyspace}.{self.table}"


@dataclass(frozen=True)
class TableSums:
    table: CqlTable
    buckets: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # no -> (count, xor)

    @property
    def rows(self) -> int:
        return sum(count for count, _ in self.buckets.values())


@dataclass(frozen=True)
class CassandraChecksums:
    cluster: str                   # cassandra 10.0.0.21,10.0.0.22:9042
    taken_at: str                  # ISO, UTC
    consistency: str               # ALL
    splits: int
    keyspaces: tuple[str, ...]
    tables: tuple[TableSums, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def buckets(self) -> int:
        return sum(len(t.buckets) for t in self.tables)

    def to_json(self) -> str:
        keyspaces: dict[str, dict[str, Any]] = {ks: {} for ks in self.keyspaces}
        for sums in self.tables:
            t = sums.table
            keyspaces.setdefault(t.keyspace, {})[t.table] = {
                "partition_key": list(t.partition_key),
                "columns": [list(c) for c in t.columns],
                "buckets": [[no, count, xor] for no, (count, xor) in sorted(sums.buckets.items())]}
        return json.dumps({"format": FORMAT, "cluster": self.cluster, "taken_at": self.taken_at,
                           "consistency": self.consistency, "splits": self.splits,
                           "keyspaces": keyspaces}, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "checksums") -> CassandraChecksums:
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                got = raw.get("format") if isinstance(raw, dict) else None
                raise FuretError(f"{where}: format {got!r}, expected {FORMAT!r} (row "
                                 "hashes of another furet version: take a new backup)")
            tables = []
            for ks, entries in raw["keyspaces"].items():
                for name, t in entries.items():
                    table = CqlTable(str(ks), str(name),
                                     tuple((str(n), str(k)) for n, k in t["columns"]),
                                     tuple(str(c) for c in t["partition_key"]))
                    tables.append(TableSums(table, {int(no): (int(count), int(xor))
                                                    for no, count, xor in t["buckets"]}))
            return cls(str(raw["cluster"]), str(raw["taken_at"]), str(raw["consistency"]),
                       int(raw["splits"]), tuple(str(k) for k in raw["keyspaces"]),
                       tuple(tables))
        except (ValueError, KeyError, TypeError) as exc:
            raise FuretError(f"{where}: not a furet Cassandra checksums document "
                             f"({exc!r})") from None


# --- reading a ring or a node -----------------------------------------------------------


def read_tables(session: Any, keyspaces: Sequence[str]) -> list[CqlTable]:
    """The tables of ``keyspaces`` with their columns in hashing order (system_schema)."""
    out = []
    for ks in keyspaces:
        names = sorted(r.table_name for r in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,)))
        for name in names:
            rows = list(session.execute(
                "SELECT column_name, kind, position, type FROM system_schema.columns "
                "WHERE keyspace_name = %s AND table_name = %s", (ks, name)))
            order = {"partition_key": 0, "clustering": 1}
            rows.sort(key=lambda r: (order.get(r.kind, 2),
                                     r.position if r.kind in order else 0, r.column_name))
            out.append(CqlTable(ks, name, tuple((r.column_name, r.type) for r in rows),
                                tuple(r.column_name for r in rows if r.kind == "partition_key")))
    return out


def keyspaces_present(session: Any, keyspaces: Sequence[str]) -> set[str]:
    rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
    return {r.keyspace_name for r in rows} & set(keyspaces)


def _retrying() -> Retrying:
    """A token range whose read timed out or found too few replicas is read again."""
    return Retrying(retry=retry_if_exception(lambda e: type(e).__name__ in RETRYABLE),
                    wait=wait_exponential(multiplier=0.5, max=10), stop=stop_after_attempt(4),
                    reraise=True)


def scan_table(session: Any, table: CqlTable, *, splits: int = SPLITS, profile: str,
               workers: int = WORKERS, where: str = "cassandra") -> TableSums:
    """``table`` read whole, one query per fixed token range, folded into its buckets.
    A range that cannot be read (after retries) is one line naming the table and the
    range."""
    from cassandra.query import SimpleStatement

    token = f"token({', '.join(quote_cql(c) for c in table.partition_key)})"
    cql = (f"SELECT {', '.join(quote_cql(n) for n, _ in table.columns)} FROM "
           f"{quote_cql(table.keyspace)}.{quote_cql(table.table)} "
           f"WHERE {token} > %s AND {token} <= %s")
    ranges = token_ranges(splits)

    def one(rng: tuple[int, int]) -> tuple[int, int]:
        count, xor = 0, 0
        statement = SimpleStatement(cql, fetch_size=FETCH_SIZE)
        for row in session.execute(statement, rng, execution_profile=profile):
            count += 1
            xor ^= hash_texts(tuple(cell_text(v) for v in row))
        return count, xor

    def attempt(rng: tuple[int, int]) -> tuple[int, int]:
        try:
            for retry in _retrying():
                with retry:
                    return one(rng)
        except FuretError:
            raise
        except Exception as exc:  # the driver's errors: one line naming the range
            raise FuretError(f"{where} {table.name} token range {range_label(rng)}: "
                             f"{type(exc).__name__}: {str(exc)[:300]}") from None
        raise AssertionError("unreachable")

    buckets: dict[int, tuple[int, int]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {no: pool.submit(attempt, rng) for no, rng in enumerate(ranges)}
        try:
            for no, future in futures.items():
                count, xor = future.result()
                if count:
                    buckets[no] = (count, xor)
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
    return TableSums(table, buckets)


def take_checksums(session: Any, cluster: Any, tables: Sequence[CqlTable], *,
                   consistency: str, splits: int = SPLITS, workers: int = WORKERS,
                   local_dc: str = "", where: str = "cassandra") -> tuple[TableSums, ...]:
    """The bucket checksums of ``tables``, read at ``consistency`` (ALL at backup time)."""
    profile = add_profile(cluster, consistency, local_dc)
    return tuple(scan_table(session, t, splits=splits, profile=profile, workers=workers,
                            where=where) for t in tables)


# --- restore time -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    table: CqlTable
    rng: tuple[int, int]
    restored: tuple[int, int]
    backup: tuple[int, int]

    @property
    def line(self) -> str:
        return (f"{self.table.name} token range {range_label(self.rng)}: restored "
                f"{self.restored[0]} rows (checksum {self.restored[1]:016x}), backup "
                f"{self.backup[0]} rows (checksum {self.backup[1]:016x})")


def compare_sums(recorded: TableSums, restored: TableSums, splits: int) -> list[Mismatch]:
    """The buckets of ``restored`` whose count or BIT_XOR differ from ``recorded``'s."""
    ranges = token_ranges(splits)
    out = []
    for no in sorted(set(recorded.buckets) | set(restored.buckets)):
        backup = recorded.buckets.get(no, (0, 0))
        found = restored.buckets.get(no, (0, 0))
        if found != backup:
            out.append(Mismatch(recorded.table, ranges[no], found, backup))
    return out


def compare_with_node(recorded: CassandraChecksums, session: Any, cluster: Any, *,
                      where: str, workers: int = WORKERS) -> list[str]:
    """Every difference between the node behind ``session`` and the recorded checksums, one
    line each (empty: equal): missing tables and columns, then mismatching token ranges."""
    present = {(t.keyspace, t.table): t for t in read_tables(session, recorded.keyspaces)}
    profile = add_profile(cluster, "ONE")
    problems: list[str] = []
    for sums in recorded.tables:
        table = sums.table
        live = present.get((table.keyspace, table.table))
        if live is None:
            problems.append(f"{table.name}: in the backup, missing from {where}")
            continue
        missing = [n for n, _ in table.columns if n not in dict(live.columns)]
        if missing:
            problems.append(f"{table.name}: column {', '.join(missing)} in the backup, "
                            f"missing from {where}")
            continue
        try:
            restored = scan_table(session, table, splits=recorded.splits, profile=profile,
                                  workers=workers, where=where)
        except FuretError as exc:
            problems.append(str(exc))
            continue
        problems += [m.line for m in compare_sums(sums, restored, recorded.splits)]
    return problems
