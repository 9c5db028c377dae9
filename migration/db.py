"""MariaDB/MySQL connections (PyMySQL) and the one-line errors that name where it failed.

Every PyMySQL error that reaches the user goes through :func:`db_error`, which names the
server (role, host, port), the database and the table, and never the password.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors

from migration.config import DbSettings
from migration.errors import FuretError

# Errors that belong to one row's data: the row goes to quarantine, the batch goes on.
ROW_DATA_ERRORS = frozenset({
    1048,  # column cannot be null
    1062,  # duplicate entry (another unique key)
    1264,  # out of range value
    1265,  # data truncated
    1292,  # incorrect date/datetime value
    1366,  # incorrect string value (encoding)
    1406,  # data too long
    1452,  # foreign key constraint
    3819, 4025,  # check constraint
})
# Errors worth retrying the whole transaction for (deadlock, Galera certification, lost link,
# and 1020 "Record has changed since last read": from 11.8 on, innodb_snapshot_isolation is
# ON by default and InnoDB rolls the transaction back as for a deadlock, MDEV-35235).
RETRYABLE_ERRORS = frozenset({1205, 1213, 1020, 1047, 2006, 2013, 2003})

# Every session furet opens reads and writes TIMESTAMPs in UTC, whatever the server's zone
# (source, target and ledger alike): see migration.engine.versions.
SESSION_TIME_ZONE = "+00:00"
STRICT_SQL_MODE = ("STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
                   "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION")


def error_code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


class DbError(FuretError):
    """A database error as one line; ``code`` is the server's (or driver's) error number,
    for callers that retry some of them (the web app of ``furet legacy traffic``)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _NamedServerContext(ssl.SSLContext):
    """A client context that checks ``server_name`` in the server's certificate instead of
    the address connected to (PyMySQL passes its ``host``): behind HAProxy furet reaches
    127.0.0.1, and the Galera node it lands on proves the cluster's service name."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        if self.server_name:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def tls_context(settings: DbSettings) -> ssl.SSLContext | None:
    """The verifying TLS context of ``settings`` (None without ``ssl_ca``): TLS 1.2 at
    least, the certificate checked against the CA and the name. Given a context PyMySQL
    refuses a server without TLS rather than fall back to plain text."""
    if not settings.ssl_ca:
        return None
    context = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=settings.ssl_ca)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FuretError(f"{settings.where}: TLS CA file {settings.ssl_ca}: {reason}") from None
    context.check_hostname = settings.ssl_verify_identity
    if not settings.ssl_verify_identity:
        context.verify_mode = ssl.CERT_REQUIRED
    context.server_name = settings.ssl_server_name or None
    return context


def _tls_reason(exc: BaseException) -> str | None:
    """What a failed TLS handshake says (PyMySQL wraps it in error 2003), or None."""
    original = getattr(exc, "original_exception", None)
    if isinstance(original, ssl.SSLCertVerificationError):
        return original.verify_message or original.reason or str(original)
    if isinstance(original, ssl.SSLError):
        return original.reason or str(original)
    return None


def db_error(exc: BaseException, settings: DbSettings, database: str = "",
             table: str = "") -> FuretError:
    """One line: ``legacy 127.0.0.11:3306 db lf_runtime table quote: <what>``."""
    code = error_code(exc)
    where = settings.where
    if database:
        where += f" database {database}"
    if table:
        where += f" table {table}"
    message = str(exc.args[1]) if len(getattr(exc, "args", ())) > 1 else str(exc)
    tls = _tls_reason(exc)
    if tls is not None:
        what = (f"TLS: {tls} (CA {settings.ssl_ca}, name "
                f"{settings.ssl_server_name or settings.host})")
    elif code == 1045 and not settings.ssl_ca:
        what = (f"access denied for user {settings.user!r} (if the server requires TLS: "
                f"set {settings.role}.ssl_ca)")
    elif code == 1045:
        what = f"access denied for user {settings.user!r}"
    elif code == 1130:
        what = ("this client's address is not allowed (the server's accounts are bound to "
                "other hosts: the inventory's galera_users or legacy_mysql_users hosts)")
    elif code == 2026:
        what = f"TLS handshake failed ({message})"
    elif code in (2003, 2002):
        what = "cannot connect (server down or wrong host/port)"
    elif code == 1049:
        what = f"unknown database {database or message}"
    elif code == 1146:
        what = f"table does not exist ({message})"
    elif code in (1290, 1836):
        what = "server is read-only"
    else:
        what = f"error {code}: {message}" if code else message
    if settings.password:
        what = what.replace(settings.password, "***")
    return DbError(f"{where}: {what}", code)


def connect(settings: DbSettings, database: str | None = None, *, autocommit: bool = True,
            strict: bool = False, streaming: bool = False,
            sql_mode: str | None = None,
            time_zone: str | None = SESSION_TIME_ZONE) -> pymysql.connections.Connection:
    """A connection in utf8mb4, its session time zone pinned to UTC (``time_zone=None``
    keeps the server's, to read what that is); ``strict`` sets the strict SQL mode furet
    writes with.

    Both are connect-time settings (PyMySQL's ``sql_mode`` and ``init_command``), which the
    driver sends again on every reconnect (``ping(reconnect=True)``, what a retried batch
    does after a lost link): a one-off ``SET`` after connecting would be lost there, and
    the new session would write with the server's own mode and zone (a long text cut, a
    TIMESTAMP shifted). :func:`assert_session` checks them before a batch writes."""
    mode = STRICT_SQL_MODE if strict else sql_mode
    try:
        conn = pymysql.connect(
            host=settings.host, port=settings.port, user=settings.user,
            password=settings.password, database=database,
            unix_socket=settings.unix_socket or None, charset="utf8mb4",
            autocommit=autocommit, connect_timeout=settings.connect_timeout,
            cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
            local_infile=False, sql_mode=mode, ssl=tls_context(settings),
            init_command=None if time_zone is None else
            f"SET SESSION time_zone = '{pymysql.converters.escape_string(time_zone)}'",
        )
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, database or "") from None
    return conn


def assert_session(conn: pymysql.connections.Connection, settings: DbSettings,
                   sql_mode: str = STRICT_SQL_MODE,
                   time_zone: str = SESSION_TIME_ZONE) -> None:
    """Refuse a session that lost furet's settings (every flag of ``sql_mode`` and the time
    zone): one round trip, run before the first write of each batch. A session that lost
    them would write silently wrong rows (cut, shifted) instead of refusing them."""
    mode, zone = query(conn, "SELECT @@session.sql_mode, @@session.time_zone")[0]
    have = set(str(mode).split(","))
    lacking = [flag for flag in sql_mode.split(",") if flag and flag not in have]
    if lacking:
        raise FuretError(f"{settings.where}: session sql_mode {mode!r} lacks "
                         f"{','.join(lacking)} (furet writes strict; reconnected without it?)")
    if str(zone) != time_zone:
        raise FuretError(f"{settings.where}: session time_zone is {zone!r}, not {time_zone!r} "
                         "(furet reads and writes TIMESTAMPs in UTC; reconnected without it?)")


@contextlib.contextmanager
def connection(settings: DbSettings, database: str | None = None,
               **kwargs: Any) -> Iterator[pymysql.connections.Connection]:
    conn = connect(settings, database, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def query(conn: pymysql.connections.Connection, sql: str,
          args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


# InnoDB serves information_schema.innodb_trx (and innodb_locks, innodb_lock_waits) from a
# copy it refreshes only when the copy was not read for 0.1 s (CACHE_MIN_IDLE_TIME_US in
# trx0i_s.cc): a read within 0.1 s of another one shows transactions as they were then.
TRX_CACHE_IDLE_S = 0.15


def query_trx_now(conn: pymysql.connections.Connection, sql: str,
                  args: Any = None) -> list[tuple[Any, ...]]:
    """:func:`query` for SQL reading ``information_schema.innodb_trx``, waiting first for
    InnoDB's copy of it to be refreshable, so that the answer is of now: a transaction that
    just ended is not counted, one that just wrote is. (Another session reading the table
    more often than every 0.1 s keeps the copy from refreshing; nothing here can help that.)"""
    time.sleep(TRX_CACHE_IDLE_S)
    return query(conn, sql, args)


def server_now_ms(conn: pymysql.connections.Connection) -> int:
    """The server's clock in epoch milliseconds (the clock the window is cut on)."""
    return int(query(conn, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)")[0][0])


def server_now_us(conn: pymysql.connections.Connection) -> int:
    """The server's clock in epoch microseconds."""
    return int(query(conn, "SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")[0][0])


def server_utc_offset_s(conn: pymysql.connections.Connection) -> tuple[int, str]:
    """(offset of the server's own time zone from UTC in seconds now, its name), read on a
    connection whose session zone was left as the server's (``time_zone=None``)."""
    offset, name, system = query(conn, "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()), "
                                       "@@global.time_zone, @@system_time_zone")[0]
    label = f"{name} ({system})" if str(name).upper() == "SYSTEM" else str(name)
    return int(offset), label


def run_script(conn: pymysql.connections.Connection, script: str) -> None:
    """Run a ``;``-separated SQL file (no procedures, no ``;`` inside literals)."""
    with conn.cursor() as cur:
        for statement in script.split(";"):
            lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
            text = "\n".join(lines).strip()
            if text:
                cur.execute(text)
