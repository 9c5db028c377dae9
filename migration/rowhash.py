"""One canonical text form per value, and the 64-bit row hash built from it.

Both sides of a comparison must hash a row to the same number when the target holds what
the mapping says it should. The row hash is computed in SQL inside MariaDB/MySQL (so that
a checksum never moves rows) and in Python (Cassandra rows, and source tables whose
transforms have no exact SQL form). The two are defined once, here:

- a value's text (:func:`migration.canonical.value_text`): integers in decimal, dates
  ``YYYY-MM-DD``, DATETIME/TIMESTAMP as Python's ``isoformat(sep=" ")`` (no fraction when
  it is zero, else six digits, whatever the column's precision: a DATETIME(3) source and a
  DATETIME(6) or Cassandra ``timestamp`` target agree; TIMESTAMPs in the session's UTC),
  text as UTF-8 (latin1 columns are converted, never reinterpreted);
- a field: the text as SQL's ``QUOTE()`` writes it: in single quotes, each backslash,
  single quote, NUL and Control-Z preceded by a backslash; ``NULL`` (unquoted) for NULL. A
  ``#`` inside a value can never make two different rows hash alike, and NULL differs from
  ``''`` and from ``'NULL'``. One function call per column in SQL: the length prefix this
  replaced evaluated each column's expression twice (a Galera verify spent 20-40 % more
  server time; README, Benchmarks);
- a row: the fields joined by ``#``, MD5, the first 16 hex digits as an unsigned 64-bit
  integer; a chunk: ``COUNT(*)`` and ``BIT_XOR`` of its row hashes (order-independent).

Transforms of the mapping (:data:`migration.flows.mapping.TRANSFORMS`) are applied to the
source before hashing. ``utf8`` and ``ms_to_day`` have exact SQL forms (:data:`SQL_TRANSFORMS`);
``trim`` and ``lower`` do not (Python's ``str.strip``/``str.lower`` and SQL's ``TRIM``/
``LOWER`` differ on tabs, newlines and some Unicode letters), so a source table that uses
them is hashed on the client instead: its rows are read per chunk and hashed in Python
with the mapping's own transform functions.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from migration.canonical import value_text
from migration.flows.mapping import ColumnMap, TransformError

NULL_FIELD = "NULL"
SEPARATOR = "#"
# What QUOTE() escapes, and how (MySQL and MariaDB alike).
_QUOTE_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\x1a": "\\Z"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "bit", "year"})
DATE_TYPES = frozenset({"date"})
DATETIME_TYPES = frozenset({"datetime", "timestamp"})
# Columns QUOTE() takes as they are: it converts them to the text CAST(... AS CHAR) gives
# (MySQL and MariaDB alike; tests/integration/test_rowhash_sql.py holds both to it). One
# function call less per column of the row hash: make bench's Galera verify spent 9 % less
# server time on the offer table (README, Benchmarks). BIT and YEAR are not among them.
QUOTE_AS_IS_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint", "date"})

# transform -> SQL over the quoted source column (``{c}``); must equal the Python function
SQL_TRANSFORMS = {
    "utf8": "CONVERT({c} USING utf8mb4)",
    # integer floor division (``/`` would round to 4 decimals and move the last ms of a day)
    "ms_to_day": "DATE_ADD(DATE'1970-01-01', INTERVAL IF({c} >= 0, {c} DIV 86400000, "
                 "-((-{c} - 1) DIV 86400000) - 1) DAY)",
}
CLIENT_ONLY_TRANSFORMS = frozenset({"trim", "lower"})
# A value the mapping cannot transform (the round quarantines such rows): its field text.
UNTRANSFORMABLE = "!untransformable"


def field(text: str | None) -> str:
    """SQL's ``QUOTE(text)``."""
    if text is None:
        return NULL_FIELD
    if "\\" in text or "'" in text or "\0" in text or "\x1a" in text:
        text = text.translate(_QUOTE_ESCAPES)
    return f"'{text}'"


def hash_texts(texts: Sequence[str | None]) -> int:
    """The row hash of already normalised column texts (what the SQL computes)."""
    return _md5_64(SEPARATOR.join(field(t) for t in texts))


