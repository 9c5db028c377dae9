"""A backup's recorded chunk checksums without servers: the JSON document round-trips every
kind of key bound, a RecordedSide answers the Side protocol from it, and the comparison of
a restored server with it names the database, the table and the chunk range; the legacy
dump's header and its client option file."""

from __future__ import annotations

import datetime
import decimal
import json
import stat
from pathlib import Path

import pytest

from migration.backup.checksums import (
    FORMAT,
    Checksums,
    Coordinates,
    RecordedChunk,
    RecordedSide,
    RecordedTable,
    compare_table,
    table_problems,
)
from migration.backup.legacy import check_coordinates, client_option_file, dump_argv, parse_header
from migration.backup.manifest import (
    CHECKSUMS_FILE,
    DUMP_FILE,
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    read_manifest,
    write_atomic,
)
from migration.config import DbSettings
from migration.errors import FuretError
from migration.progress import Silent
from migration.verify.chunks import Range
from migration.verify.compare import Comparer
from migration.verify.planner import Chunk, ChunkPlanner
from migration.verify.report import ChunkReport
from migration.verify.sides import Reads
from migration.verify.window import Sampler

QUOTE = RecordedTable(
    "lf_runtime", "quote", ("id",), (("id", "bigint"), ("uid", "char"), ("premium", "int")),
    (RecordedChunk(0, None, 5000, 5000, 0x1234), RecordedChunk(1, 5000, 10000, 5000, 0xFEED),
     RecordedChunk(2, 10000, None, 17, 2**64 - 1)))
COMPOSITE = RecordedTable(
    "lf_bo", "line", ("day", "code", "raw", "amount", "at", "span"),
    (("day", "date"), ("code", "varchar"), ("raw", "varbinary"), ("amount", "decimal"),
     ("at", "datetime"), ("span", "time")),
    (RecordedChunk(0, None, (datetime.date(2024, 2, 29), "é'\"x", b"\x00\xff",
                             decimal.Decimal("-12.50"),
                             datetime.datetime(2024, 1, 2, 3, 4, 5, 600),
                             datetime.timedelta(hours=-1, microseconds=7)), 3, 99),
     RecordedChunk(1, (datetime.date(2024, 2, 29), "é'\"x", b"\x00\xff",
                       decimal.Decimal("-12.50"), datetime.datetime(2024, 1, 2, 3, 4, 5, 600),
                       datetime.timedelta(hours=-1, microseconds=7)), None, 0, 0)))
NO_KEY = RecordedTable("lf_bo", "import_log", (), (("line", "varchar"),),
                       (RecordedChunk(0, None, None, 4, 0xABC),))
DOC = Checksums("legacy 127.0.0.13:3306", "2024-05-01T10:00:00+00:00",
                Coordinates("mysql-bin.000002", 4711), ("lf_bo", "lf_runtime", "empty_db"),
                (COMPOSITE, NO_KEY, QUOTE))  # database by database, as a backup records them


def test_the_document_round_trips_every_kind_of_bound() -> None:
    text = DOC.to_json()
    again = Checksums.from_json(text)
    assert again == DOC
    raw = json.loads(text)
    assert raw["format"] == FORMAT
    assert raw["coordinates"] == {"file": "mysql-bin.000002", "position": 4711}
    # {db: {table: ...}}, a database without tables kept as {}
    assert raw["databases"]["empty_db"] == {}
    quote = raw["databases"]["lf_runtime"]["quote"]
    assert quote["key"] == ["id"] and quote["columns"] == [["id", "bigint"], ["uid", "char"],
                                                           ["premium", "int"]]
    assert quote["chunks"][1] == {"no": 1, "lo": 5000, "hi": 10000, "count": 5000,
                                  "xor": 0xFEED}
    assert raw["databases"]["lf_bo"]["import_log"]["key"] == []
    assert raw["databases"]["lf_bo"]["import_log"]["whole_table"] is True
    # an integer bound stays an int, a key tuple a tuple of the same native values
    assert again.tables[2].chunks[1].lo == 5000
    assert again.tables[0].chunks[1].lo == COMPOSITE.chunks[1].lo
    assert type(again.tables[0].chunks[1].lo[3]) is decimal.Decimal


def test_a_document_of_another_format_is_refused_naming_it() -> None:
    raw = json.loads(DOC.to_json())
    raw["format"] = "something/9"
    with pytest.raises(FuretError, match=r"checksums.json: format 'something/9', expected "):
        Checksums.from_json(json.dumps(raw), "checksums.json")
    with pytest.raises(FuretError, match=r"^checksums.json: not a furet checksums document"):
        Checksums.from_json("{not json", "checksums.json")


def _chunk(no: int, lo: object, hi: object) -> Chunk:
    return Chunk(Range(no, "key", lo, hi), True, ChunkReport(no, "key", lo, hi))


def test_recorded_side_answers_from_the_document_and_offers_no_drill_down() -> None:
    side = RecordedSide(QUOTE)
    assert side.checksum(_chunk(1, 5000, 10000)) == (5000, 0xFEED)
    assert side.checksum(_chunk(2, 10000, None)) == (17, 2**64 - 1)
    assert side.bucket([], {}) == 0.0
    assert side.identity is None
    assert "lf_runtime" in side.where and "quote" in side.where
    bad = [_chunk(1, 5000, 10000)]
    assert [c.clean for c in side.drill(bad, bad, None, {})] == [True]  # type: ignore[arg-type]
    with pytest.raises(FuretError, match="recorded checksums"):
        side.copy([(1,)])
    with pytest.raises(FuretError, match="recorded checksums"):
        side.delete([])
    # a range the backup did not record cannot be answered
    with pytest.raises(FuretError, match=r"lf_runtime.quote: no recorded chunk 7"):
        side.checksum(_chunk(7, 1, 2))


