"""Per-row comparison of a source table and its copy (test helper)."""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass, field
from typing import Any

from migration.config import DbSettings
from migration.db import connection, query


@dataclass
class Diff:
    source_rows: int = 0
    target_rows: int = 0
    quarantined: set[Any] = field(default_factory=set)
    missing: set[Any] = field(default_factory=set)
    stale: set[Any] = field(default_factory=set)
    extra: set[Any] = field(default_factory=set)

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.stale)


def _norm(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def rows_by_key(settings: DbSettings, database: str, table: str,
                columns: list[str]) -> dict[Any, tuple[Any, ...]]:
    cols = ", ".join(f"`{c}`" for c in columns)
    with connection(settings) as conn:
        return {r[0]: tuple(_norm(v) for v in r)
                for r in query(conn, f"SELECT {cols} FROM `{database}`.`{table}`")}


def quarantined_keys(target: DbSettings, flow: str, table: str) -> set[str]:
    with connection(target) as conn, contextlib.suppress(Exception):
        return {r[0] for r in query(conn, "SELECT row_key FROM furet.quarantine WHERE flow = %s "
                                          "AND source_table = %s", (flow, table))}
    return set()


def diff_table(source: DbSettings, source_db: str, target: DbSettings, target_db: str,
               table: str, columns: list[str], flow: str = "runtime") -> Diff:
    src = rows_by_key(source, source_db, table, columns)
    tgt = rows_by_key(target, target_db, table, columns)
    diff = Diff(len(src), len(tgt))
    bad = quarantined_keys(target, flow, table)
    diff.quarantined = {k for k in src if str(k) in bad}
    for key, row in src.items():
        if key in diff.quarantined:
            continue
        if key not in tgt:
            diff.missing.add(key)
        elif tgt[key] != row:
            diff.stale.add(key)
    diff.extra = set(tgt) - set(src)
    return diff


RUNTIME_COLUMNS = {
    "customer": ["id", "uid", "email", "full_name", "city", "birth_date", "created_ts",
                 "updated_ts"],
    "quote": ["id", "uid", "customer_id", "product", "status", "premium_cents", "start_date",
              "created_ts", "updated_ts"],
    "offer": ["id", "uid", "quote_id", "insurer", "price_cents", "rank_no", "created_ts",
              "updated_ts"],
}


def diff_runtime(source: DbSettings, target: DbSettings) -> dict[str, Diff]:
    return {t: diff_table(source, "lf_runtime", target, "lf_runtime", t, cols)
            for t, cols in RUNTIME_COLUMNS.items()}