def _md5_64(joined: str) -> int:
    """The first 8 bytes of the MD5 as a big-endian unsigned integer: the SQL's
    ``CONV(LEFT(MD5(..), 16), 16, 10)``."""
    return int.from_bytes(
        hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).digest()[:8], "big")


# The field of a value by its exact type, for the types a driver returns most: the same as
# field(value_text(v)) (bool is not int here: exact types only; the texts of numbers and
# dates hold nothing QUOTE escapes); any other type goes through value_text and field.
_FIELD_BY_TYPE: dict[type, Callable[[Any], str]] = {
    int: lambda v: f"'{v!r}'",
    str: field,
    datetime.datetime: lambda v: f"'{v.isoformat(sep=' ')}'",
    datetime.date: lambda v: f"'{v.isoformat()}'",
}


def register_cassandra_dates() -> None:
    """Texts of the driver's ``date`` values (cassandra.util.Date, a Python object per cell)
    by day number: a query table partitioned by day holds few distinct days, each text built
    once (the cache is emptied past ``DATE_TEXTS`` days, so its memory stays bounded).
    Called by the Cassandra scans (the driver is imported only where it is used)."""
    from cassandra.util import Date

    if Date in _FIELD_BY_TYPE:
        return
    texts: dict[int, str] = {}

    def date_text(value: Any) -> str:
        text = texts.get(value.days_from_epoch)
        if text is None:
            if len(texts) >= DATE_TEXTS:
                texts.clear()
            text = texts[value.days_from_epoch] = field(value_text(value))
        return text

    _FIELD_BY_TYPE[Date] = date_text


DATE_TEXTS = 100_000


def hash_values(values: Iterable[Any]) -> int:
    """``hash_texts`` of the values' canonical texts, without building the texts' tuple:
    the per-row path of a Cassandra scan (one dict lookup per value instead of
    value_text's chain of type checks)."""
    field_of = _FIELD_BY_TYPE.get
    parts = []
    for value in values:
        to_field = field_of(type(value))  # None's type is not there: value_text gives None
        parts.append(to_field(value) if to_field is not None else field(value_text(value)))
    return _md5_64(SEPARATOR.join(parts))


# CQL types whose driver values (int, str, datetime) '%s' formats as their canonical text,
# and ``date`` (cassandra.util.Date: its text from the day cache of register_cassandra_dates).
AS_IS_CQL_TYPES = frozenset({"bigint", "int", "smallint", "tinyint", "varint", "counter",
                             "text", "varchar", "ascii", "timestamp"})
_FAST_CQL_TYPES = AS_IS_CQL_TYPES | {"date"}


def row_hasher(cql_types: Sequence[str]) -> Callable[[Sequence[Any]], int]:
    """A function equal to :func:`hash_values` for rows of columns of these CQL types, in
    about half its time (the Cassandra scan's per-row cost: README, Benchmarks): the row's
    fields come from one ``%`` format of the whole row instead of a call per value, NULLs
    from a format of their own per pattern of NULL columns. A row the format cannot
    render exactly (a text holding a character QUOTE escapes, or the text ``None``) goes
    through :func:`hash_values`; so does every row when a column is of another type
    (decimal, uuid, blob...)."""
    types = [t.lower() for t in cql_types]
    if not types or any(t not in _FAST_CQL_TYPES for t in types):
        return hash_values
    # a date's field comes quoted from the day cache, the others are quoted by the format
    pieces = ["%s" if t == "date" else "'%s'" for t in types]
    fmt = SEPARATOR.join(pieces)
    quotes = 2 * len(types)
    dates = [i for i, t in enumerate(types) if t == "date"]
    if dates:
        register_cassandra_dates()
    date_field = _FIELD_BY_TYPE.get
    null_formats: dict[tuple[int, ...], str] = {}
    md5 = hashlib.md5
    from_bytes = int.from_bytes

    def with_nulls(values: tuple[Any, ...]) -> tuple[str, int]:
        nulls = tuple(i for i, v in enumerate(values) if v is None)
        null_fmt = null_formats.get(nulls)
        if null_fmt is None:
            if len(null_formats) >= NULL_FORMATS:
                null_formats.clear()
            null_fmt = null_formats[nulls] = SEPARATOR.join(
                NULL_FIELD if i in nulls else piece for i, piece in enumerate(pieces))
        return (null_fmt % tuple(v for v in values if v is not None),
                quotes - 2 * len(nulls))

    def row_hash(row: Sequence[Any]) -> int:
        values = row if type(row) is tuple else tuple(row)
        null_day = False
        if dates:
            parts = list(values)
            for i in dates:
                value = parts[i]
                if value is None:
                    null_day = True
                    continue
                to_field = date_field(type(value))
                if to_field is None:
                    return hash_values(row)
                parts[i] = to_field(value)
            values = tuple(parts)
        joined = fmt % values
        # "'None'": a NULL (or the text None); a quote too many: a text holding one
        if null_day or "'None'" in joined or joined.count("'") != quotes:
            if None not in values:
                return hash_values(row)
            joined, expected = with_nulls(values)
            if "'None'" in joined or joined.count("'") != expected:
                return hash_values(row)
        if "\\" in joined or "\0" in joined or "\x1a" in joined:  # QUOTE() escapes these
            return hash_values(row)
        digest = md5(joined.encode("utf-8"), usedforsecurity=False).digest()
        return from_bytes(digest[:8], "big")

    return row_hash


