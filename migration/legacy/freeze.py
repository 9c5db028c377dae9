"""`furet legacy freeze|unfreeze`: legacy read-only on/off, waiting out in-flight writes.

After ``SET GLOBAL read_only = ON`` no new write can commit (for users without
READ_ONLY ADMIN/SUPER: the web app's user must not have them). Transactions that had
already written are then waited for (they either committed before, or fail at commit),
so that the final round starts on a source that no longer changes.

The source may be a Galera cluster (a major upgrade fills a new cluster from the old one):
``read_only`` is then each node's own, not replicated, so every node the cluster counts
(``wsrep_incoming_addresses``, the client address of each member) is frozen, checked and
unfrozen, reached with the same account and TLS settings as the node furet talks to.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pymysql

from migration.config import DbSettings
from migration.db import connection, db_error, query, query_trx_now
from migration.errors import FuretError

IN_FLIGHT_SQL = ("SELECT COUNT(*) FROM information_schema.innodb_trx "
                 "WHERE trx_rows_modified > 0 OR trx_state = 'LOCK WAIT'")


def members(conn: pymysql.connections.Connection, settings: DbSettings) -> list[DbSettings]:
    """The servers a freeze must cover: ``settings`` alone, or for a Galera node every member
    of its cluster (:func:`member_settings`)."""
    rows = query(conn, "SHOW GLOBAL STATUS LIKE 'wsrep_incoming_addresses'")
    return member_settings(str(rows[0][1]) if rows else "", settings)


def _members_of(settings: DbSettings) -> list[DbSettings]:
    """:func:`members`, on a connection of its own; a server error names the server."""
    try:
        with connection(settings) as conn:
            return members(conn, settings)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None


def member_settings(incoming: str, settings: DbSettings) -> list[DbSettings]:
    """``settings`` for each ``host:port`` of ``wsrep_incoming_addresses`` (``settings``
    alone when empty: not Galera); an ``AUTO`` or portless entry cannot be reached and is
    refused naming the node."""
    addresses = [a.strip() for a in incoming.split(",") if a.strip()]
    if not addresses:
        return [settings]
    nodes = []
    for address in addresses:
        # host:port, or [IPv6]:port (an IPv6 address without brackets has no port to read)
        found = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", address)
        host = (found.group(1) or found.group(3)) if found else ""
        if not found or host.upper() == "AUTO":
            raise FuretError(f"{settings.where}: a Galera member's client address is "
                             f"{address!r} (wsrep_incoming_addresses): set "
                             "wsrep_node_incoming_address so furet can freeze every node")
        nodes.append(replace(settings, host=host, port=int(found.group(2) or found.group(4))))
    return nodes


def in_flight_writes(conn: pymysql.connections.Connection) -> int:
    """Transactions holding uncommitted writes or waiting for a lock, as of now
    (:func:`query_trx_now`)."""
    return int(query_trx_now(conn, IN_FLIGHT_SQL)[0][0])


def read_only(conn: pymysql.connections.Connection) -> bool:
    """Whether the server is read-only as ``freeze`` leaves it (``read_only``; MariaDB 11's
    ``NO_LOCK`` variants count, and MySQL's ``super_read_only`` implies ``read_only``)."""
    value = query(conn, "SELECT @@global.read_only")[0][0]
    return str(value).upper() not in ("0", "OFF")


def _frozen_problem(conn: pymysql.connections.Connection, settings: DbSettings) -> str:
    """"" when the server is read-only with no write in flight, else why not."""
    if not read_only(conn):
        return (f"{settings.where}: --final needs the source frozen and read_only is OFF: run "
                "`furet legacy freeze` (or `fab freeze`) first")
    writes = in_flight_writes(conn)
    if writes:
        return (f"{settings.where}: --final needs the source frozen: read_only is ON but "
                f"{writes} transaction(s) with uncommitted writes are in flight "
                "(information_schema.innodb_trx); let them end, or run `furet legacy "
                "freeze` again, which waits for them")
    return ""


def assert_frozen(conn: pymysql.connections.Connection, settings: DbSettings) -> None:
    """Refuse (one line naming the server) unless it is read-only with no write in flight:
    what the final round needs, since it reads up to now with no safety lag. A Galera
    source: every member.

    The check is the freeze's own. ``read_only`` stops every new write of a session without
    READ_ONLY ADMIN/SUPER (the web app). A transaction that modified rows before the
    freeze is still in ``information_schema.innodb_trx`` with ``trx_rows_modified > 0``
    until it ends, and a privileged session (replication, a DBA, a job with SUPER) can
    still write and commit under ``read_only``: either could commit rows after the final
    round read their range, so any such transaction (or one waiting for a row lock, about
    to write) refuses the round. Not seen: a privileged writer that starts after this
    check; stop those before the cutover. Needs PROCESS (furet's legacy user has it)."""
    try:
        problem = _frozen_problem(conn, settings)
        nodes = members(conn, settings) if not problem else []
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings) from None
    for node in nodes if len(nodes) > 1 else []:
        try:
            with connection(node) as other:
                problem = problem or _frozen_problem(other, node)
        except pymysql.MySQLError as exc:
            raise db_error(exc, node) from None
    if problem:
        raise FuretError(problem)


