"""`furet legacy freeze|unfreeze`: legacy read-only on/off, waiting out in-flight writes.

After ``SET GLOBAL read_only = ON`` no new write can commit (for users without
READ_ONLY ADMIN/SUPER: the web app's user must not have them). Transactions that had
already written are then waited for (they either committed before, or fail at commit),
so that the final round starts on a source that no longer changes.
"""

from __future__ import annotations

import time

import pymysql

from migration.config import DbSettings
from migration.db import connection, db_error, query
from migration.errors import FuretError

IN_FLIGHT_SQL = ("SELECT COUNT(*) FROM information_schema.innodb_trx "
                 "WHERE trx_rows_modified > 0 OR trx_state = 'LOCK WAIT'")


def in_flight_writes(conn: pymysql.connections.Connection) -> int:
    return int(query(conn, IN_FLIGHT_SQL)[0][0])


def freeze(settings: DbSettings, timeout_s: float = 60.0) -> float:
    """Set the legacy server read-only and wait for no write in flight; returns seconds."""
    started = time.monotonic()
    try:
        with connection(settings) as conn:
            query(conn, "SET GLOBAL read_only = ON")
            while in_flight_writes(conn):
                if time.monotonic() - started > timeout_s:
                    raise FuretError(f"{settings.where}: read-only is on but writes are still in "
                                     f"flight after {timeout_s:.0f}s (information_schema."
                                     "innodb_trx); unfreeze or wait")
                time.sleep(0.1)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    return time.monotonic() - started


def unfreeze(settings: DbSettings) -> None:
    try:
        with connection(settings) as conn:
            query(conn, "SET GLOBAL read_only = OFF")
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
