"""furet verify's declared retries: a lost MariaDB link is read again on a reconnected
link; a Cassandra token range that timed out is read again and counted once."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from migration.config import DbSettings
from migration.errors import FuretError
from migration.flows.mapping import ColumnMap
from migration.rowhash import hash_texts
from migration.verify import cassandra_checksum as cq
from migration.verify import mysql_checksum as mq
from migration.verify.window import TimeWindow


class _Cursor:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: Any) -> None:
        self.conn.executed.append(sql)
        if self.conn.failures:
            code = self.conn.failures.pop(0)
            raise pymysql.err.OperationalError(code, "boom")

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [(3, 12345)]


class _Conn:
    def __init__(self, failures: list[int]) -> None:
        self.failures = failures
        self.executed: list[str] = []
        self.pings = 0

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def ping(self, reconnect: bool = False) -> None:
        assert reconnect
        self.pings += 1


SIDE = mq.SqlSide(DbSettings("legacy", "10.0.0.1", 3306, "furet", "s3cret"), "lf_runtime",
                  "quote", ("id",), "updated_ts", (ColumnMap("id", "id"),), {"id": "bigint"})


def test_a_lost_link_is_retried_on_a_reconnected_link() -> None:
    conn = _Conn([2013, 2006])
    assert mq.checksum(conn, SIDE, None, TimeWindow()) == (3, 12345)  # type: ignore[arg-type]
    assert len(conn.executed) == 3 and conn.pings == 2


def test_a_data_error_is_one_line_naming_the_table_not_a_retry() -> None:
    conn = _Conn([1054])
    with pytest.raises(FuretError) as err:
        mq.checksum(conn, SIDE, None, TimeWindow())  # type: ignore[arg-type]
    assert str(err.value).startswith("legacy 10.0.0.1:3306 database lf_runtime table quote:")
    assert "s3cret" not in str(err.value) and len(conn.executed) == 1


class OperationTimedOut(Exception):
    """Named like the driver's: the scan retries it by name."""


class _Session:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.failed = False

    def execute(self, statement: Any, rng: tuple[int, int], execution_profile: str) -> Any:
        self.calls.append(rng)
        lo, hi = rng
        rows = [(k, 100 + k) for k in range(1, 7) if lo < k * (2**60) <= hi]
        if rows and not self.failed:  # the first range with rows times out half-way

            def broken() -> Any:
                yield rows[0]
                self.failed = True
                raise OperationTimedOut("timed out")
            return broken()
        return iter(rows)


def test_a_timed_out_token_range_is_read_again_and_counted_once() -> None:
    session = _Session()
    side = cq.CassandraSide(session, "prod", "t", ("k",), "v", ("k", "v"), ("k",), ("k",))
    result = cq.scan(side, lambda key, version: 0, splits=4, workers=2)
    assert session.failed and len(session.calls) == 5
    assert result.rows == 6 and result.buckets[0][0] == 6
    expected = 0
    for k in range(1, 7):
        expected ^= hash_texts([str(k), str(100 + k)])
    assert result.buckets[0][1] == expected


class _Replicas:
    """Rows by execution profile: the scan's replica missed key 3's write, which the
    confirming consistency (a quorum) holds."""

    def __init__(self) -> None:
        self.profiles: list[str] = []
        self.pages: set[int] = set()

    def execute(self, statement: Any, rng: tuple[int, int], execution_profile: str) -> Any:
        self.profiles.append(execution_profile)
        self.pages.add(statement.fetch_size)
        keys = [k for k in range(1, 7) if execution_profile != cq.SCAN_PROFILE or k != 3]
        return iter([(k, 100 + k) for k in keys if rng[0] < k * (2**60) <= rng[1]])


class _SourceRows:
    """The source side of the drill-down: the chunk's six rows."""

    def rows(self, chunk: Any) -> dict[str, Any]:
        return {str(k): mq.RowInfo((k,), 100 + k, hash_texts([str(k), str(100 + k)]))
                for k in range(1, 7)}


def test_a_difference_of_the_one_replica_scan_is_read_again_at_the_confirming_level() -> None:
    """The checksum pass reads at the scan consistency; the chunk it finds short is
    checksummed again at the confirming one, which finds every row: the chunk is not read
    row by row (no row held) and no row is called missing. A chunk still different there
    is drilled down at the confirming consistency."""
    from migration.flows.mapping import TableFlow, TargetMap
    from migration.verify.chunks import Range
    from migration.verify.planner import Chunk
    from migration.verify.report import ChunkReport
    from migration.verify.sides import CassandraTargetSide, Reads

    session = _Replicas()
    side = cq.CassandraSide(session, "prod", "t", ("k",), "v", ("k", "v"), ("k",), ("k",))
    tf = TableFlow("t", ("k",), "v", (TargetMap("t", (ColumnMap("k", "k"),
                                                      ColumnMap("v", "v"))),))
    target = CassandraTargetSide(side, Reads(workers=1, splits=2, page_rows=300), tf)
    chunk = Chunk(Range(0, "key", None, None), True, ChunkReport(0, "key", None, None))
    rows = _SourceRows().rows(chunk)
    xor = 0
    for row in rows.values():
        xor ^= row.hash
    chunk.source = (6, xor)
    target.bucket([chunk], {})
    assert chunk.target[0] == 5 and set(session.profiles) == {cq.SCAN_PROFILE}
    assert session.pages == {300}  # verify --scan-page-rows reaches every page of the scan
    session.profiles.clear()
    # _SourceRows stands in for the MariaDB source side: drill() calls only its rows()
    [found] = target.drill([chunk], [chunk], _SourceRows(), {})  # type: ignore[arg-type]
    assert session.profiles == [cq.PROFILE] * 2  # one checksum pass (2 splits), no drill
    assert found.clean and chunk.target == chunk.source and chunk.report.target_rows == 6

    chunk.source = (7, xor ^ 1)   # still different at the confirming level: rows are read
    session.profiles.clear()
    [found] = target.drill([chunk], [chunk], _SourceRows(), {})  # type: ignore[arg-type]
    assert session.profiles == [cq.PROFILE] * 4 and found.clean


def test_the_scan_page_rows_default_is_one_value_for_the_command_and_the_library() -> None:
    from migration import contract
    from migration.verify.run import VerifyOptions
    from migration.verify.sides import Reads

    [option] = [o for o in contract.COMMANDS["verify"].options if o.flag == "--scan-page-rows"]
    assert option.default == cq.PAGE_ROWS == VerifyOptions("f").scan_page_rows
    assert Reads().page_rows == cq.PAGE_ROWS