class _Restored:
    """A restored table (the live MariaDbSide's place): the recorded checksums, but for the
    chunks given in ``changed``."""

    def __init__(self, table: RecordedTable, changed: dict[int, tuple[int, int]]) -> None:
        self.sums = {c.no: (c.count, c.xor) for c in table.chunks}
        self.sums.update(changed)
        self.asked: list[int] = []

    where = "scratch 127.0.0.1:3999 database lf_runtime table quote"

    def checksum(self, chunk: Chunk) -> tuple[int, int]:
        self.asked.append(chunk.rng.no)
        return self.sums[chunk.rng.no]

    def current_versions(self, keys: object) -> dict:
        raise AssertionError("nothing is quarantined in a restore test")


def _comparer() -> Comparer:
    return Comparer(ChunkPlanner(Sampler(1.0), 0.3, 5000), Reads(workers=2), Silent(),
                    lambda table: {}, 0)


def test_a_restored_chunk_that_differs_is_named_by_table_and_range() -> None:
    restored = _Restored(QUOTE, {1: (5000, 0xFEEE)})
    found = compare_table(_comparer(), restored, QUOTE)  # type: ignore[arg-type]
    assert sorted(restored.asked) == [0, 1, 2]  # exactly the recorded ranges, each once
    assert [m.line for m in found] == [
        "lf_runtime.quote chunk (5000, 10000]: restored 5000 rows (checksum 000000000000feee), "
        "backup 5000 rows (checksum 000000000000feed)"]


def test_equal_chunks_find_nothing_and_a_keyless_table_is_one_whole_table_chunk() -> None:
    assert compare_table(_comparer(), _Restored(QUOTE, {}), QUOTE) == []  # type: ignore[arg-type]
    found = compare_table(_comparer(), _Restored(NO_KEY, {0: (3, 0xABC)}),  # type: ignore[arg-type]
                          NO_KEY)
    assert [m.line for m in found] == [
        "lf_bo.import_log whole table (no primary key): restored 3 rows "
        "(checksum 0000000000000abc), backup 4 rows (checksum 0000000000000abc)"]


def test_missing_and_extra_tables_and_databases_are_named() -> None:
    present = {"lf_runtime": {"quote", "audit"}, "lf_bo": {"line"}}
    assert table_problems(DOC, present, "scratch 127.0.0.1:3999") == [
        "database empty_db: in the backup, missing from scratch 127.0.0.1:3999",
        "lf_bo.import_log: in the backup, missing from scratch 127.0.0.1:3999",
        "lf_runtime.audit: on scratch 127.0.0.1:3999, not in the backup",
    ]


# --- the legacy dump --------------------------------------------------------------------

HEADER = "-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=4711;\n"


def test_the_dump_header_gives_its_coordinates() -> None:
    assert parse_header(HEADER) == Coordinates("mysql-bin.000002", 4711)
    assert parse_header("-- MariaDB dump 10.19\n") is None


def test_header_coordinates_other_than_the_locked_ones_are_refused() -> None:
    check_coordinates(Coordinates("mysql-bin.000002", 4711), Coordinates("mysql-bin.000002", 4711),
                      "legacy 127.0.0.13:3306")
    with pytest.raises(FuretError) as err:
        check_coordinates(Coordinates("mysql-bin.000002", 4800),
                          Coordinates("mysql-bin.000002", 4711), "legacy 127.0.0.13:3306")
    assert str(err.value) == (
        "legacy 127.0.0.13:3306: the dump's header says mysql-bin.000002:4800 but SHOW MASTER "
        "STATUS under the lock said mysql-bin.000002:4711: the dump and the checksums are not "
        "at one point; nothing kept, run the backup again")


def test_the_password_goes_to_a_0600_option_file_never_to_argv(tmp_path: Path) -> None:
    settings = DbSettings("legacy", "127.0.0.13", 3306, "furet", 'p"a\\ss word#1')
    path = client_option_file(settings, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("[client]\n")
    assert 'password="p\\"a\\\\ss word#1"' in text
    argv = dump_argv("/usr/bin/mariadb-dump", path, ("lf_runtime", "lf_bo"))
    assert argv[1] == f"--defaults-extra-file={path}"  # must come first
    assert not any("ss word" in word for word in argv)
    for flag in ("--single-transaction", "--master-data=2", "--routines", "--triggers",
                 "--events", "--hex-blob"):
        assert flag in argv
    assert argv[-3:] == ["--databases", "lf_runtime", "lf_bo"]


def test_the_manifest_round_trips_and_a_directory_without_one_is_no_backup(
        tmp_path: Path) -> None:
    manifest = Manifest("legacy", "legacy 127.0.0.13:3306", "10.11.6-MariaDB",
                        ("lf_runtime", "lf_bo"), "2024-05-01T10:00:00+00:00",
                        Coordinates("mysql-bin.000002", 4711),
                        (FileEntry(DUMP_FILE, 10, "ab" * 32),
                         FileEntry(CHECKSUMS_FILE, 5, "cd" * 32)),
                        "cd" * 32, "mariadb-dump  Ver 10.19", 0.125)
    with pytest.raises(FuretError, match=rf"^{tmp_path}: no manifest.json, not a finished"):
        read_manifest(tmp_path)
    write_atomic(tmp_path / MANIFEST_FILE, manifest.to_json().encode())
    assert read_manifest(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]  # no .part left
    assert manifest.file(DUMP_FILE).size == 10
