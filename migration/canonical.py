"""One canonical text per value and per row key: how verify matches rows across stores and
how furet.quarantine names a row.

- a value's text: integers in decimal, dates ``YYYY-MM-DD``, datetimes ISO with a space,
  text as itself, bytes as UTF-8 (invalid bytes replaced: texts are for matching and
  display, the bytes themselves travel untouched);
- a key's text: the text of its one value, or for a composite key the JSON list of its
  values' texts (``["1042", "3"]``), so ``(1, 23)`` and ``(12, 3)`` never meet.

Defined here, below both the engine and verify, so the two cannot drift.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Sequence
from typing import Any


def value_text(value: Any) -> str | None:
    """The canonical text of one value (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    date = getattr(value, "date", None)  # cassandra.util.Date
    if callable(date):
        return value_text(date())
    return str(value)


def key_text(values: Sequence[Any]) -> str:
    """The canonical text of a row key given as the tuple of its column values."""
    if len(values) == 1:
        return str(value_text(values[0]))
    return json.dumps([value_text(v) for v in values], ensure_ascii=False)