def can_freeze(settings: DbSettings) -> list[DbSettings]:
    """What a plan checks before the freeze, changing nothing: every server the freeze
    would cover (each member of a Galera source) answers, is writable, and lets the user
    set read_only; returns them, else FuretError naming the first that does not."""
    nodes = _members_of(settings)
    for node in nodes:
        try:
            with connection(node) as conn:
                if read_only(conn):
                    raise FuretError(f"{node.where} is already read-only")
                grants = " ".join(str(r[0]) for r in query(conn, "SHOW GRANTS FOR CURRENT_USER"))
        except pymysql.MySQLError as exc:
            raise db_error(exc, node) from None
        if not any(p in grants for p in ("ALL PRIVILEGES ON *.*", "SUPER", "READ_ONLY ADMIN")):
            raise FuretError(f"{node.where}: user {node.user} may not set read_only (needs "
                             "READ_ONLY ADMIN or SUPER)")
    return nodes


def _on_each(nodes: list[DbSettings], sql: str) -> None:
    """``sql`` on every node, even after one failed (an unfreeze must not leave the nodes
    after an unreachable one read-only); the failures in one line."""
    failures = []
    for node in nodes:
        try:
            with connection(node) as conn:
                query(conn, sql)
        except pymysql.MySQLError as exc:
            failures.append(str(db_error(exc, node)))
    if failures:
        raise FuretError(f"{sql} failed on {len(failures)} of {len(nodes)} servers: "
                         + "; ".join(failures))


def _last_committed(node: DbSettings) -> int:
    try:
        with connection(node) as conn:
            rows = query(conn, "SHOW GLOBAL STATUS LIKE 'wsrep_last_committed'")
    except pymysql.MySQLError as exc:
        raise db_error(exc, node) from None
    return int(rows[0][1]) if rows else -1


def freeze(settings: DbSettings, timeout_s: float = 60.0) -> float:
    """Set the legacy server read-only (each node of a Galera source) and wait for no write
    in flight, then, on Galera, until every node applied the same last write set (the node
    the final round reads holds every write); returns seconds."""
    started = time.monotonic()

    def waited(what: str, where: DbSettings) -> None:
        if time.monotonic() - started > timeout_s:
            raise FuretError(f"{where.where}: read-only is on but {what} after "
                             f"{timeout_s:.0f}s; unfreeze or wait")
        time.sleep(0.1)

    nodes = _members_of(settings)
    _on_each(nodes, "SET GLOBAL read_only = ON")
    for node in nodes:
        try:
            with connection(node) as conn:
                while in_flight_writes(conn):
                    waited("writes are still in flight (information_schema.innodb_trx)", node)
        except pymysql.MySQLError as exc:
            raise db_error(exc, node) from None
    while len(nodes) > 1 and len({_last_committed(node) for node in nodes}) > 1:
        waited("the Galera nodes have not applied the same write sets "
               "(wsrep_last_committed)", settings)
    return time.monotonic() - started


def unfreeze(settings: DbSettings) -> None:
    """read_only OFF (on each node of a Galera source)."""
    nodes = _members_of(settings)
    _on_each(nodes, "SET GLOBAL read_only = OFF")
