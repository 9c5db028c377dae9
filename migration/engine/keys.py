"""Row keys of any shape: one column or several (a composite primary key), of any type
MariaDB can order (integers, strings, dates, decimals, bytes).

A key is always a tuple of column values, in the flow's ``key:`` order. This module is the
one place that turns keys into SQL and into ledger text:

- keyset predicates on the column tuple, expanded so MariaDB's range optimizer walks the
  primary key (``a >= x AND (a > x OR (a = x AND b > y))``; a row constructor comparison
  ``(a, b) > (x, y)`` is not used as a range by MariaDB 10.11, so it would scan);
- lookups of many keys: ``a IN (...)`` for one column, ``(a = x AND b = y) OR ...``
  otherwise;
- ledger text for furet.chunks (``key_lo``, ``key_hi``, ``cursor_key``): a single integer
  stays its decimal text, as furet 0.1 wrote it, so an unfinished round of an older furet
  resumes; anything else is a JSON list whose non-JSON values carry a type tag
  (``{"b": hex}`` bytes, ``{"d": "1.50"}`` decimal, ``{"t": iso}`` datetime, ``{"D": iso}``
  date, ``{"s": seconds}`` time), decoded back to the values PyMySQL binds.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Sequence
from typing import Any

Key = tuple[Any, ...]


def quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def select_list(columns: Sequence[str]) -> str:
    return ", ".join(quote(c) for c in columns)


def _compare(columns: Sequence[str], values: Sequence[Any], last: str) -> tuple[str, list[Any]]:
    """``columns`` (lexicographically) ``last`` (``>`` or ``<=``) ``values``."""
    if len(columns) != len(values):
        raise ValueError(f"key of {len(columns)} columns compared with {len(values)} values")
    first = quote(columns[0])
    if len(columns) == 1:
        return f"{first} {last} %s", [values[0]]
    strict = ">" if last == ">" else "<"
    # innermost first: c_n last v_n, then c_i strict v_i OR (c_i = v_i AND <inner>)
    inner, args = f"{quote(columns[-1])} {last} %s", [values[-1]]
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        c = quote(column)
        inner = f"{c} {strict} %s OR ({c} = %s AND ({inner}))"
        args = [value, value, *args]
    bound = ">=" if last == ">" else "<="
    return f"{first} {bound} %s AND ({inner})", [values[0], *args]


def after(columns: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """SQL and arguments of ``(columns) > (values)``."""
    return _compare(columns, values, ">")


def up_to(columns: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """SQL and arguments of ``(columns) <= (values)``."""
    return _compare(columns, values, "<=")


def among(columns: Sequence[str], keys: Sequence[Sequence[Any]],
          negate: bool = False) -> tuple[str, list[Any]]:
    """SQL and arguments of ``(columns) [NOT] IN (keys)`` (keys: tuples)."""
    if len(columns) == 1:
        marks = ", ".join(["%s"] * len(keys))
        return (f"{quote(columns[0])} {'NOT IN' if negate else 'IN'} ({marks})",
                [k[0] for k in keys])
    one = "(" + " AND ".join(f"{quote(c)} = %s" for c in columns) + ")"
    args = [v for k in keys for v in k]
    sql = "(" + " OR ".join([one] * len(keys)) + ")"
    return (f"NOT {sql}" if negate else sql), args


def order_by(columns: Sequence[str]) -> str:
    return ", ".join(quote(c) for c in columns)


# --- ledger text --------------------------------------------------------------------------

def _tag(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return {"b": bytes(value).hex()}
    if isinstance(value, decimal.Decimal):
        return {"d": str(value)}
    if isinstance(value, datetime.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"D": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"s": value.total_seconds()}
    return str(value)


def _untag(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    (tag, text), = value.items()
    if tag == "b":
        return bytes.fromhex(text)
    if tag == "d":
        return decimal.Decimal(text)
    if tag == "t":
        return datetime.datetime.fromisoformat(text)
    if tag == "D":
        return datetime.date.fromisoformat(text)
    if tag == "s":
        return datetime.timedelta(seconds=text)
    raise ValueError(f"unknown key value tag {tag!r}")


def encode(key: Key | None) -> str | None:
    """A key as ledger text (None stays None)."""
    if key is None:
        return None
    if len(key) == 1 and isinstance(key[0], int) and not isinstance(key[0], bool):
        return str(key[0])
    return json.dumps([_tag(v) for v in key], ensure_ascii=False, separators=(",", ":"))


def decode(text: str | None) -> Key | None:
    """Ledger text back to a key: a JSON list, or the bare text an older furet wrote (an
    integer when it reads as one: furet 0.1 wrote one-column keys bare)."""
    if text is None:
        return None
    if text.startswith("["):
        return tuple(_untag(v) for v in json.loads(text))
    body = text[1:] if text[:1] == "-" else text
    return (int(text),) if body.isdigit() else (text,)
