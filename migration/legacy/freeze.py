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


def read_only(conn: pymysql.connections.Connection) -> bool:
    """Whether the server is read-only as ``freeze`` leaves it (``read_only``; MariaDB 11's
    ``NO_LOCK`` variants count, and MySQL's ``super_read_only`` implies ``read_only``)."""
    value = query(conn, "SELECT @@global.read_only")[0][0]
    return str(value).upper() not in ("0", "OFF")


def assert_frozen(conn: pymysql.connections.Connection, settings: DbSettings) -> None:
    """Refuse (one line naming the server) unless it is read-only with no write in flight:
    what the final round needs, since it reads up to now with no safety lag.

    The check is the freeze's own. ``read_only`` stops every new write of a session without
    READ_ONLY ADMIN/SUPER (the web app). A transaction that modified rows before the
    freeze is still in ``information_schema.innodb_trx`` with ``trx_rows_modified > 0``
    until it ends, and a privileged session (replication, a DBA, a job with SUPER) can
    still write and commit under ``read_only``: either could commit rows after the final
    round read their range, so any such transaction (or one waiting for a row lock, about
    to write) refuses the round. Not seen: a privileged writer that starts after this
    check; stop those before the cutover. Needs PROCESS (furet's legacy user has it)."""
    try:
        frozen = read_only(conn)
        writes = in_flight_writes(conn) if frozen else 0
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    if not frozen:
        raise FuretError(f"{settings.where}: --final needs the source frozen and read_only is "
                         "OFF: run `furet legacy freeze` (or `fab freeze`) first")
    if writes:
        raise FuretError(f"{settings.where}: --final needs the source frozen: read_only is ON "
                         f"but {writes} transaction(s) with uncommitted writes are in flight "
                         "(information_schema.innodb_trx); let them end, or run `furet legacy "
                         "freeze` again, which waits for them")


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
