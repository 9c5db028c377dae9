"""The platform hold: an operation on the whole platform (``playbooks/galera_upgrade.yml``
while the Galera nodes run mixed versions) stops furet's rounds, repairs, backups and schema
changes until it ends.

It is a row of the ledger's ``furet.locks`` (:data:`~migration.engine.ledger.PLATFORM_HOLD`)
naming who holds it and why. Unlike a flow's lock it has no heartbeat and is never taken
over: it lasts until ``furet hold release``, a process killed or a host lost included (an
upgrade stopped half-way leaves the versions mixed, which is what the hold is for).
``flow_lock.acquire`` refuses every flow while it is there; ``furet target schema --apply``
too (:func:`refuse_if_held`).

    furet hold take --reason "galera upgrade to 10.11.19"   # refused while a round runs
    furet hold show
    furet hold release [--reason ...]
"""

from __future__ import annotations

import os
import socket
import uuid

import pymysql

from migration.config import DbSettings
from migration.db import connect, db_error
from migration.engine import ledger
from migration.errors import FuretError


def held_line(where: str, holder: ledger.LockHolder) -> str:
    return (f"{where}: furet is on hold for `{holder.command}` (taken on host {holder.host} "
            f"at {holder.started_at} UTC): rounds, repairs, backups and schema changes wait "
            "until it ends (`furet hold release` once it is over)")


def refuse_if_held(conn: pymysql.connections.Connection, where: str) -> None:
    """Raise one line naming the hold when there is one (``conn`` on the ledger's server,
    the ledger may not exist yet: then nothing is held)."""
    if not ledger.exists(conn):
        return
    holder = ledger.lock_holder(conn, ledger.PLATFORM_HOLD)
    if holder is not None:
        raise FuretError(held_line(where, holder))


def show(settings: DbSettings) -> ledger.LockHolder | None:
    conn = connect(settings, autocommit=True)
    try:
        if not ledger.exists(conn):
            return None
        return ledger.lock_holder(conn, ledger.PLATFORM_HOLD)
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet", "locks") from None
    finally:
        conn.close()


def take(settings: DbSettings, reason: str) -> tuple[ledger.LockHolder, bool]:
    """Hold the platform for ``reason``: (the hold, whether this call took it). Taking it
    again for the same reason is a no-op (an upgrade run again after a failure); another
    reason's hold is refused naming it; a flow whose round or repair runs now is refused
    naming it, and the hold is not left behind."""
    if not reason.strip():
        raise FuretError("furet hold take: --reason must say what the hold is for")
    conn = connect(settings, autocommit=True)
    try:
        ledger.ensure_ledger(conn)
        token = uuid.uuid4().hex
        took = ledger.insert_lock(conn, ledger.PLATFORM_HOLD, token, socket.gethostname(),
                                  os.getpid(), reason)
        holder = ledger.lock_holder(conn, ledger.PLATFORM_HOLD)
        if holder is None:
            raise FuretError(f"{settings.where}: the hold was released while furet took it; "
                             "run again")
        if not took and holder.command != reason[:255]:
            raise FuretError(held_line(settings.where, holder))
        running = ledger.live_locks(conn)
        if running:
            if took:
                ledger.release_lock(conn, ledger.PLATFORM_HOLD, token)
            flow, who = running[0]
            raise FuretError(
                f"{settings.where}: flow {flow} is run by `{who.command}` on host {who.host} "
                f"pid {who.pid} since {who.started_at} UTC: not held for `{reason}`; wait "
                "for it to end, then run again")
        return holder, took
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet", "locks") from None
    finally:
        conn.close()


def release(settings: DbSettings, reason: str = "") -> ledger.LockHolder | None:
    """End the hold (only if it is ``reason``'s, when given): the hold ended, or None when
    there was none (a second release changes nothing)."""
    conn = connect(settings, autocommit=True)
    try:
        if not ledger.exists(conn):
            return None
        holder = ledger.lock_holder(conn, ledger.PLATFORM_HOLD)
        if holder is None:
            return None
        if reason and holder.command != reason[:255]:
            raise FuretError(f"{settings.where}: the hold is for `{holder.command}`, not "
                             f"`{reason}`: left as it is")
        ledger.release_lock(conn, ledger.PLATFORM_HOLD, holder.token)
        return holder
    except pymysql.MySQLError as exc:
        raise db_error(exc, settings, "furet", "locks") from None
    finally:
        conn.close()
