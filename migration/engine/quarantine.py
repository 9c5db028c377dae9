"""Rows that cannot be written: their key, reason and original values (stored in
furet.quarantine by :mod:`migration.engine.ledger`)."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QuarantinedRow:
    source_table: str
    row_key: str
    version: int
    target_table: str
    reason: str
    original: dict[str, Any]


def jsonable(value: Any) -> Any:
    """Original values as JSON: bytes that are not UTF-8 are kept as ``{"hex": ...}``."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": bytes(value).hex()}
    if isinstance(value, datetime.date | datetime.datetime | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | datetime.timedelta):
        return str(value)
    return value


def original_values(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return {c: jsonable(v) for c, v in zip(columns, row, strict=True)}