NULL_FORMATS = 1_024   # formats of rows with NULLs held per hasher, one per NULL pattern


def transformed_texts(columns: Sequence[ColumnMap],
                      values: Sequence[Any]) -> tuple[str | None, ...]:
    """Source values -> the texts the target should hold (a transform error is a marker)."""
    out: list[str | None] = []
    for col, value in zip(columns, values, strict=True):
        try:
            out.append(value_text(col.apply(value)))
        except TransformError:
            out.append(UNTRANSFORMABLE)
    return tuple(out)


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sql_text(column: str, data_type: str, transform: str = "") -> str:
    """SQL giving the canonical text of ``column`` (of ``data_type``) after ``transform``."""
    c = quote_ident(column)
    if transform:
        if transform not in SQL_TRANSFORMS:
            raise ValueError(f"transform {transform!r} has no SQL form (hash on the client)")
        expr = SQL_TRANSFORMS[transform].format(c=c)
        return f"CAST({expr} AS CHAR)" if transform == "ms_to_day" else expr
    if data_type in INTEGER_TYPES or data_type in DATE_TYPES:
        return f"CAST({c} AS CHAR)"
    if data_type == "float":
        # a FLOAT prints with 6 digits: two different values could share one text
        return f"CAST(CAST({c} AS DOUBLE) AS CHAR)"
    if data_type in DATETIME_TYPES:
        # no '%' (DATE_FORMAT): these expressions go through the driver's % formatting
        return (f"IF(MICROSECOND({c}) = 0, LEFT(CAST({c} AS CHAR), 19), "
                f"CAST(CAST({c} AS DATETIME(6)) AS CHAR))")
    return f"CONVERT({c} USING utf8mb4)"


def sql_hash_operand(column: str, data_type: str, transform: str = "") -> str:
    """What the row hash gives QUOTE() for ``column``: its :func:`sql_text`, or the column
    itself when QUOTE() makes the same field of it (:data:`QUOTE_AS_IS_TYPES`)."""
    if not transform and data_type in QUOTE_AS_IS_TYPES:
        return quote_ident(column)
    return sql_text(column, data_type, transform)


def sql_field(text_expr: str) -> str:
    return f"QUOTE({text_expr})"


def sql_row_hash(operands: Sequence[str]) -> str:
    """The row hash of columns given as :func:`sql_hash_operand` (or :func:`sql_text`)."""
    fields = ", ".join(sql_field(e) for e in operands)
    return (f"CAST(CONV(LEFT(MD5(CONCAT_WS('{SEPARATOR}', {fields})), 16), 16, 10) "
            "AS UNSIGNED)")


def needs_client_hash(columns: Sequence[ColumnMap]) -> bool:
    """True when a transform of these columns has no exact SQL form."""
    return any(c.transform and c.transform not in SQL_TRANSFORMS for c in columns)
