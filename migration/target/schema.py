"""`furet target init`: the target runtime and back-office schemas (SQL files in sql/)."""

from __future__ import annotations

from pathlib import Path

from migration.config import DbSettings
from migration.legacy.schema import apply_schema_files

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMAS = ("lf_runtime", "lf_bo")


def init_target(settings: DbSettings, drop: bool = False) -> list[str]:
    return apply_schema_files(settings, SQL_DIR, SCHEMAS, drop)
