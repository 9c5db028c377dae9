"""`furet legacy init`: the legacy schemas lf_runtime and lf_bo (SQL files in sql/)."""

from __future__ import annotations

from pathlib import Path

import pymysql

from migration.config import DbSettings
from migration.db import connection, db_error, run_script

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMAS = ("lf_runtime", "lf_bo")


def apply_schema_files(settings: DbSettings, sql_dir: Path, schemas: tuple[str, ...],
                       drop: bool = False) -> list[str]:
    """Create (or with ``drop`` re-create) each schema from ``<sql_dir>/<schema>.sql``."""
    done = []
    with connection(settings) as conn:
        for schema in schemas:
            try:
                if drop:
                    run_script(conn, f"DROP DATABASE IF EXISTS `{schema}`")
                run_script(conn, (sql_dir / f"{schema}.sql").read_text())
            except pymysql.MySQLError as exc:
                raise db_error(exc, settings, schema) from None
            done.append(schema)
    return done


def init_legacy(settings: DbSettings, drop: bool = False) -> list[str]:
    return apply_schema_files(settings, SQL_DIR, SCHEMAS, drop)
