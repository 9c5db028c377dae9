"""furet verify's canonical texts and row hash (the SQL side is checked against the same
function in tests/integration/test_verify.py, on a real server)."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import random

import pytest

from migration import rowhash as n
from migration.flows.mapping import ColumnMap


def test_value_texts() -> None:
    assert n.value_text(None) is None
    assert n.value_text(42) == "42" and n.value_text(-1) == "-1"
    assert n.value_text(True) == "1"
    assert n.value_text("Orléans") == "Orléans"
    assert n.value_text(b"N\xc3\xaemes") == "Nîmes"
    assert n.value_text(datetime.date(2020, 1, 5)) == "2020-01-05"
    assert n.value_text(decimal.Decimal("12.50")) == "12.50"


def test_a_cassandra_date_is_a_plain_iso_date() -> None:
    from cassandra.util import Date

    assert n.value_text(Date(datetime.date(2020, 1, 5))) == "2020-01-05"


def test_the_row_hash_is_md5_of_quoted_fields_first_64_bits() -> None:
    expected = int(hashlib.md5(b"'7'#NULL#''#'a#b\xc3\xa9'").hexdigest()[:16], 16)
    assert n.hash_texts(["7", None, "", "a#bé"]) == expected
    assert 0 <= expected < 2**64


def test_a_field_is_what_sql_quote_returns() -> None:
    assert n.field(None) == "NULL" and n.field("NULL") == "'NULL'" and n.field("") == "''"
    assert n.field("l'été") == "'l\\'été'"
    assert n.field("a\\b") == "'a\\\\b'"
    assert n.field("x\0y\x1az") == "'x\\0y\\Zz'"
    assert n.field("tab\tnew\nline\r") == "'tab\tnew\nline\r'"  # QUOTE leaves them


@pytest.mark.parametrize(("a", "b"), [
    (["a#b", "c"], ["a", "b#c"]),      # a separator inside a value
    ([None], [""]),                     # NULL is not the empty string
    ([None], ["NULL"]),                 # nor the NULL marker's text
    (["a'#'b"], ["a", "b"]),            # quotes and separators inside a value
    (["a\\"], ["a'"]),
    (["\\0"], ["\0"]),                   # an escaped NUL is not a backslash and a zero
    (["1", "2"], ["12", ""]),
])
def test_rows_that_differ_hash_differently(a: list, b: list) -> None:
    assert n.hash_texts(a) != n.hash_texts(b)


def test_transforms_run_before_hashing_and_a_refused_value_is_a_marker() -> None:
    cols = (ColumnMap("city", "city", "utf8"), ColumnMap("day", "ts", "ms_to_day"),
            ColumnMap("id", "id"))
    assert n.transformed_texts(cols, [b"Lyon", 86_400_000 * 3 - 1, 7]) == (
        "Lyon", "1970-01-03", "7")
    assert n.transformed_texts(cols, [b"Orl\xe9ans", 0, 1])[0] == n.UNTRANSFORMABLE


def test_sql_texts_by_type_and_transform() -> None:
    assert n.sql_text("id", "bigint") == "CAST(`id` AS CHAR)"
    assert n.sql_text("d", "date") == "CAST(`d` AS CHAR)"
    assert n.sql_text("name", "varchar") == "CONVERT(`name` USING utf8mb4)"
    assert n.sql_text("city", "varbinary", "utf8") == "CONVERT(`city` USING utf8mb4)"
    day = n.sql_text("created_ts", "bigint", "ms_to_day")
    assert day.startswith("CAST(DATE_ADD(DATE'1970-01-01'") and "DIV 86400000" in day
    with pytest.raises(ValueError, match="no SQL form"):
        n.sql_text("email", "varchar", "lower")
    # DATETIME/TIMESTAMP: Python's isoformat whatever the precision, and no '%' (the
    # statements go through the driver's % formatting)
    ts = n.sql_text("changed_at", "timestamp")
    assert ts == ("IF(MICROSECOND(`changed_at`) = 0, LEFT(CAST(`changed_at` AS CHAR), 19), "
                  "CAST(CAST(`changed_at` AS DATETIME(6)) AS CHAR))")
    assert "%" not in ts and n.sql_text("d", "datetime") == ts.replace("changed_at", "d")
    assert n.value_text(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05"
    assert n.value_text(datetime.datetime(2026, 1, 2, 3, 4, 5, 120000)) == \
        "2026-01-02 03:04:05.120000"


def test_quote_takes_integer_and_date_columns_as_they_are() -> None:
    assert n.sql_hash_operand("id", "bigint") == "`id`"
    assert n.sql_hash_operand("d", "date") == "`d`"
    # BIT and YEAR, transforms and every other type keep their canonical text
    assert n.sql_hash_operand("b", "bit") == n.sql_text("b", "bit")
    assert n.sql_hash_operand("y", "year") == n.sql_text("y", "year")
    assert n.sql_hash_operand("ts", "bigint", "ms_to_day") == n.sql_text("ts", "bigint",
                                                                         "ms_to_day")
    assert n.sql_hash_operand("name", "varchar") == n.sql_text("name", "varchar")
    assert n.sql_row_hash([n.sql_hash_operand("id", "int")]).count("QUOTE(`id`)") == 1


def test_the_sql_row_hash_mirrors_the_python_one() -> None:
    sql = n.sql_row_hash(["CAST(`id` AS CHAR)", "CONVERT(`n` USING utf8mb4)"])
    assert sql == ("CAST(CONV(LEFT(MD5(CONCAT_WS('#', QUOTE(CAST(`id` AS CHAR)), "
                   "QUOTE(CONVERT(`n` USING utf8mb4)))), 16), 16, 10) AS UNSIGNED)")


def test_tables_with_trim_or_lower_are_hashed_on_the_client() -> None:
    assert not n.needs_client_hash((ColumnMap("a", "a"), ColumnMap("b", "b", "utf8"),
                                    ColumnMap("c", "c", "ms_to_day")))
    assert n.needs_client_hash((ColumnMap("a", "a"), ColumnMap("e", "e", "lower")))
    assert n.needs_client_hash((ColumnMap("e", "e", "trim"),))
    assert n.quote_ident("we`ird") == "`we``ird`"


def test_hash_values_is_hash_texts_of_the_values_texts() -> None:
    """The scan's per-row path (hash_values) and the reference (value_text, hash_texts)
    agree on every kind of value a driver returns, exact types and subclasses alike."""
    from cassandra.util import Date

    class Label(str):
        pass

    rows = [
        (7, -1, 0, 2**63 - 1, -(2**63), None, "", "a#bé", "N", "NULL", "l'été", "a\\b\0\x1a"),
        (True, False, decimal.Decimal("12.50"), b"N\xc3\xaemes", 1.5, Label("x")),
        (datetime.datetime(2020, 1, 5, 3, 4, 5), datetime.datetime(2020, 1, 5, 3, 4, 5, 120),
         datetime.date(2020, 1, 5), Date(datetime.date(1969, 12, 31)),
         datetime.datetime(2020, 1, 5, tzinfo=datetime.UTC)),
        (),
    ]
    for row in rows:
        assert n.hash_values(row) == n.hash_texts([n.value_text(v) for v in row]), row
    assert n.hash_values((True,)) == n.hash_texts(["1"]) != n.hash_values((1.0,))
    # a Cassandra date's text is built once per day number, and the same text each time
    n.register_cassandra_dates()
    for days in (-1, 0, 19_000, 19_000, 2_900_000):
        assert n.hash_values((Date(days),)) == n.hash_texts([n.value_text(Date(days))])


def test_the_date_texts_cache_stays_bounded(monkeypatch) -> None:
    from cassandra.util import Date

    n.register_cassandra_dates()
    monkeypatch.setattr(n, "DATE_TEXTS", 3)
    to_text = n._FIELD_BY_TYPE[Date]
    cache = next(c.cell_contents for c in to_text.__closure__ if isinstance(c.cell_contents,
                                                                              dict))
    cache.clear()
    calls = []
    monkeypatch.setattr(n, "value_text", lambda v: calls.append(v) or "text")
    for days in (1, 2, 1, 3, 1, 4):
        assert to_text(Date(days)) == "'text'"
    assert len(calls) == 4 and len(cache) == 1  # day 1 once, then cleared at the 4th day


ROW_TYPES = ("bigint", "int", "text", "timestamp", "date", "varchar", "smallint", "ascii")


def _random_value(rnd, cql_type: str):
    from cassandra.util import Date

    if rnd.random() < 0.15:
        return None
    if cql_type in ("bigint", "int", "smallint", "varint", "counter", "tinyint"):
        return rnd.choice([0, -1, 2**63 - 1, -(2**63), rnd.randrange(-10**15, 10**15)])
    if cql_type == "timestamp":
        return datetime.datetime(2000, 1, 1) + datetime.timedelta(
            seconds=rnd.randrange(10**9), microseconds=rnd.choice([0, 0, rnd.randrange(10**6)]))
    if cql_type == "date":
        return Date(rnd.choice([-1, 0, 19_000, rnd.randrange(-10**5, 10**5)]))
    alphabet = "ab#é'\\\0\x1a N" if rnd.random() < 0.3 else "abcdefgh-_ 0123"
    text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 12)))
    return rnd.choice([text, text, "None", "NULL", "", "'None'"]) if rnd.random() < 0.2 else text


def test_the_scan_row_hasher_equals_hash_values_on_random_rows() -> None:
    """row_hasher's formats (the whole row at once, a format per NULL pattern, a date's
    cached field) give every row the hash hash_values gives it: NULLs anywhere, texts
    QUOTE escapes, 'None' and 'NULL' texts, any 64-bit integer, timestamps with and
    without microseconds, Cassandra dates."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    for _ in range(20):
        types = tuple(rnd.choice(ROW_TYPES) for _ in range(rnd.randrange(1, 9)))
        hasher = n.row_hasher(types)
        assert hasher is not n.hash_values, types
        for _ in range(300):
            row = tuple(_random_value(rnd, t) for t in types)
            assert hasher(row) == n.hash_values(row), (types, row)
            assert hasher(list(row)) == n.hash_values(row), (types, row)


def test_other_column_types_are_hashed_by_hash_values() -> None:
    for types in ((), ("bigint", "decimal"), ("uuid",), ("frozen<list<text>>", "text")):
        assert n.row_hasher(types) is n.hash_values
    assert n.row_hasher(("BIGINT", "Text"))((1, "a")) == n.hash_texts(["1", "a"])
