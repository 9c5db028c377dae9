"""A scratch mariadbd for a restore test, owned and always stopped by its caller.

:func:`scratch_mariadb`: a fresh datadir (``mariadb-install-db``) in a temporary directory,
to load a dump into; the server binds 127.0.0.1 on a free port (networking on, as the
design's port 3308 on backup1), but its only accounts authenticate through the unix socket
(``unix_socket`` plugin: root, and the user furet runs as), and the socket is in a private
0700 directory: nobody else logs in, over TCP or otherwise. :func:`restored_mariadb`: a
server on a restored physical datadir, whose grant tables are the source's: it skips them
and listens on its private socket only. The event scheduler is off, so a restored event
never changes the restored rows before they are compared; no binary log. Both are context
managers: whatever happens inside, the server is stopped (SIGTERM, then SIGKILL after a
minute) by its own process handle and its directories are removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from migration.config import DbSettings
from migration.errors import FuretError

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Scratch:
    settings: DbSettings      # over the unix socket, as the installing user
    pid: int
    datadir: Path


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if path is None:
        raise FuretError(f"{name} not found: a restore test needs the mariadb-server "
                         "package (lab/apt-packages.txt)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()
                 if "[ERROR]" in ln]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


# what every scratch server runs with: nothing but the restored rows changes them (no
# events, no replication), no binary log, and a restore that loads fast
COMMON_OPTIONS = ("--skip-log-bin", "--skip-name-resolve", "--event-scheduler=OFF",
                  "--skip-slave-start", "--max-allowed-packet=1G",
                  "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=0",
                  "--character-set-server=utf8mb4")


@contextlib.contextmanager
def _serving(head: list[str], datadir: Path, base: Path, login: str, extra: list[str], *,
             tcp: bool) -> Iterator[Scratch]:
    """mariadbd on ``datadir`` (``head``: the binary and its defaults option; ``extra``:
    more options, ``{port}`` is a free port when ``tcp``), its socket in a private
    directory, its log and pid file in ``base``; stopped on exit."""
    # a unix socket path is at most 107 bytes: its own short private directory
    sockets = Path(tempfile.mkdtemp(prefix="furet-sock-"))
    sock, log = sockets / "mysqld.sock", base / "error.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port() if tcp else 0
        proc = subprocess.Popen(
            [*head, f"--datadir={datadir}", f"--user={login}", f"--socket={sock}",
             f"--pid-file={base / 'mysqld.pid'}", f"--log-error={log}",
             *(option.format(port=port) for option in extra), *COMMON_OPTIONS],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        settings = DbSettings("scratch", "127.0.0.1" if tcp else "localhost", port, login,
                              unix_socket=str(sock))
        _wait_ready(proc, settings, log)
        yield Scratch(settings, proc.pid, datadir)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(sockets, ignore_errors=True)


@contextlib.contextmanager
def scratch_mariadb(workdir: Path | None = None) -> Iterator[Scratch]:
    """A running scratch server (its datadir under ``workdir``, default the system's
    temporary directory), stopped and removed on exit."""
    login = pwd.getpwuid(os.geteuid()).pw_name
    install, server = _binary("mariadb-install-db"), _binary("mariadbd")
    base = Path(tempfile.mkdtemp(prefix="furet-restore-", dir=workdir))
    try:
        datadir = base / "data"
        done = subprocess.run(
            [install, "--no-defaults", f"--datadir={datadir}", f"--user={login}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
            raise FuretError(f"mariadb-install-db into {datadir} failed: "
                             f"{last[0] if last else done.returncode}")
        with _serving([server, "--no-defaults"], datadir, base, login,
                      ["--bind-address=127.0.0.1", "--port={port}",
                       "--innodb-log-file-size=256M", "--innodb-doublewrite=0"],
                      tcp=True) as scratch:
            yield scratch
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def restored_mariadb(datadir: Path, base: Path) -> Iterator[Scratch]:
    """A scratch server on a restored datadir (a prepared mariadb-backup), its log in
    ``base``; stopped on exit (the caller removes both directories).

    The datadir holds the source's ``mysql.*`` tables, so its accounts and passwords: the
    server skips them (``--skip-grant-tables``) and so listens on no port at all
    (``--skip-networking``): the private 0700 socket directory is the only way in.
    ``--defaults-file=backup-my.cnf`` gives InnoDB the page size, redo log and undo files
    the backup has; ``--wsrep-on=OFF``: a Galera node's copy starts alone, never joining
    or bootstrapping a cluster (no provider is loaded either)."""
    login = pwd.getpwuid(os.geteuid()).pw_name
    server = _binary("mariadbd")
    with _serving([server, f"--defaults-file={datadir / 'backup-my.cnf'}"], datadir, base,
                  login, ["--skip-grant-tables", "--skip-networking", "--wsrep-on=OFF"],
                  tcp=False) as scratch:
        yield scratch


def _wait_ready(proc: subprocess.Popen[bytes], settings: DbSettings, log: Path) -> None:
    def attempt() -> None:
        if proc.poll() is not None:
            raise FuretError(f"scratch mariadbd on {settings.host}:{settings.port} exited "
                             f"({proc.returncode}): {_tail(log)}")
        pymysql.connect(unix_socket=settings.unix_socket, user=settings.user,
                        connect_timeout=2).close()

    try:
        for retry in Retrying(retry=retry_if_exception_type(pymysql.MySQLError),
                              stop=stop_after_delay(START_TIMEOUT_S), wait=wait_fixed(0.2),
                              reraise=True):
            with retry:
                attempt()
    except pymysql.MySQLError as exc:
        raise FuretError(f"scratch mariadbd on {settings.host}:{settings.port} not ready "
                         f"after {START_TIMEOUT_S}s: {exc}") from None
