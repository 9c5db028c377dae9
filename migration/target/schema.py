"""`furet target init`: the target runtime and back-office schemas (SQL files in sql/)."""

from __future__ import annotations

from pathlib import Path

import pymysql

from migration.config import DbSettings
from migration.db import connection, db_error
from migration.engine.ledger import forget
from migration.legacy.schema import apply_schema_files

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMAS = ("lf_runtime", "lf_bo")


def init_target(settings: DbSettings, drop: bool = False) -> list[str]:
    """Create the target schemas; with ``drop``, drop them first and empty furet's ledger
    (rounds recorded for data that no longer exists would make the next round skip it)."""
    done = apply_schema_files(settings, SQL_DIR, SCHEMAS, drop)
    if drop:
        try:
            with connection(settings) as conn:
                forget(conn)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "furet") from None
    return done
