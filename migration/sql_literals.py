"""SQL literals for multi-row statements built in Python (fast, no per-row round trip)."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Sequence
from typing import Any

from pymysql.converters import escape_string


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + escape_string(value) + "'"
    if isinstance(value, bytes | bytearray):
        return "X'" + value.hex() + "'" if value else "''"
    if isinstance(value, float | decimal.Decimal):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return "'" + value.isoformat(sep=" ") + "'" if isinstance(
            value, datetime.datetime) else "'" + value.isoformat() + "'"
    if isinstance(value, datetime.timedelta):
        return "'" + time_text(value) + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def time_text(value: datetime.timedelta) -> str:
    """A TIME value as MariaDB reads it: ``[-]H:MM:SS[.ffffff]`` (PyMySQL returns TIME as a
    timedelta, whose own text for a negative value is "-1 day, 22:58:52")."""
    micros = value // datetime.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours}:{minute:02d}:{sec:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def row_literal(row: Sequence[Any]) -> str:
    return "(" + ",".join(literal(v) for v in row) + ")"


def values_batches(rows: Iterable[Sequence[Any]], max_rows: int,
                   max_bytes: int) -> Iterable[list[str]]:
    """Row literals grouped so that each group stays under ``max_rows`` and ``max_bytes``."""
    batch: list[str] = []
    size = 0
    for row in rows:
        text = row_literal(row)
        if batch and (len(batch) >= max_rows or size + len(text) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(text)
        size += len(text) + 1
    if batch:
        yield batch
