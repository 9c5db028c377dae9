"""Rows that cannot be written: their key, reason and original values, in furet.quarantine."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migration.sql_literals import values_batches


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


def insert_statements(flow: str, round_no: int, rows: Sequence[QuarantinedRow]) -> list[str]:
    """Upserts keyed by (flow, table, key, version): a row seen again is not duplicated."""
    records = [(flow, q.source_table, q.row_key[:255], q.version, round_no, q.target_table,
                q.reason[:512], json.dumps(q.original, ensure_ascii=False, sort_keys=True))
               for q in rows]
    return [
        "INSERT INTO furet.quarantine (flow, source_table, row_key, version, round_no, "
        "target_table, reason, original) VALUES " + ",".join(batch) +
        " ON DUPLICATE KEY UPDATE round_no = VALUES(round_no), reason = VALUES(reason), "
        "target_table = VALUES(target_table), last_seen = NOW(3), seen = seen + 1"
        for batch in values_batches(records, 500, 1_000_000)
    ]
