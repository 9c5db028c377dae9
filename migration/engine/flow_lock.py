"""One writer per flow: rounds and ``verify --repair`` of a flow exclude each other.

The lock is a row of ``furet.locks`` in the ledger (its SQL is in
:mod:`migration.engine.ledger`), naming its holder: host, pid, command, since when. Not
``GET_LOCK``: the ledger lives on the target, on Galera usually reached through HAProxy,
and a ``GET_LOCK`` is held by one node only and not replicated, so two runners sent to two
nodes would both get it. A row is replicated, and two runners inserting it at once on two
nodes meet in Galera's certification: one commit wins, the other sees the winner's row.

A row outlives a holder killed with ``kill -9``, so a holder is presumed gone (its row is
taken over, conditionally on its token, so two takers cannot both win) when

- it is on this host and its pid is no longer running (a round killed and restarted on its
  ETL host goes on at once), or
- its heartbeat, refreshed every :data:`HEARTBEAT_S` seconds by a thread of the holder, is
  older than :data:`~migration.engine.ledger.LOCK_STALE_S` on the ledger server's clock
  (another host, or a host that died).

A holder stopped for longer than that (SIGSTOP, a frozen VM) can lose its lock to a second
runner: the rounds' checkpoints are still conditional on the batch number, so the two
cannot apply one batch twice.

A caller that needs several flows held at once (``furet backup galera|cassandra``) takes them
all or none, waiting a bounded time: :func:`hold_all`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pymysql
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from migration.config import DbSettings
from migration.db import connect, db_error
from migration.engine import ledger
from migration.errors import FuretError
from migration.hold import held_line

HEARTBEAT_S = 10.0
RETRY_S = 1.0       # hold_all: between two tries of the whole set


class LockBusy(FuretError):
    """The flow's lock is held by a live holder (a caller may wait and try again)."""


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _gone(holder: ledger.LockHolder, host: str) -> bool:
    if holder.heartbeat_age_s > ledger.LOCK_STALE_S:
        return True
    return holder.host == host and holder.pid != os.getpid() and not pid_running(holder.pid)


def acquire(conn: pymysql.connections.Connection, flow: str, command: str,
            where: str = "", host: str | None = None) -> str:
    """Take ``flow``'s lock for ``command``: its token, or a :class:`FuretError` naming the
    holder. ``conn`` is autocommit, on the ledger's server (``where``: its name)."""
    host = host or socket.gethostname()
    token = uuid.uuid4().hex
    ledger.ensure_ledger(conn)
    hold = ledger.lock_holder(conn, ledger.PLATFORM_HOLD)
    if hold is not None:   # migration/hold.py: no flow runs while the platform is held
        raise FuretError(held_line(where, hold))
    for _ in range(3):  # inserted, else taken over from a gone holder, else refused
        if ledger.insert_lock(conn, flow, token, host, os.getpid(), command):
            return token
        holder = ledger.lock_holder(conn, flow)
        if holder is None:       # released in between: try again
            continue
        if not _gone(holder, host):
            raise LockBusy(
                f"{where}: flow {flow} is locked by `{holder.command}` on host {holder.host} pid "
                f"{holder.pid} since {holder.started_at} UTC (heartbeat "
                f"{holder.heartbeat_age_s:.0f} s ago): wait for it to end; a holder whose "
                f"process is gone is taken over (at once on its host, after "
                f"{ledger.LOCK_STALE_S} s without heartbeat elsewhere)")
        if ledger.take_over_lock(conn, flow, holder.token, token, host, os.getpid(), command):
            return token
    raise LockBusy(f"{where}: flow {flow}: its lock in furet.locks changed hands three times "
                   "while furet tried to take it; run again")


class _Heartbeat(threading.Thread):
    def __init__(self, settings: DbSettings, flow: str, token: str) -> None:
        super().__init__(name=f"furet-lock-{flow}", daemon=True)
        self.settings, self.flow, self.token = settings, flow, token
        self.stop = threading.Event()

    def run(self) -> None:
        conn: pymysql.connections.Connection | None = None
        while not self.stop.wait(HEARTBEAT_S):
            try:
                if conn is None:
                    conn = connect(self.settings, autocommit=True)
                ledger.heartbeat_lock(conn, self.flow, self.token)
            except (FuretError, pymysql.MySQLError):
                # the ledger briefly unreachable: try again at the next beat
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


@contextlib.contextmanager
def flow_lock(settings: DbSettings, flow: str, command: str) -> Iterator[str]:
    """Hold ``flow``'s lock (in the ledger on ``settings``, the target) for the block,
    heartbeat included; released at the end, also on an error."""
    conn = connect(settings, autocommit=True)
    try:
        try:
            token = acquire(conn, flow, command, settings.where)
        except pymysql.MySQLError as exc:
            raise db_error(exc, settings, "furet", "locks") from None
    finally:
        conn.close()
    beat = _Heartbeat(settings, flow, token)
    beat.start()
    try:
        yield token
    finally:
        beat.stop.set()
        beat.join(5)
        with contextlib.suppress(Exception), \
                contextlib.closing(connect(settings, autocommit=True)) as done:
            ledger.release_lock(done, flow, token)


def hold_all(stack: contextlib.ExitStack, settings: DbSettings, flows: Sequence[str],
             command: str, wait_s: float, who: str) -> tuple[dict[str, str], float]:
    """The lock of every flow of ``flows``, held until ``stack`` closes: their tokens and the
    seconds waited. All or none: while one is busy (:class:`LockBusy`: a round runs) what was
    taken is released and the set tried again every :data:`RETRY_S` s for up to ``wait_s``
    s (``--lock-wait``), then refused in one line naming the holder and ``who`` (``backup
    galera``). Never holding some while waiting for others, it can neither starve a round
    nor deadlock with another caller."""
    started = time.monotonic()

    def attempt() -> dict[str, str]:
        held = contextlib.ExitStack()
        try:
            tokens = {flow: held.enter_context(flow_lock(settings, flow, command))
                      for flow in flows}
        except BaseException:
            held.close()  # all or none
            raise
        stack.enter_context(held)
        return tokens

    tokens: dict[str, str] = {}
    try:
        for retry in Retrying(retry=retry_if_exception_type(LockBusy),
                              stop=stop_after_delay(wait_s), wait=wait_fixed(RETRY_S),
                              reraise=True):
            with retry:
                tokens = attempt()
    except LockBusy as exc:
        raise FuretError(f"{exc}; {who} waited {wait_s:g}s for the flow locks "
                         "(--lock-wait)") from None
    return tokens, time.monotonic() - started
